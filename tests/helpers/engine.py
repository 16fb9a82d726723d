"""Driving the `tomato` CLI from tests, and a network namespace of a test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOMATO = str(Path(sys.executable).parent / "tomato")


def engine_root_with_busybox(root: Path, busybox_rootfs: Path) -> Path:
    """An engine root at ``root`` with the busybox rootfs imported as busybox:latest."""
    tarball = root.with_name(root.name + "-busybox.tar")
    subprocess.run(["tar", "-C", str(busybox_rootfs), "-cf", str(tarball), "."], check=True)
    subprocess.run([TOMATO, "import", str(tarball), "busybox:latest"], check=True,
                   env={**os.environ, "TOMATO_ROOT": str(root)}, capture_output=True)
    return root


def until(predicate: Callable[[], Any], timeout: float = 10) -> bool:
    """Poll ``predicate`` every 50 ms until it holds; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@dataclass
class Engine:
    """`tomato` against one engine root."""

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


@contextmanager
def own_network_namespace() -> Iterator[None]:
    """Run in a fresh network namespace (lo up), then return to the one we came from.

    On a development machine other test sessions delete links that appear during
    their tests; in a namespace of our own, our bridges, veths, sysctls and nft
    table stay off the host's and out of their reach."""
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
