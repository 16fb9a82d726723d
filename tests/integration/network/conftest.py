"""An engine root with a busybox image for the network tests, and a strict cleanup:
after each test every container and user network is removed and nothing of
Tomato's networking may remain (netns files, leases, ports, the nft table)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TOMATO = str(Path(sys.executable).parent / "tomato")


@dataclass
class Engine:
    root: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "TOMATO_ROOT": str(self.root)}

    def run(self, *args: str, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([TOMATO, *args], capture_output=True, text=True, timeout=timeout,
                              env=self.env(), input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"tomato {' '.join(args)} failed ({proc.returncode}): "
                                 f"{proc.stderr}")
        return proc

    def ids(self) -> list[str]:
        return self.run("ps", "-aq", "--no-trunc").stdout.split()

    def inspect(self, ref: str) -> dict[str, Any]:
        return json.loads(self.run("inspect", ref).stdout)[0]  # type: ignore[no-any-return]

    def ip(self, ref: str, network: str | None = None) -> str:
        nets = self.inspect(ref)["NetworkSettings"]["Networks"]
        return str((nets[network] if network else next(iter(nets.values())))["IPAddress"])

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(self.root / "tomato.db")
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    @property
    def table(self) -> str:
        from tomato.engine.networks import Networks

        return Networks(self.root).table

    def nft_table(self) -> str:
        proc = subprocess.run(["nft", "list", "table", "ip", self.table], capture_output=True,
                              text=True)
        return proc.stdout if proc.returncode == 0 else ""

    def netns_entries(self) -> list[str]:
        try:
            return sorted(os.listdir(self.root / "netns"))
        except FileNotFoundError:
            return []

    def user_networks(self) -> list[str]:
        out = self.run("network", "ls").stdout.splitlines()[1:]
        return [line.split()[1] for line in out
                if line.split()[1] not in ("bridge", "host", "none")]


def until(predicate: Callable[[], Any], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def links() -> set[str]:
    """Link names in our network namespace (sysfs shows the namespace that mounted it)."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@pytest.fixture(scope="package", autouse=True)
def own_netns() -> Iterator[None]:
    """These tests run in a network namespace of their own (lo up), and return to the
    host's after.  Why: other test sessions on a development machine delete every link
    that appears during their tests (their leak check cannot tell whose it is), which
    would pull veths out from under our containers; and our bridges, sysctls
    (ip_forward) and nft table stay off the host's.  `--network host` then means this
    namespace, which is what the engine's caller lives in."""
    from tomato._sys import libc
    from tomato.network.netlink import Netlink

    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    libc.unshare(libc.CLONE_NEWNET)
    try:
        with Netlink() as nl:
            nl.set_up(1)
        yield
    finally:
        libc.setns(home, libc.CLONE_NEWNET)
        os.close(home)


@pytest.fixture(scope="session")
def net_root(storage: Path, busybox_rootfs: Path) -> Path:
    root = storage / "netengine"
    tarball = storage / "busybox-net.tar"
    subprocess.run(["tar", "-C", str(busybox_rootfs), "-cf", str(tarball), "."], check=True)
    env = {**os.environ, "TOMATO_ROOT": str(root)}
    subprocess.run([TOMATO, "import", str(tarball), "busybox:latest"], check=True, env=env,
                   capture_output=True)
    return root


@pytest.fixture
def engine(net_root: Path) -> Iterator[Engine]:
    eng = Engine(net_root)
    yield eng
    for cid in eng.ids():
        eng.run("rm", "-f", "-v", cid, check=False)
    for name in eng.user_networks():
        eng.run("network", "rm", name, check=False)
    left = eng.query("SELECT container_id FROM endpoints") + \
        eng.query("SELECT container_id FROM ports")
    table = eng.nft_table()
    entries = eng.netns_entries()
    if table:
        subprocess.run(["nft", "delete", "table", "ip", eng.table], check=False)
    assert not left, f"leases or ports left: {left}"
    assert not entries, f"netns left: {entries}"
    assert not table, f"nft table left:\n{table}"


HTTPD = "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www"
