"""An engine root with a busybox image for the network tests, and a strict cleanup:
after each test every container and user network is removed and nothing of
Tomato's networking may remain (netns files, leases, ports, the nft table)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.engine import (
    TOMATO,  # noqa: F401 — tests import it from here
    engine_root_with_busybox,
    own_network_namespace,
    until,  # noqa: F401 — tests import it from here
)
from helpers.engine import Engine as BaseEngine


class Engine(BaseEngine):
    """The shared test Engine, plus what the network tests look at."""

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

    def default_bridge(self) -> str:
        """The default network's bridge: it stays when its last container goes, as
        Docker's docker0 (empty before the default network is first used)."""
        rows = self.query("SELECT bridge FROM networks WHERE builtin=1")
        return str(rows[0][0]) if rows else ""

    def container_rules(self) -> list[str]:
        """Lines of our nft table that belong to containers (published ports, their
        hairpin masquerade) or to user networks: none once they are all gone."""
        table = self.nft_table()
        return [line.strip() for line in table.splitlines()
                if "dnat to" in line or " dport " in line or '"tomato-' in line]

    def netns_entries(self) -> list[str]:
        try:
            return sorted(os.listdir(self.root / "netns"))
        except FileNotFoundError:
            return []

    def user_networks(self) -> list[str]:
        out = self.run("network", "ls").stdout.splitlines()[1:]
        return [line.split()[1] for line in out
                if line.split()[1] not in ("bridge", "host", "none")]


def links_gone(before: set[str], keep: str = "") -> bool:
    """Every link made since ``before`` is gone (but ``keep``, the default bridge),
    waiting (bounded) for the kernel: an unpinned netns, and the veths in it, are
    destroyed by a kernel worker a moment after the engine lets go of it."""
    return until(lambda: links() - before - {keep} == set(), timeout=5)


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
    with own_network_namespace():
        yield


@pytest.fixture(scope="session")
def net_root(storage: Path, busybox_rootfs: Path) -> Path:
    return engine_root_with_busybox(storage / "netengine", busybox_rootfs)


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
    rules = eng.container_rules()
    entries = eng.netns_entries()
    assert not left, f"leases or ports left: {left}"
    assert not entries, f"netns left: {entries}"
    assert not rules, f"nft rules of containers or user networks left: {rules}"


HTTPD = "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www"
