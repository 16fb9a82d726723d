"""Issue 19's namespace and cgroup options as pure logic: docker's parsers and checks
(engine/options.py) and the namespaces a spec gets for each mode (engine/namespaces.py).
The kernel's side is tests/integration/engine/test_parity_namespaces.py."""

from __future__ import annotations

import pytest

from tomato.engine import options as o
from tomato.engine.namespaces import spec_namespaces
from tomato.errors import InvalidArgument


@pytest.mark.parametrize(("flag", "value", "ok"), [
    ("--pid", "", True), ("--pid", "host", True), ("--pid", "container:x", True),
    ("--pid", "container:", False), ("--pid", "private", False), ("--pid", "HOST", False),
    ("--uts", "host", True), ("--uts", "private", False),
    ("--userns", "host", True), ("--userns", "private", False),
    ("--cgroupns", "host", True), ("--cgroupns", "private", True), ("--cgroupns", "x", False),
    ("--ipc", "none", True), ("--ipc", "shareable", True), ("--ipc", "container:a", True),
    ("--ipc", "container:", False), ("--ipc", "bogus", False),
])
def test_namespace_modes_as_dockers_valid(flag: str, value: str, ok: bool) -> None:
    if ok:
        assert o.check_namespace_mode(flag, value) == value
    else:
        with pytest.raises(InvalidArgument):
            o.check_namespace_mode(flag, value)


def test_device_cgroup_rules() -> None:
    assert o.parse_device_cgroup_rule("c 1:3 rwm") == {"allow": True, "type": "c",
                                                      "access": "rwm", "major": 1, "minor": 3}
    assert o.parse_device_cgroup_rule("b *:* r") == {"allow": True, "type": "b",
                                                    "access": "r"}
    for bad in ("c 1:3", "x 1:3 r", "c 1:3 rwmx", "c 1:3  r", "c a:3 r", "c 1:3 q", "",
                "c 1:3 r\n"):
        with pytest.raises(InvalidArgument, match="invalid device cgroup rule format"):
            o.parse_device_cgroup_rule(bad)


def test_uint_lists_and_volumes_from_and_block_devices() -> None:
    assert o.parse_uint_list("0-2,5", "x") == [0, 1, 2, 5]
    for bad in ("", "a", "2-1", "1-", "-1", "1,,2", "٣"):
        with pytest.raises(InvalidArgument, match="invalid format"):
            o.parse_uint_list(bad, "x")
    assert o.parse_volumes_from("a:ro") == ("a", "ro")
    assert o.parse_volumes_from("a") == ("a", "")
    with pytest.raises(InvalidArgument, match="invalid mode: z"):
        o.parse_volumes_from("a:z")
    with pytest.raises(InvalidArgument, match="cannot be an empty string"):
        o.parse_volumes_from("")
    assert o.parse_device_iops("/dev/sda:100") == ("/dev/sda", 100)
    assert o.parse_weight_device("/dev/sda:0") == ("/dev/sda", 0)
    for bad, word in (("sda", "bad format"), ("/tmp/a:1", "device path"),
                      ("/dev/sda:-1", "invalid rate")):
        with pytest.raises(InvalidArgument, match=word):
            o.parse_device_iops(bad)
    for bad in ("/dev/sda:9", "/dev/sda:1001", "/dev/sda:x"):
        with pytest.raises(InvalidArgument, match="invalid weight"):
            o.parse_weight_device(bad)


def test_the_daemons_checks() -> None:
    def refused(**fields: object) -> str:
        with pytest.raises(InvalidArgument) as info:
            o.validate_resources(o.RunOptions(image="x", **fields))  # type: ignore[arg-type]
        return str(info.value)

    assert "Nano CPUs and CPU Period" in refused(cpus=1.0, cpu_period=50000)
    assert "less than 1ms" in refused(cpu_quota=999)
    assert "real-time runtime cannot be higher" in refused(cpu_rt_period=10, cpu_rt_runtime=20)
    assert "swappiness range is 0-100" in refused(memory_swappiness=-2)
    assert "[-1000, 1000]" in refused(oom_score_adj=1001)
    assert "hostname and the UTS mode" in refused(uts_mode="host", hostname="h")
    assert "invalid cgroup parent" in refused(cgroup_parent="a/../b")
    assert "invalid IPC mode: x" in refused(ipc_mode="x")
    o.validate_resources(o.RunOptions(image="x", memory_swappiness=-1, cpu_period=1000,
                                      cpu_quota=-1, cgroup_parent="/a/b"))


def test_spec_namespaces_per_mode() -> None:
    def kinds(**fields: object) -> list[tuple[str, str]]:
        opts = o.RunOptions(image="x", **fields)  # type: ignore[arg-type]
        joins = {"pid": "/proc/7/ns/pid"} if opts.pid_mode.startswith("container:") else {}
        return [(n["type"], n.get("path", "")) for n in
                spec_namespaces(opts, joins, "", opts.network)]

    assert kinds() == [("pid", ""), ("ipc", ""), ("uts", ""), ("mount", ""),
                       ("network", ""), ("cgroup", "")]
    assert kinds(pid_mode="host", ipc_mode="host", uts_mode="host", cgroupns_mode="host",
                 network="host") == [("mount", "")]
    assert ("pid", "/proc/7/ns/pid") in kinds(pid_mode="container:abc")
    assert ("ipc", "") in kinds(ipc_mode="none")
