"""Write plans of both backends against fake control files in a temp dir."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tomato.cgroups import Resources, load_manager, new_manager
from tomato.cgroups.detect import Hierarchy
from tomato.cgroups.v1 import V1Manager
from tomato.cgroups.v2 import V2Manager
from tomato.errors import InvalidArgument

MiB = 1 << 20


def fake(d, files: dict[str, str]) -> str:
    os.makedirs(d, exist_ok=True)
    for name, value in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(value + "\n")
    return str(d)


def v1(tmp_path, **extra) -> V1Manager:
    mem = fake(tmp_path / "memory" / "c", {"memory.limit_in_bytes": str(64 * MiB),
                                            "memory.memsw.limit_in_bytes": str(64 * MiB)})
    cpu = fake(tmp_path / "cpu" / "c", {"cpu.shares": "1024", "cpu.cfs_quota_us": "-1",
                                         "cpu.cfs_period_us": "100000"})
    return V1Manager({"memory": mem, "cpu": cpu, **extra}, None, {}, "c", "c")


def names(writes):
    return [(os.path.basename(w.path), w.value) for w in writes]


def test_v1_memory_grow_writes_memsw_first(tmp_path):
    m = v1(tmp_path)
    plan = m.plan(Resources.from_oci({"memory": {"limit": 128 * MiB, "swap": 256 * MiB}}))
    assert names(plan) == [("memory.memsw.limit_in_bytes", str(256 * MiB)),
                           ("memory.limit_in_bytes", str(128 * MiB))]


def test_v1_memory_shrink_writes_limit_first(tmp_path):
    m = v1(tmp_path)
    plan = m.plan(Resources.from_oci({"memory": {"limit": 16 * MiB, "swap": 32 * MiB}}))
    assert names(plan) == [("memory.limit_in_bytes", str(16 * MiB)),
                           ("memory.memsw.limit_in_bytes", str(32 * MiB))]


def test_v1_unlimited_memory_also_lifts_memsw(tmp_path):
    plan = v1(tmp_path).plan(Resources.from_oci({"memory": {"limit": -1}}))
    assert names(plan) == [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]


def test_v1_swap_below_limit_is_invalid(tmp_path):
    with pytest.raises(InvalidArgument, match="memory.swap"):
        v1(tmp_path).plan(Resources.from_oci({"memory": {"limit": 64 * MiB, "swap": MiB}}))


def test_v1_quota_period_order(tmp_path):
    m = v1(tmp_path)
    assert names(m.plan(Resources.from_oci({"cpu": {"quota": 30000, "period": 50000}}))) == [
        ("cpu.cfs_period_us", "50000"), ("cpu.cfs_quota_us", "30000")]
    assert names(m.plan(Resources.from_oci({"cpu": {"quota": -1, "period": 50000}}))) == [
        ("cpu.cfs_quota_us", "-1"), ("cpu.cfs_period_us", "50000")]


def test_v1_devices_plan(tmp_path):
    dev = fake(tmp_path / "devices" / "c", {"devices.allow": "", "devices.deny": ""})
    m = v1(tmp_path, devices=dev)
    plan = m.plan(Resources.from_oci({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "b", "access": "m"}]}))
    assert names(plan) == [("devices.deny", "a"), ("devices.allow", "c 1:3 rwm"),
                           ("devices.allow", "b *:* m")]


def test_v1_devices_minimal_transition(tmp_path):
    """From one allow-list to another without a deny-all moment in between."""
    dev = fake(tmp_path / "devices" / "c", {"devices.allow": "", "devices.deny": "",
                                             "devices.list": "c 1:3 rwm\nc 1:5 rwm"})
    m = v1(tmp_path, devices=dev)
    plan = m.plan(Resources.from_oci({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"}]}))
    assert names(plan) == [("devices.deny", "c 1:3 rwm"), ("devices.allow", "c 1:9 rwm")]


def test_v1_missing_controllers_warn(tmp_path):
    m = v1(tmp_path)
    m.plan(Resources.from_oci({"network": {"classID": 1}, "pids": {"limit": 5},
                               "memory": {"kernel": 1}}))
    text = " ".join(m.warnings)
    assert "net_cls" in text and "pids" in text and "memory.kernel" in text


def test_v2_plan(tmp_path):
    d = fake(tmp_path / "c", {"cpu.weight": "100", "cpu.max": "max 100000",
                              "memory.max": "max", "memory.swap.max": "max",
                              "memory.low": "0", "pids.max": "max", "io.weight": "default 100"})
    m = V2Manager(d, str(tmp_path), 0, "c", "c")
    plan = m.plan(Resources.from_oci({
        "cpu": {"shares": 1024, "quota": 20000},
        "memory": {"limit": 64 * MiB, "swap": 96 * MiB, "reservation": MiB, "swappiness": 1},
        "pids": {"limit": 0}, "blockIO": {"weight": 1000},
        "unified": {"cpu.weight": "7"}}))
    assert names(plan) == [("cpu.max", "20000 100000"), ("memory.max", str(64 * MiB)),
                           ("memory.swap.max", str(32 * MiB)), ("memory.low", str(MiB)),
                           ("pids.max", "max"), ("io.weight", "default 10000"),
                           ("cpu.weight", "7")]  # unified overrides the converted shares
    assert any("swappiness" in w for w in m.warnings)


def test_new_manager_paths_and_round_trip():
    found = [Hierarchy("/cg/cpu", "/", frozenset({"cpu", "cpuacct"}), 1, "/user/1"),
             Hierarchy("/cg/unified", "/", frozenset(), 2, "/u")]
    rel = new_manager("", "abc", found)
    assert rel.paths == {"cpu": "/cg/cpu/user/1/tomato/abc", "cpuacct": "/cg/cpu/user/1/tomato/abc",
                         "": "/cg/unified/u/tomato/abc"}
    ab = new_manager("/x/y", "abc", found)
    assert ab.paths["cpu"] == "/cg/cpu/x/y"
    assert load_manager(ab.to_dict()).paths == ab.paths
    v2 = new_manager("/x/y", "abc", [Hierarchy("/sys/fs/cgroup", "/", frozenset(), 2, "/")])
    assert v2.version == 2 and v2.paths == {"": "/sys/fs/cgroup/x/y"}
    assert load_manager(v2.to_dict()).paths == v2.paths


def test_import_is_light():
    """The runtime imports this on its start path: no ctypes (the bpf module is
    lazy), no dataclasses/re/typing (each costs milliseconds)."""
    code = ("import sys, tomato.cgroups as c; c.new_manager('', 'x', []) if False else None;"
            "print(sorted(m for m in ('ctypes', 'json', 'subprocess', 'threading',"
            " 'dataclasses', 're', 'typing', 'inspect')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_parents_to_remove():
    from tomato.cgroups.base import parents_to_remove

    assert parents_to_remove(2, "tomato/x", "x") == 1
    assert parents_to_remove(1, "tomato/x", "x") == 1  # the shared default parent
    assert parents_to_remove(1, "pods/x", "x") == 0    # someone else's parent
    assert parents_to_remove(3, "/a/b/x", "x") == 2
    assert parents_to_remove(0, "/a/b/x", "x") == 0


def test_v2_missing_controller_is_an_error_not_a_silent_skip(tmp_path):
    from tomato.errors import Unavailable

    d = fake(tmp_path / "c", {"cpu.max": "max 100000"})
    m = V2Manager(d, str(tmp_path), 0, "c", "c")
    with pytest.raises(Unavailable, match="memory controller is not enabled"):
        m.plan(Resources.from_oci({"memory": {"limit": MiB}}))
    m.plan(Resources.from_oci({"cpu": {"quota": 10000, "burst": 5}}))  # burst: optional
    assert any("cpu.max.burst" in w for w in m.warnings)


def _rt_tree(tmp_path, parent_runtime: str, sibling: tuple[str, str] | None = None):
    """cpu/tomato/c (ours, made by us) under cpu/tomato, with rt files."""
    root = tmp_path / "cpu"
    fake(root, {"cpu.rt_runtime_us": "950000", "cpu.rt_period_us": "1000000"})
    fake(root / "tomato", {"cpu.rt_runtime_us": parent_runtime,
                           "cpu.rt_period_us": "1000000"})
    if sibling:
        fake(root / "tomato" / "other", {"cpu.rt_runtime_us": sibling[0],
                                         "cpu.rt_period_us": sibling[1]})
    ours = fake(root / "tomato" / "c", {"cpu.rt_runtime_us": "0", "cpu.rt_period_us": "1000000",
                                        "cpu.shares": "1024"})
    return V1Manager({"cpu": ours}, None, {ours: 1}, "tomato/c", "c")


def test_v1_rt_parent_grows_by_bandwidth_not_by_runtime(tmp_path):
    """2000us of every 100000us is 2%: the parent, with a 1 s period, needs 20000us."""
    m = _rt_tree(tmp_path, "0")
    plan = m.plan(Resources.from_oci({"cpu": {"realtimePeriod": 100000,
                                              "realtimeRuntime": 2000}}))
    assert names(plan) == [("cpu.rt_runtime_us", "20000"), ("cpu.rt_period_us", "100000"),
                           ("cpu.rt_runtime_us", "2000")]
    assert plan[0].path.endswith("/tomato/cpu.rt_runtime_us")


def test_v1_rt_parent_keeps_room_for_siblings(tmp_path):
    m = _rt_tree(tmp_path, "10000", sibling=("5000", "100000"))  # a sibling holds 5%
    plan = m.plan(Resources.from_oci({"cpu": {"realtimeRuntime": 10000}}))  # 1%, 1 s period
    assert names(plan)[0] == ("cpu.rt_runtime_us", "60000")


def test_v1_rt_period_below_the_current_runtime_goes_after_it(tmp_path):
    m = _rt_tree(tmp_path, "950000")
    with open(os.path.join(m.paths["cpu"], "cpu.rt_runtime_us"), "w") as f:
        f.write("300000\n")
    plan = m.plan(Resources.from_oci({"cpu": {"realtimePeriod": 200000,
                                              "realtimeRuntime": 100000}}))
    assert names(plan) == [("cpu.rt_runtime_us", "100000"), ("cpu.rt_period_us", "200000")]
