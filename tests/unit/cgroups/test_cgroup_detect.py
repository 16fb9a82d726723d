"""Parsing /proc/self/mountinfo + /proc/self/cgroup into hierarchies (pure)."""

from __future__ import annotations

import pytest

from tomato.cgroups.detect import Hierarchy, mode_of, parse_hierarchies

HYBRID_MI = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CG = """\
9:name=systemd:/
4:memory:/process_api/af08
2:cpuacct:/
1:cpu:/
0::/
"""


def v2ctl(names):
    return lambda mountpoint: frozenset(names)


def test_hybrid_with_separate_cpu_and_cpuacct():
    found = parse_hierarchies(HYBRID_MI, HYBRID_CG, v2ctl(["hugetlb"]))
    assert [h.mountpoint for h in found] == [
        "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/unified"]  # name=systemd carries no controller
    mem = found[2]
    assert mem == Hierarchy("/sys/fs/cgroup/memory", "/", frozenset({"memory"}), 1,
                            "/process_api/af08")
    assert mem.directory(mem.own_path) == "/sys/fs/cgroup/memory/process_api/af08"
    assert found[3].version == 2 and found[3].controllers == {"hugetlb"}
    assert mode_of(found) == "hybrid"


def test_legacy_comounted_cpu_cpuacct():
    mi = ("25 20 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
          "26 20 0:23 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n")
    cg = "3:cpu,cpuacct:/user.slice\n2:pids:/user.slice/x\n"
    found = parse_hierarchies(mi, cg, v2ctl([]))
    assert found[0].controllers == {"cpu", "cpuacct"}
    assert found[0].own_path == "/user.slice"
    assert mode_of(found) == "legacy"


def test_unified_only():
    mi = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    found = parse_hierarchies(mi, "0::/user.slice/session-1.scope\n",
                              v2ctl(["cpu", "memory", "pids", "io"]))
    assert len(found) == 1 and found[0].version == 2
    assert found[0].directory("/user.slice/session-1.scope") == \
        "/sys/fs/cgroup/user.slice/session-1.scope"
    assert mode_of(found) == "unified"


def test_mount_of_a_subtree_and_escaped_mountpoint():
    # Inside a container: the mount shows only /docker/abc, at a path with a space.
    mi = "40 30 0:26 /docker/abc /mnt/cg\\040root rw - cgroup2 cgroup2 rw\n"
    found = parse_hierarchies(mi, "0::/docker/abc/inner\n", v2ctl(["cpu"]))
    assert found[0].mountpoint == "/mnt/cg root"
    assert found[0].directory("/docker/abc/inner") == "/mnt/cg root/inner"
    with pytest.raises(ValueError):
        found[0].directory("/elsewhere")


def test_duplicate_mounts_keep_first():
    mi = ("30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
          "31 25 0:26 / /run/other rw - cgroup2 cgroup2 rw\n")
    found = parse_hierarchies(mi, "0::/\n", v2ctl([]))
    assert [h.mountpoint for h in found] == ["/sys/fs/cgroup"]


def test_no_cgroups():
    assert parse_hierarchies("", "", v2ctl([])) == []
    assert mode_of([]) == "none"
