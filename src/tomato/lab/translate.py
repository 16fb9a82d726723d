"""cgroup knob names and values between v1 and v2, for ``tomato cgroup set/get``.

The study note writes ``cgset -r cpu.cfs_quota_us=30000`` (v1) and remarks that
``cpu.max`` does the same on v2.  Both spellings are accepted on both versions:
a v1 name on a v2 host is written as its v2 knob (cfs_quota_us → the first
field of cpu.max, keeping the period), and a v2 name on a v1 host as its v1
knobs (cpu.max "30000 100000" → cfs_period_us then cfs_quota_us).  Value
formulas are runc's (tomato.cgroups.convert).  Pure functions: ``read`` is
given the current content of a knob when a translation needs it.
"""

from __future__ import annotations

from collections.abc import Callable

from tomato.cgroups.convert import (
    blkio_weight_to_io_weight,
    io_weight_to_blkio_weight,
    shares_to_weight,
    weight_to_shares,
)
from tomato.errors import InvalidArgument

Reader = Callable[[str], str]

V1_MAX = "9223372036854771712"  # what v1 shows for "no limit" on memory files

#: v1 controller → the v2 controller that does its job ("" = core cgroup files).
V1_TO_V2_CONTROLLER = {"cpu": "cpu", "cpuacct": "cpu", "cpuset": "cpuset", "memory": "memory",
                       "pids": "pids", "blkio": "io", "freezer": "", "hugetlb": "hugetlb",
                       "rdma": "rdma", "misc": "misc", "devices": "", "perf_event": "perf_event"}
#: v2 controller → the v1 controller that holds the same knobs.
V2_TO_V1_CONTROLLER = {"cpu": "cpu", "cpuset": "cpuset", "memory": "memory", "pids": "pids",
                       "io": "blkio", "hugetlb": "hugetlb", "rdma": "rdma", "misc": "misc"}

V1_SET_NAMES = frozenset({
    "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares", "memory.limit_in_bytes",
    "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes", "blkio.weight",
    "freezer.state",
})
V2_SET_NAMES = frozenset({"cpu.max", "cpu.weight", "memory.max", "memory.low",
                          "memory.swap.max", "io.weight", "cgroup.freeze"})
V1_GET_NAMES = V1_SET_NAMES | {"cpuacct.usage", "memory.usage_in_bytes",
                               "memory.max_usage_in_bytes"}
V2_GET_NAMES = V2_SET_NAMES | {"memory.current", "memory.peak"}


def controller_of(name: str) -> str:
    """The controller a knob belongs to, in the name's own version's terms."""
    if "." not in name:
        raise InvalidArgument(f"{name!r} is not a cgroup knob (controller.name)")
    if name == "cgroup.freeze":
        return "freezer"
    return name.split(".", 1)[0]


def _int(name: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError as err:
        raise InvalidArgument(f"{name}: {value!r} is not a number") from err


_SUFFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _bytes(name: str, value: str) -> int:
    """A byte count as the kernel's memparse reads it: 64M, 1g, 4096."""
    v = value.strip()
    mult = _SUFFIX.get(v[-1:].lower(), 1) if v else 1
    return _int(name, v[:-1] if mult != 1 else v) * mult


def _limit_v2(name: str, value: str) -> str:
    v = value.strip()
    return "max" if v in ("-1", "max") else str(_bytes(name, v))


def _cpu_max(read: Reader) -> tuple[str, str]:
    fields = (read("cpu.max").split() + ["max", "100000"])[:2]
    return fields[0], fields[1]


def to_v2_writes(name: str, value: str, read: Reader) -> list[tuple[str, str]]:
    """A v1 ``name=value`` as the v2 writes doing the same; other names pass through."""
    if name == "cpu.cfs_quota_us":
        _quota, period = _cpu_max(read)
        return [("cpu.max", f"{_limit_v2(name, value)} {period}")]
    if name == "cpu.cfs_period_us":
        quota, _period = _cpu_max(read)
        return [("cpu.max", f"{quota} {_int(name, value)}")]
    if name == "cpu.shares":
        return [("cpu.weight", str(shares_to_weight(_int(name, value))))]
    if name == "memory.limit_in_bytes":
        return [("memory.max", _limit_v2(name, value))]
    if name == "memory.soft_limit_in_bytes":
        return [("memory.low", _limit_v2(name, value))]
    if name == "memory.memsw.limit_in_bytes":
        if value.strip() in ("-1", "max"):
            return [("memory.swap.max", "max")]
        limit = read("memory.max").strip()
        if limit == "max":
            raise InvalidArgument("memory.memsw.limit_in_bytes needs memory.limit_in_bytes "
                                  "set first on cgroup v2 (memory.swap.max is swap alone)")
        swap = _bytes(name, value) - int(limit)
        if swap < 0:
            raise InvalidArgument("memory.memsw.limit_in_bytes must be at least "
                                  "memory.limit_in_bytes")
        return [("memory.swap.max", str(swap))]
    if name == "blkio.weight":
        return [("io.weight", f"default {blkio_weight_to_io_weight(_int(name, value))}")]
    if name == "freezer.state":
        state = value.strip().upper()
        if state not in ("FROZEN", "THAWED"):
            raise InvalidArgument(f"freezer.state: {value!r} is not FROZEN or THAWED")
        return [("cgroup.freeze", "1" if state == "FROZEN" else "0")]
    return [(name, value)]


def to_v1_writes(name: str, value: str) -> list[tuple[str, str]]:
    """A v2 ``name=value`` as the v1 writes doing the same; other names pass through."""
    if name == "cpu.max":
        fields = value.split()
        if not fields or len(fields) > 2:
            raise InvalidArgument(f"cpu.max: {value!r} is not 'QUOTA [PERIOD]'")
        quota = "-1" if fields[0] == "max" else str(_int(name, fields[0]))
        out = [("cpu.cfs_period_us", str(_int(name, fields[1])))] if len(fields) == 2 else []
        return out + [("cpu.cfs_quota_us", quota)]
    if name == "cpu.weight":
        return [("cpu.shares", str(weight_to_shares(_int(name, value))))]
    if name == "memory.max":
        return [("memory.limit_in_bytes", "-1" if value.strip() == "max"
                 else str(_bytes(name, value)))]
    if name == "memory.low":
        return [("memory.soft_limit_in_bytes", "-1" if value.strip() == "max"
                 else str(_bytes(name, value)))]
    if name == "memory.swap.max":
        raise InvalidArgument("memory.swap.max (swap alone) has no v1 knob: set "
                              "memory.memsw.limit_in_bytes (memory + swap) instead")
    if name == "io.weight":
        w = value.split()[-1] if value.split() else value
        return [("blkio.weight", str(io_weight_to_blkio_weight(_int(name, w))))]
    if name == "cgroup.freeze":
        return [("freezer.state", "FROZEN" if value.strip() == "1" else "THAWED")]
    return [(name, value)]


def v1_value_on_v2(name: str, read: Reader) -> str:
    """``cgget -r V1NAME`` on a v2 host: the v1 knob's value computed from v2 files."""
    if name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"):
        quota, period = _cpu_max(read)
        if name == "cpu.cfs_period_us":
            return period
        return "-1" if quota == "max" else quota
    if name == "cpu.shares":
        return str(weight_to_shares(_int("cpu.weight", read("cpu.weight"))))
    if name in ("memory.limit_in_bytes", "memory.soft_limit_in_bytes"):
        v = read("memory.max" if name == "memory.limit_in_bytes" else "memory.low").strip()
        return V1_MAX if v == "max" else v
    if name == "memory.usage_in_bytes":
        return read("memory.current").strip()
    if name == "memory.max_usage_in_bytes":
        return read("memory.peak").strip()
    if name == "cpuacct.usage":
        for line in read("cpu.stat").splitlines():
            k, _, v = line.partition(" ")
            if k == "usage_usec":
                return str(int(v) * 1000)
        return "0"
    if name == "freezer.state":
        return "FROZEN" if read("cgroup.freeze").strip() == "1" else "THAWED"
    if name == "blkio.weight":
        w = read("io.weight").split()
        return str(io_weight_to_blkio_weight(int(w[-1]))) if w else "0"
    return read(name).strip()


def v2_value_on_v1(name: str, read: Reader) -> str:
    """``cgget -r V2NAME`` on a v1 host, computed from the v1 files."""
    if name == "cpu.max":
        quota = read("cpu.cfs_quota_us").strip()
        period = read("cpu.cfs_period_us").strip()
        return f"{'max' if quota == '-1' else quota} {period}"
    if name == "cpu.weight":
        return str(shares_to_weight(_int("cpu.shares", read("cpu.shares"))))
    if name in ("memory.max", "memory.low"):
        v = read("memory.limit_in_bytes" if name == "memory.max"
                 else "memory.soft_limit_in_bytes").strip()
        return "max" if int(v) >= int(V1_MAX) else v
    if name == "memory.current":
        return read("memory.usage_in_bytes").strip()
    if name == "memory.peak":
        return read("memory.max_usage_in_bytes").strip()
    if name == "cgroup.freeze":
        return "1" if read("freezer.state").strip() == "FROZEN" else "0"
    if name == "io.weight":
        return f"default {blkio_weight_to_io_weight(_int('blkio.weight', read('blkio.weight')))}"
    return read(name).strip()


def v1_controller_for(name: str) -> str:
    """Which v1 hierarchy holds ``name`` (a v1 or v2 spelling)."""
    ctrl = controller_of(name)
    if name in V2_GET_NAMES and name not in V1_GET_NAMES:
        return {"io": "blkio", "freezer": "freezer"}.get(ctrl, ctrl)
    return ctrl


def v2_controller_for(name: str) -> str:
    """Which v2 controller must be enabled for ``name``; "" for core files."""
    ctrl = controller_of(name)
    if ctrl == "cgroup" or name == "cgroup.freeze":
        return ""
    return V1_TO_V2_CONTROLLER.get(ctrl, ctrl)


__all__ = ["V1_GET_NAMES", "V1_SET_NAMES", "V2_GET_NAMES", "V2_SET_NAMES", "controller_of",
           "to_v1_writes", "to_v2_writes", "v1_controller_for", "v1_value_on_v2",
           "v2_controller_for", "v2_value_on_v1"]
