"""OCI linux.resources parsing and validation (pure)."""

from __future__ import annotations

import pytest

from tomato.cgroups.resources import (
    CPU,
    DeviceRule,
    Memory,
    Resources,
    effective_device_rules,
    parse_cpuset,
)
from tomato.errors import InvalidArgument

FULL = {
    "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000,
            "realtimeRuntime": 0, "realtimePeriod": 0, "cpus": "0-1", "mems": "0", "idle": 0},
    "memory": {"limit": 1 << 27, "reservation": 1 << 26, "swap": 1 << 28, "kernel": -1,
               "kernelTCP": -1, "swappiness": 60, "disableOOMKiller": False},
    "pids": {"limit": 100},
    "blockIO": {"weight": 300, "leafWeight": 10,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}]},
    "devices": [{"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "wr"}],
    "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],
    "unified": {"memory.high": "100000000"},
    "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
}


def test_full_spec():
    r = Resources.from_oci(FULL)
    assert r.cpu == CPU(1024, 50000, 1000, 100000, 0, 0, "0-1", "0", 0)
    assert r.memory == Memory(1 << 27, 1 << 26, 1 << 28, -1, -1, 60, False)
    assert r.pids.limit == 100
    assert r.block_io.weight_device[0].weight == 500
    assert r.block_io.throttle_read_bps_device[0].rate == 1000
    assert r.devices[1] == DeviceRule(True, "c", 1, 3, "rw")
    assert r.devices[1].v1_lines() == ["c 1:3 rw"]
    assert DeviceRule(True, "a", None, None, "m").v1_lines() == ["b *:* m", "c *:* m"]
    assert DeviceRule(False).v1_lines() == ["a *:* rwm"]
    assert r.network.priorities == (("eth0", 5),)
    assert r.hugepage_limits[0].page_size == "2MB"
    assert r.unified == (("memory.high", "100000000"),)
    assert r.rdma[0].hca_objects == 10000
    hash(r)  # frozen all the way down


def test_empty_and_none():
    assert Resources.from_oci(None) == Resources()
    assert Resources.from_oci({}) == Resources()
    assert Resources.from_oci({"devices": []}).devices == ()


@pytest.mark.parametrize("spec, field", [
    ([], "linux.resources: must be an object"),
    ({"cpu": {"shares": -1}}, "cpu.shares"),
    ({"cpu": {"shares": True}}, "cpu.shares"),
    ({"cpu": {"quota": 500}}, "cpu.quota"),
    ({"cpu": {"period": 10}}, "cpu.period"),
    ({"cpu": {"cpus": "3-1"}}, "cpu.cpus"),
    ({"cpu": {"mems": "a"}}, "cpu.mems"),
    ({"cpu": {"idle": 2}}, "cpu.idle"),
    ({"memory": {"swappiness": 101}}, "memory.swappiness"),
    ({"memory": {"disableOOMKiller": "yes"}}, "memory.disableOOMKiller"),
    ({"pids": {"limit": -2}}, "pids.limit"),
    ({"blockIO": {"weight": 1001}}, "blockIO.weight"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "rate": 1}]}},
     "blockIO.throttleReadBpsDevice[0]"),
    ({"devices": [{"allow": "no"}]}, "devices[0].allow"),
    ({"devices": [{"allow": True, "type": "p"}]}, "devices[0].type"),
    ({"devices": [{"allow": True, "access": "rr"}]}, "devices[0].access"),
    ({"network": {"priorities": [{"name": "a/b", "priority": 1}]}},
     "network.priorities[0].name"),
    ({"hugepageLimits": [{"pageSize": "2MB"}]}, "hugepageLimits[0].limit"),
    ({"unified": {"../x": "1"}}, "unified"),
    ({"unified": {"cgroup.procs": "1"}}, "unified.cgroup.procs"),
    ({"unified": {"memory.high": 5}}, "unified.memory.high"),
    ({"rdma": {"dev": {"hcaHandles": -1}}}, "rdma.dev.hcaHandles"),
])
def test_invalid(spec, field):
    with pytest.raises(InvalidArgument) as exc:
        Resources.from_oci(spec)
    msg = str(exc.value)
    assert field in msg
    # One line, starting with the field's full name (OCI spells fields in camelCase).
    assert msg.startswith("linux.resources") and "\n" not in msg


def test_cpuset_parser():
    assert parse_cpuset("0-2,5") == {0, 1, 2, 5}
    assert parse_cpuset("") == frozenset()
    for bad in ("0-", ",1", "1,,2", "2-1", "x"):
        with pytest.raises(ValueError):
            parse_cpuset(bad)


def test_effective_device_rules():
    deny_all = DeviceRule(False)
    allow_all = DeviceRule(True)
    null = DeviceRule(True, "c", 1, 3, "rwm")
    # runc's emulator: a white-list unless a wildcard allow says otherwise.
    assert effective_device_rules(()) == (False, ())
    assert effective_device_rules((null,)) == (False, (null,))
    assert effective_device_rules((deny_all, null)) == (False, (null,))
    # A later wildcard forgets what came before.
    assert effective_device_rules((deny_all, null, allow_all)) == (True, ())
    # A partial wildcard (no "m") is an exception, not a reset.
    partial = DeviceRule(False, "a", None, None, "rw")
    assert effective_device_rules((allow_all, partial)) == (True, (partial,))
