"""Fixtures for cgroup tests: managers under a parent of our own, and processes
started inside them.

The same tests run on the development machine (v1 hybrid: the v1 backend) and
in the KVM guest of tools/cgroup2-vm (pure cgroup2: the v2 backend); each test
asks the manager for its ``version`` where the kernel files differ.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from cgroup_helpers import Procs

from tomato.cgroups import Manager, new_manager


@pytest.fixture
def procs() -> Iterator[Procs]:
    p = Procs()
    yield p
    p.cleanup()


@pytest.fixture
def parent_name() -> str:
    return f"tomato-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_manager(parent_name: str) -> Iterator[Callable[..., Manager]]:
    """make_manager(name="c", path=None) → a created Manager under our parent."""
    made: list[Manager] = []

    def make(name: str = "c", path: str | None = None, create: bool = True) -> Manager:
        m = new_manager(path if path is not None else f"{parent_name}/{name}", name)
        if create:
            m.create()
        made.append(m)
        return m

    yield make
    for m in reversed(made):
        if m.exists():
            try:
                if m.frozen():
                    m.thaw()
                if m.pids():
                    m.kill_all(9)
                    deadline = time.monotonic() + 10
                    while m.pids() and time.monotonic() < deadline:
                        time.sleep(0.02)
            except Exception:
                pass
            m.destroy()
    # Parents the managers made are removed by destroy(); catch stragglers.
    for m in made:
        for d in m.paths.values():
            p = os.path.dirname(d)
            if os.path.basename(p) == parent_name and os.path.isdir(p):
                for sub in sorted(os.listdir(p)):
                    if os.path.isdir(os.path.join(p, sub)):
                        os.rmdir(os.path.join(p, sub))
                os.rmdir(p)


@pytest.fixture
def mgr(make_manager: Callable[..., Manager]) -> Manager:
    return make_manager()
