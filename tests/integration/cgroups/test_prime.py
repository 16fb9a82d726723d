"""cgroups.prime_migration: a thread (or a helper) re-joins its own cgroup (so the grace period a
cgroup move waits for passes early) and changes nobody's membership."""

from __future__ import annotations

import subprocess

import pytest

from tomato import cgroups


def _own(pid: int | str = "self") -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return f.read()


@pytest.mark.parametrize("in_thread", [True, False], ids=["thread", "helper-process"])
def test_the_write_rejoins_our_own_cgroup_and_moves_nobody(in_thread: bool) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        before, theirs = _own(), _own(other.pid)
        primer = cgroups.prime_migration(in_thread)
        assert primer is not None
        assert primer.finished(wait=True)
        assert primer.finished(wait=False)  # and stays finished
        assert _own() == before and _own(other.pid) == theirs
        # a real move right after is unaffected (and quick, which is the point)
        child = subprocess.Popen(["sleep", "30"])
        try:
            assert _own(child.pid) == before
        finally:
            child.kill()
            child.wait()
    finally:
        other.kill()
        other.wait()
