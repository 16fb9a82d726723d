"""Helpers shared by the cgroup integration tests (imported as a plain module)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from tomato.cgroups import Manager

PY = sys.executable


class Procs:
    """Processes started stopped-at-a-read, moved into a cgroup, then released,
    so every instruction they run is accounted to the cgroup."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, mgr: Manager, argv: list[str], **kw) -> subprocess.Popen:
        # "read" holds the shell until we have moved it; exec keeps the pid.
        p = subprocess.Popen(["/bin/sh", "-c", 'read _ && exec "$@"', "sh", *argv],
                             stdin=subprocess.PIPE, **kw)
        self.started.append(p)
        mgr.apply(p.pid)
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.close()
        p.stdin = None  # so communicate() does not flush it
        return p

    def python(self, mgr: Manager, code: str, **kw) -> subprocess.Popen:
        return self.start(mgr, [PY, "-c", code], **kw)

    def cleanup(self) -> None:
        for p in self.started:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()


def read_file(mgr: Manager, controller: str, name: str) -> str:
    """The content of a control file: ``controller`` picks the v1 hierarchy."""
    d = mgr.paths[""] if mgr.version == 2 else mgr.paths[controller]
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def has_file(mgr: Manager, controller: str, name: str) -> bool:
    d = mgr.paths.get("" if mgr.version == 2 else controller)
    return d is not None and os.path.exists(os.path.join(d, name))


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def block_device() -> tuple[int, int] | None:
    """major:minor of a whole disk that supports throttling (not loop/ram/zram)."""
    try:
        names = sorted(os.listdir("/sys/block"))
    except OSError:
        return None
    for name in names:
        if name.startswith(("loop", "ram", "zram", "nbd", "sr", "fd")):
            continue
        try:
            with open(f"/sys/block/{name}/dev") as f:
                major, minor = f.read().strip().split(":")
            return int(major), int(minor)
        except OSError:
            continue
    return None
