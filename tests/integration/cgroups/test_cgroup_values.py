"""Each OCI resource lands in the right kernel file (v1 or v2 by backend)."""

from __future__ import annotations

import os

import pytest
from cgroup_helpers import block_device, has_file, read_file

from tomato.cgroups import Resources, convert
from tomato.errors import InvalidArgument

MiB = 1 << 20


def set_and_read(mgr, oci: dict, controller: str, v1: str, v2: str) -> str:
    mgr.set(Resources.from_oci(oci))
    name = v1 if mgr.version == 1 else v2
    if not has_file(mgr, controller, name):
        pytest.skip(f"this kernel has no {name}")
    return read_file(mgr, controller, name)


def test_cpu_shares(mgr):
    got = set_and_read(mgr, {"cpu": {"shares": 512}}, "cpu", "cpu.shares", "cpu.weight")
    assert got == ("512" if mgr.version == 1 else str(convert.shares_to_weight(512)))


def test_cpu_quota_period(mgr):
    got = set_and_read(mgr, {"cpu": {"quota": 30000, "period": 100000}}, "cpu",
                       "cpu.cfs_quota_us", "cpu.max")
    if mgr.version == 1:
        assert got == "30000"
        assert read_file(mgr, "cpu", "cpu.cfs_period_us") == "100000"
    else:
        assert got == "30000 100000"
    # -1 lifts the quota again.
    got = set_and_read(mgr, {"cpu": {"quota": -1}}, "cpu", "cpu.cfs_quota_us", "cpu.max")
    assert got == ("-1" if mgr.version == 1 else "max 100000")


def test_cpu_burst_and_idle(mgr):
    got = set_and_read(mgr, {"cpu": {"quota": 50000, "period": 100000, "burst": 10000}}, "cpu",
                       "cpu.cfs_burst_us", "cpu.max.burst")
    assert got == "10000"
    got = set_and_read(mgr, {"cpu": {"idle": 1}}, "cpu", "cpu.idle", "cpu.idle")
    assert got == "1"


def test_cpuset(mgr):
    got = set_and_read(mgr, {"cpu": {"cpus": "0", "mems": "0"}}, "cpuset", "cpuset.cpus",
                       "cpuset.cpus")
    assert got == "0"
    assert read_file(mgr, "cpuset", "cpuset.mems") == "0"


def test_memory_limit_reservation_swap(mgr):
    got = set_and_read(mgr, {"memory": {"limit": 64 * MiB, "reservation": 32 * MiB}}, "memory",
                       "memory.limit_in_bytes", "memory.max")
    assert got == str(64 * MiB)
    low = "memory.soft_limit_in_bytes" if mgr.version == 1 else "memory.low"
    assert read_file(mgr, "memory", low) == str(32 * MiB)
    got = set_and_read(mgr, {"memory": {"limit": 64 * MiB, "swap": 96 * MiB}}, "memory",
                       "memory.memsw.limit_in_bytes", "memory.swap.max")
    # OCI swap is memory+swap (v1 memsw); v2 swap.max is the swap alone.
    assert got == str(96 * MiB if mgr.version == 1 else 32 * MiB)


def test_memory_grow_and_shrink_order(mgr):
    """memsw >= limit must hold at every step, whichever way the values move."""
    for limit, swap in ((32, 32), (128, 256), (16, 24), (-1, -1)):
        lim = limit * MiB if limit > 0 else -1
        sw = swap * MiB if swap > 0 else -1
        mgr.set(Resources.from_oci({"memory": {"limit": lim, "swap": sw}}))
    name = "memory.limit_in_bytes" if mgr.version == 1 else "memory.max"
    got = read_file(mgr, "memory", name)
    assert got == "max" or int(got) > 1 << 60


def test_memory_v1_knobs_and_kernel_warning(mgr):
    mgr.set(Resources.from_oci({"memory": {"swappiness": 10, "disableOOMKiller": True,
                                           "kernel": 64 * MiB}}))
    assert any("memory.kernel" in w for w in mgr.warnings)
    if mgr.version == 1:
        assert read_file(mgr, "memory", "memory.swappiness") == "10"
        assert "oom_kill_disable 1" in read_file(mgr, "memory", "memory.oom_control")
    else:
        assert any("swappiness" in w for w in mgr.warnings)
        assert any("disableOOMKiller" in w for w in mgr.warnings)


def test_pids_limit(mgr):
    assert set_and_read(mgr, {"pids": {"limit": 42}}, "pids", "pids.max", "pids.max") == "42"
    assert set_and_read(mgr, {"pids": {"limit": -1}}, "pids", "pids.max", "pids.max") == "max"


def test_blkio_weight(mgr):
    mgr.set(Resources.from_oci({"blockIO": {"weight": 500}}))
    # v1 and io.bfq.weight take the blkio scale; io.weight the converted value.
    candidates = (("blkio.weight", "500"), ("blkio.bfq.weight", "500")) if mgr.version == 1 \
        else (("io.bfq.weight", "500"), ("io.weight", str(convert.blkio_weight_to_io_weight(500))))
    for name, want in candidates:
        if has_file(mgr, "blkio", name):
            assert read_file(mgr, "blkio", name).split()[-1] == want
            return
    assert any("blockIO.weight" in w for w in mgr.warnings)


def test_blkio_throttle(mgr):
    dev = block_device()
    if dev is None:
        pytest.skip("no block device to throttle on this machine")
    major, minor = dev
    oci = {"blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor,
                                                  "rate": 1048576}],
                       "throttleWriteIOPSDevice": [{"major": major, "minor": minor,
                                                    "rate": 100}]}}
    mgr.set(Resources.from_oci(oci))
    if mgr.version == 1:
        assert f"{major}:{minor} 1048576" in read_file(mgr, "blkio",
                                                       "blkio.throttle.read_bps_device")
        assert f"{major}:{minor} 100" in read_file(mgr, "blkio",
                                                   "blkio.throttle.write_iops_device")
    else:
        line = read_file(mgr, "io", "io.max")
        assert f"{major}:{minor}" in line and "rbps=1048576" in line and "wiops=100" in line


def test_blkio_throttle_unknown_device_is_refused(mgr):
    oci = {"blockIO": {"throttleReadBpsDevice": [{"major": 4095, "minor": 4095,
                                                  "rate": 1}]}}
    with pytest.raises(InvalidArgument, match="4095:4095"):
        mgr.set(Resources.from_oci(oci))


def test_network_class_and_priorities(mgr):
    mgr.set(Resources.from_oci({"network": {"classID": 0x100001,
                                            "priorities": [{"name": "lo", "priority": 5}]}}))
    if mgr.version == 1 and "net_cls" in mgr.paths:
        assert read_file(mgr, "net_cls", "net_cls.classid") == str(0x100001)
    else:
        assert any("network" in w for w in mgr.warnings)
    if mgr.version == 1 and "net_prio" in mgr.paths:
        assert "lo 5" in read_file(mgr, "net_prio", "net_prio.ifpriomap")


def test_hugepage_limit(mgr):
    mgr.set(Resources.from_oci({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]}))
    for ctrl, name in (("hugetlb", "hugetlb.2MB.limit_in_bytes"), ("", "hugetlb.2MB.max")):
        d = mgr.paths.get(ctrl)
        if d and os.path.exists(os.path.join(d, name)):
            with open(os.path.join(d, name)) as f:
                assert f.read().strip() == str(4 * MiB)
            return
    assert any("hugepageLimits" in w for w in mgr.warnings)


def test_unified_keys(mgr):
    if "" not in mgr.paths:
        with pytest.raises(InvalidArgument, match="unified"):
            mgr.set(Resources.from_oci({"unified": {"cgroup.max.descendants": "5"}}))
        return
    key, value = ("memory.high", str(48 * MiB)) if mgr.version == 2 else \
        ("cgroup.max.descendants", "5")
    mgr.set(Resources.from_oci({"unified": {key: value}}))
    with open(os.path.join(mgr.paths[""], key)) as f:
        assert f.read().strip() == value


def test_realtime_runtime(mgr):
    """v1: the rt budget is granted through the parents this container owns;
    v2 has no rt bandwidth (a warning)."""
    oci = {"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 10000}}
    if mgr.version == 2:
        mgr.set(Resources.from_oci(oci))
        assert any("realtime" in w for w in mgr.warnings)
        return
    if not has_file(mgr, "cpu", "cpu.rt_runtime_us"):
        pytest.skip("this kernel has no RT group scheduling (CONFIG_RT_GROUP_SCHED)")
    mgr.set(Resources.from_oci(oci))
    assert read_file(mgr, "cpu", "cpu.rt_runtime_us") == "10000"
    assert read_file(mgr, "cpu", "cpu.rt_period_us") == "1000000"
    # Give the budget back so the parent can be removed cleanly.
    mgr.set(Resources.from_oci({"cpu": {"realtimeRuntime": 0}}))
