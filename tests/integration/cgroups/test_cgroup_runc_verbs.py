"""The cgroup side of runc's verbs, on both backends (v1 here, v2 in tools/cgroup2-vm):
`exec --cgroup SUB` (apply_sub), `delete --force` of sub-cgroups a container made
(destroy), `kill --all` of what is left, an update while paused (set leaves it frozen)."""

from __future__ import annotations

import os
import time

import pytest

from tomato.cgroups import Resources
from tomato.errors import InvalidArgument, NotFound


def _sub_dirs(mgr, name: str) -> list[str]:
    """mkdir -p NAME in each of the container's cgroups, as a process inside would; a
    v1 cpuset child starts empty, so it gets its parent's cpus and mems (as runc, the
    runtime does not fill a sub-cgroup it did not make)."""
    out = []
    for d in dict.fromkeys(mgr.paths.values()):
        parent = d
        for part in name.split("/"):
            child = os.path.join(parent, part)
            os.makedirs(child, exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):
                path = os.path.join(child, knob)
                if os.path.exists(path) and not open(path).read().strip():
                    with open(os.path.join(parent, knob)) as f, open(path, "w") as g:
                        g.write(f.read().strip())
            parent = child
        out.append(parent)
    return out


def _cgroups_of(pid: int) -> set[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return {line.strip().split(":", 2)[2] for line in f}


def test_apply_sub_joins_the_sub_cgroup_of_every_hierarchy(mgr, procs):
    subs = _sub_dirs(mgr, "sub")
    holder = procs.start(mgr, ["sleep", "30"])  # the container's own process
    extra = procs.start(mgr, ["sleep", "30"])
    mgr.apply_sub(extra.pid, {"": "sub"})
    for d in subs:
        with open(os.path.join(d, "cgroup.procs")) as f:
            assert str(extra.pid) in f.read().split()
    assert all(p.endswith("/sub") for p in _cgroups_of(extra.pid) if "tomato-test-" in p)
    assert holder.pid in mgr.pids() and extra.pid in mgr.pids()


def test_apply_sub_refuses_what_is_not_a_sub_cgroup(mgr, procs):
    p = procs.start(mgr, ["sleep", "30"])
    with pytest.raises(InvalidArgument, match="not a sub-cgroup"):
        mgr.apply_sub(p.pid, {"": "../.."})
    with pytest.raises(NotFound, match="does not exist"):
        mgr.apply_sub(p.pid, {"": "missing"})
    with pytest.raises(InvalidArgument, match="unknown controller"):
        mgr.apply_sub(p.pid, {"nosuchcontroller": "x"})


def test_destroy_takes_the_sub_cgroups_a_container_made(mgr, procs):
    _sub_dirs(mgr, "sub/deeper")
    p = procs.start(mgr, ["sleep", "30"])
    mgr.apply_sub(p.pid, {"": "sub/deeper"})
    mgr.kill_all(9)
    deadline = time.monotonic() + 10
    while mgr.pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    p.wait(timeout=10)
    mgr.destroy()
    assert not mgr.exists()


def test_kill_all_signals_what_a_sub_cgroup_holds(mgr, procs):
    _sub_dirs(mgr, "sub")
    p = procs.start(mgr, ["sleep", "30"])
    mgr.apply_sub(p.pid, {"": "sub"})
    mgr.kill_all(9)
    assert p.wait(timeout=10) == -9


def test_update_of_a_frozen_cgroup_leaves_it_frozen(mgr, procs):
    procs.start(mgr, ["sleep", "30"])
    mgr.freeze()
    mgr.set(Resources.from_oci({"pids": {"limit": 40}}))
    assert mgr.frozen()
    mgr.thaw()
