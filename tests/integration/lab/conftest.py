"""Fixtures for the lab commands: run `tomato` as a user would, with a private state root."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TOMATO = str(Path(sys.executable).parent / "tomato")


@pytest.fixture
def tomato(workdir: Path) -> Iterator[Callable[..., subprocess.CompletedProcess]]:
    """tomato(*args, check=True, input=None) → CompletedProcess (text, stdout/stderr captured).

    The root is the test's own, so its default bridge (kept after its containers, as
    Docker's docker0) is the test's to remove: the session's sweep finds only roots
    that still exist, and the workdir is gone by then."""
    env = dict(os.environ, TOMATO_ROOT=str(workdir / "root"))

    def run(*args: str, check: bool = True, timeout: float = 60,
            **kw) -> subprocess.CompletedProcess:
        p = subprocess.run([TOMATO, *args], capture_output=True, text=True, env=env,
                           timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"tomato {' '.join(args)} → {p.returncode}\n{p.stdout}\n"
                                 f"{p.stderr}")
        return p

    yield run
    remove_default_bridge(workdir / "root")


def remove_default_bridge(root: Path) -> None:
    if not (root / "tomato.db").exists():
        return
    from tomato.engine.networks import Networks
    nets = Networks(root)
    subprocess.run(["ip", "link", "delete", nets.default_bridge], capture_output=True)
    subprocess.run(["nft", "delete", "table", "ip", nets.table], capture_output=True)


@pytest.fixture
def lab_group() -> Iterator[str]:
    """A parent group name of our own ("tomato-lab-test-…"), removed afterwards with
    everything in it (processes killed first)."""
    from tomato.lab.cgtool import CgroupTool

    name = f"tomato-lab-test-{uuid.uuid4().hex[:8]}"
    yield name
    tool = CgroupTool()
    ctrls = tuple(tool.mounted())
    for p in tool.places(ctrls, name):
        if not os.path.isdir(p.directory):
            continue
        for dirpath, _d, _f in os.walk(p.directory):
            try:
                pids = open(os.path.join(dirpath, "cgroup.procs")).read().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
    import time
    deadline = time.monotonic() + 10
    for p in tool.places(ctrls, name):
        while os.path.isdir(p.directory):
            try:
                tool.delete((p.controller,), name, recursive=True)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # killed processes leave the group a moment later
