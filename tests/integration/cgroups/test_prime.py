"""cgroups.prime_migration: a helper re-joins its own cgroup (so the grace period a
cgroup move waits for passes early) and changes nobody's membership."""

from __future__ import annotations

import os

from tomato import cgroups


def _own() -> str:
    with open("/proc/self/cgroup") as f:
        return f.read()


def test_the_helper_rejoins_its_own_cgroup_and_moves_nobody() -> None:
    before = _own()
    pid = cgroups.prime_migration()
    assert pid > 0
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # the write to cgroup.procs succeeded
    assert _own() == before
    cgroups.reap(pid)  # reaping twice is harmless


def test_reap_of_nothing_is_nothing() -> None:
    cgroups.reap(0)
