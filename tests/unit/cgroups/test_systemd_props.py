"""The systemd driver's pure parts: unit and slice names from cgroupsPath, and OCI
resources as unit properties (the values runc's systemd driver sends)."""

from __future__ import annotations

import pytest

from tomato.cgroups.dbus import Variant
from tomato.cgroups.resources import DeviceRule, Resources
from tomato.cgroups.systemd import expand_slice, parse_cgroups_path
from tomato.cgroups.systemd_props import (
    INFINITY,
    annotation_properties,
    device_properties,
    parse_gvariant,
    range_to_bits,
    resource_properties,
)
from tomato.errors import InvalidArgument


@pytest.mark.parametrize(("name", "path"), [
    ("system.slice", "/system.slice"),
    ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ("kubepods-besteffort-pod12.slice",
     "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice"),
    ("-.slice", "/"),
])
def test_expand_slice(name: str, path: str) -> None:
    assert expand_slice(name) == path


@pytest.mark.parametrize("name", ["", ".slice", "a", "a.scope", "a--b.slice", "-a.slice",
                                  "a-.slice", "a/b.slice", "../x.slice", "a b.slice"])
def test_expand_slice_refuses(name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid slice name"):
        expand_slice(name)


def test_cgroups_path_to_unit() -> None:
    assert parse_cgroups_path("", "c1") == ("system.slice", "tomato-c1.scope")
    assert parse_cgroups_path("system.slice:docker:abc", "x") == ("system.slice",
                                                                   "docker-abc.scope")
    assert parse_cgroups_path(":crio:abc", "x") == ("system.slice", "crio-abc.scope")
    assert parse_cgroups_path("kubepods-pod1.slice:cri-containerd:0f", "x") == \
        ("kubepods-pod1.slice", "cri-containerd-0f.scope")


@pytest.mark.parametrize(("path", "words"), [
    ("/sys/fs/cgroup/x", 'expected cgroupsPath to be of format "slice:prefix:name"'),
    ("a:b", 'expected cgroupsPath to be of format "slice:prefix:name"'),
    ("a:b:c:d", 'expected cgroupsPath to be of format "slice:prefix:name"'),
    ("x/y.slice:p:n", "invalid slice name"),
    ("system.slice:p:../../etc", "is not a valid systemd unit name"),
    ("system.slice:p:a/b", "is not a valid systemd unit name"),
    ("system.slice:p:", "is not a valid systemd unit name"),
    ("system.slice:p:x y", "is not a valid systemd unit name"),
    ("system.slice:p:sub.slice", "a slice cannot hold its processes"),
])
def test_cgroups_path_refused(path: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words.replace("(", r"\(")) as err:
        parse_cgroups_path(path, "id")
    assert "\n" not in str(err.value)


def test_range_to_bits() -> None:
    assert range_to_bits("0") == [1]
    assert range_to_bits("0-2,5") == [0b100111]
    assert range_to_bits("9") == [0, 2]
    for bad in ("", "a", "3-1", ",,"):
        with pytest.raises(InvalidArgument):
            range_to_bits(bad)


def _props(res: dict, version: int = 2, current: dict | None = None, sd: int = 252,
           warnings: list | None = None) -> dict:
    out, _ = resource_properties(Resources.from_oci(res), version,
                                 lambda name: (current or {}).get(name, ""), lambda: sd,
                                 (warnings if warnings is not None else []).append)
    d = {}
    for name, value in out:
        d[name] = value.value if name not in d else d[name]  # first DeviceAllow: the reset
        if name == "DeviceAllow" and value.value:
            d[name] = value.value
    return d


def test_v2_properties_match_the_files() -> None:
    p = _props({"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20},
                "cpu": {"shares": 512, "quota": 25000, "period": 100000, "cpus": "0-1"},
                "pids": {"limit": 50}})
    assert p["MemoryMax"] == 64 << 20
    assert p["MemoryLow"] == 32 << 20
    assert p["MemorySwapMax"] == 32 << 20          # v2 swap alone, as v2.py writes it
    assert p["CPUWeight"] == 20                    # runc's shares → weight
    assert p["CPUQuotaPerSecUSec"] == 250000
    assert p["CPUQuotaPeriodUSec"] == 100000
    assert p["AllowedCPUs"] == [3]
    assert p["TasksMax"] == 50
    assert "MemoryLimit" not in p and "CPUShares" not in p


def test_v1_properties() -> None:
    p = _props({"memory": {"limit": 64 << 20}, "cpu": {"shares": 512},
                "blockIO": {"weight": 300}, "pids": {"limit": -1}}, version=1)
    assert p == {"MemoryLimit": 64 << 20, "CPUShares": 512, "BlockIOWeight": 300,
                 "TasksMax": INFINITY}


def test_unlimited_is_infinity_and_pids_zero_too() -> None:
    p = _props({"memory": {"limit": -1}, "pids": {"limit": 0}, "cpu": {"quota": -1}})
    assert p["MemoryMax"] == INFINITY and p["TasksMax"] == INFINITY
    assert p["CPUQuotaPerSecUSec"] == INFINITY


def test_an_odd_quota_is_rounded_up_for_both() -> None:
    """systemd keeps whole percents: 12345/100000 → 130 ms a second, 13000 for the file."""
    props, res = resource_properties(Resources.from_oci({"cpu": {"quota": 12345,
                                                                 "period": 100000}}),
                                     2, lambda n: "", lambda: 252, print)
    assert dict(props)["CPUQuotaPerSecUSec"] == Variant("t", 130000)
    assert res.cpu is not None and res.cpu.quota == 13000


def test_a_period_alone_keeps_the_quota_in_place() -> None:
    p = _props({"cpu": {"period": 50000}}, current={"cpu.max": "20000 100000"})
    assert p["CPUQuotaPeriodUSec"] == 50000
    assert p["CPUQuotaPerSecUSec"] == 400000       # 20000 of every 50000 µs


def test_old_systemd_gets_no_newer_properties() -> None:
    p = _props({"cpu": {"period": 50000, "quota": 10000, "cpus": "0", "idle": 1}}, sd=239)
    assert "CPUQuotaPeriodUSec" not in p and "AllowedCPUs" not in p and "CPUWeight" not in p


def test_swap_without_a_limit_on_v2_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument, match="linux.resources.memory.swap"):
        _props({"memory": {"swap": 1 << 20}})


def test_unified_keys_systemd_knows() -> None:
    p = _props({"unified": {"memory.high": "1048576", "pids.max": "max", "cpu.weight": "300",
                            "memory.oom.group": "1", "io.weight": "default 50"}})
    assert p == {"MemoryHigh": 1 << 20, "TasksMax": INFINITY, "CPUWeight": 300}
    with pytest.raises(InvalidArgument, match="unified.memory.max"):
        _props({"unified": {"memory.max": "lots"}})


def test_devices_whitelist() -> None:
    rules = (DeviceRule(False), DeviceRule(True, "c", 1, 3, "rwm"),
             DeviceRule(True, "c", 136, None, "rwm"), DeviceRule(True, "b", 8, 0, "r"),
             DeviceRule(True, "a", None, None, "m"), DeviceRule(False, "c", 1, 3, "w"))
    props = device_properties(rules, lambda: 252, print)
    assert props[0] == ("DeviceAllow", Variant("a(ss)", []))   # clears earlier entries
    assert props[1] == ("DevicePolicy", Variant("s", "strict"))
    assert props[2][1].value == [("/dev/char/1:3", "rm"), ("char-136", "rwm"),
                                 ("/dev/block/8:0", "r"), ("char-*", "m"), ("block-*", "m")]


def test_devices_allow_all_and_blacklists() -> None:
    assert device_properties((DeviceRule(True),), lambda: 252, print) == [
        ("DeviceAllow", Variant("a(ss)", [])), ("DevicePolicy", Variant("s", "auto"))]
    said: list[str] = []
    props = device_properties((DeviceRule(True), DeviceRule(False, "c", 1, 3, "rwm")),
                              lambda: 252, said.append)
    assert props[-1] == ("DevicePolicy", Variant("s", "strict")) and said


def test_gvariant_values() -> None:
    assert parse_gvariant("uint64 123456789") == ("t", 123456789)
    assert parse_gvariant("'inactive-or-failed'") == ("s", "inactive-or-failed")
    assert parse_gvariant('"a \\"b\\""') == ("s", 'a "b"')
    assert parse_gvariant("true") == ("b", True)
    assert parse_gvariant("456") == ("i", 456)
    assert parse_gvariant("1.5") == ("d", 1.5)
    assert parse_gvariant("['a', 'b,c']") == ("as", ["a", "b,c"])
    for bad in ("byte 256", "uint32 -1", "[1, 'a']", "[]", "nonsense", "'open"):
        with pytest.raises(ValueError):
            parse_gvariant(bad)


def test_annotation_properties() -> None:
    props = annotation_properties({
        "org.systemd.property.TimeoutStopSec": "456",
        "org.systemd.property.TimeoutStopUSec": "uint64 123456789",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "io.other.annotation": "ignored"})
    assert props == [("CollectMode", Variant("s", "inactive-or-failed")),
                     ("TimeoutStopUSec", Variant("t", 456000000)),
                     ("TimeoutStopUSec", Variant("t", 123456789))]
    for key, value in (("org.systemd.property.Ab", "1"), ("org.systemd.property.A1b", "1"),
                       ("org.systemd.property.TimeoutStopSec", "'soon'"),
                       ("org.systemd.property.CollectMode", "garbage")):
        with pytest.raises(InvalidArgument, match="annotation org.systemd.property"):
            annotation_properties({key: value})


def _record(**changes: object) -> dict:
    rec = {"version": 2, "cgroups_path": "system.slice:tomato:c1", "container_id": "c1",
           "path": "/sys/fs/cgroup/system.slice/tomato-c1.scope", "mountpoint": "/sys/fs/cgroup",
           "created": 0, "driver": "systemd", "unit": "tomato-c1.scope",
           "slice": "system.slice"}
    rec.update(changes)
    return rec


def test_a_saved_systemd_record_reopens_as_the_systemd_driver() -> None:
    from tomato.cgroups import load_manager
    from tomato.cgroups.systemd import SystemdManager

    mgr = load_manager(_record())
    assert isinstance(mgr, SystemdManager)
    assert (mgr.unit, mgr.slice, mgr.version) == ("tomato-c1.scope", "system.slice", 2)
    assert mgr.paths == {"": "/sys/fs/cgroup/system.slice/tomato-c1.scope"}
    assert mgr.to_dict() == _record()  # what was saved is what is saved again


@pytest.mark.parametrize("changes", [{"unit": "../../x.scope"}, {"unit": "a/b.scope"},
                                     {"unit": "x.service"}, {"slice": "a/b.slice"},
                                     {"slice": "../x"}])
def test_a_hostile_systemd_record_is_refused(changes: dict) -> None:
    from tomato.cgroups import load_manager

    with pytest.raises(InvalidArgument):
        load_manager(_record(**changes))
