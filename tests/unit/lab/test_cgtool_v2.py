"""CgroupTool's choices on a pure cgroup2 host, against a directory shaped like one.

(The real-kernel v2 run is the KVM guest lane; this checks which files get which
values when v1 names are given, without a kernel.)"""

from __future__ import annotations

import io

import pytest

from tomato.cgroups import Hierarchy
from tomato.errors import InvalidArgument, Unavailable
from tomato.lab.cgtool import CgroupTool, parse_group
from tomato.lab.explain import Explainer


@pytest.fixture
def v2(tmp_path):
    (tmp_path / "cgroup.subtree_control").write_text("")
    h = Hierarchy(str(tmp_path), "/", frozenset({"cpu", "memory", "pids", "io"}), 2, "/")
    return tmp_path, h


def test_v1_names_on_a_v2_host(v2):
    root, h = v2
    out = io.StringIO()
    tool = CgroupTool([h], Explainer(out))
    (root / "tomato-lab").mkdir()  # the kernel makes these files in every new group
    (root / "tomato-lab" / "cgroup.subtree_control").write_text("")
    tool.create(("cpu", "cpuacct", "memory"), "tomato-lab/my")
    grp = root / "tomato-lab" / "my"
    assert grp.is_dir()
    # The parent enables the controllers for its children, as the kernel requires.
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory"
    assert (root / "tomato-lab" / "cgroup.subtree_control").read_text().startswith("+")
    (grp / "cpu.max").write_text("max 100000\n")
    (grp / "memory.max").write_text("max\n")
    tool.set("tomato-lab/my", "cpu.cfs_quota_us", "30000")
    assert (grp / "cpu.max").read_text() == "30000 100000"
    assert tool.get("tomato-lab/my", "cpu.cfs_quota_us") == "30000"
    tool.set("tomato-lab/my", "memory.limit_in_bytes", "-1")
    assert (grp / "memory.max").read_text() == "max"
    assert f'write("{grp}/cpu.max", "30000 100000")' in out.getvalue()


def test_missing_controller_names_what_is_there(v2):
    _root, h = v2
    with pytest.raises(Unavailable, match="net_cls is not mounted.*cpu, io, memory, pids"):
        CgroupTool([h]).place("net_cls", "x")


def test_parse_group():
    assert parse_group("cpu,cpuacct:tomato-lab/my") == (("cpu", "cpuacct"), "tomato-lab/my")
    for bad in ("cpu", ":x", "cpu:", "cpu:../x", "cpu:/"):
        with pytest.raises(InvalidArgument):
            parse_group(bad)
