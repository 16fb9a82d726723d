"""OCI ``linux.resources`` parsed and validated into frozen dataclasses.

Every field is optional: ``None`` means "leave the kernel's value alone", so the
same types describe a full container config and a partial ``update``.
Validation errors are :class:`InvalidArgument` naming the OCI field.
"""

from __future__ import annotations

from tomato.errors import InvalidArgument
from tomato.records import record as dataclass  # no dataclasses import on the start path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
# Hand-written matchers rather than regexes: `re` costs ~4 ms to import on the
# runtime's start path.
def _is_cpuset(text: str) -> bool:
    """^\\d+(-\\d+)?(,\\d+(-\\d+)?)*$"""
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or not lo.isascii() or (dash and not (hi.isdigit() and hi.isascii())):
            return False
    return True


def _is_page_size(text: str) -> bool:
    """^\\d+(KB|MB|GB|TB|PB)$"""
    return text[-2:] in ("KB", "MB", "GB", "TB", "PB") and text[:-2].isdigit() \
        and text[:-2].isascii()


_KEY_HEAD = frozenset("abcdefghijklmnopqrstuvwxyz_")
_KEY_TAIL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _is_unified_key(text: str) -> bool:
    """^[a-z_]+\\.[A-Za-z0-9_.\\-]+$"""
    head, dot, tail = text.partition(".")
    return bool(head) and bool(dot) and bool(tail) and _KEY_HEAD.issuperset(head) \
        and _KEY_TAIL.issuperset(tail)


@dataclass
class CPU:
    shares: int | None = None
    quota: int | None = None            # -1: unlimited
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


@dataclass
class Memory:
    limit: int | None = None            # -1: unlimited
    reservation: int | None = None
    swap: int | None = None             # memory + swap, as in OCI and cgroup v1 memsw
    kernel: int | None = None           # accepted, ignored with a warning
    kernel_tcp: int | None = None       # accepted, ignored with a warning
    swappiness: int | None = None
    disable_oom_killer: bool | None = None
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


@dataclass
class Pids:
    limit: int | None = None            # <= 0: unlimited


@dataclass
class WeightDevice:
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


@dataclass
class ThrottleDevice:
    major: int
    minor: int
    rate: int


@dataclass
class BlockIO:
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: tuple[WeightDevice, ...] = ()
    throttle_read_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_read_iops_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_iops_device: tuple[ThrottleDevice, ...] = ()


@dataclass
class DeviceRule:
    """One devices cgroup rule; ``major``/``minor`` None is the wildcard ``*``."""

    allow: bool
    type: str = "a"                     # a, b or c
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def is_wildcard(self) -> bool:
        return (self.type == "a" and self.major is None and self.minor is None
                and set(self.access) == set("rwm"))

    def v1_lines(self) -> list[str]:
        """The devices.allow / devices.deny lines, e.g. ``["c 1:3 rwm"]``.

        v1 reads any ``a`` line as "everything", so a partial ``a`` rule (say
        ``a *:* m``) is written as the same rule for block and char devices."""
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        if self.type == "a":
            if self.is_wildcard():
                return ["a *:* rwm"]
            return [f"{t} {major}:{minor} {self.access}" for t in "bc"]
        return [f"{self.type} {major}:{minor} {self.access}"]


@dataclass
class Network:
    class_id: int | None = None
    priorities: tuple[tuple[str, int], ...] = ()


@dataclass
class HugepageLimit:
    page_size: str                      # "2MB", "1GB" (the kernel's file naming)
    limit: int


@dataclass
class RdmaLimit:
    device: str
    hca_handles: int | None = None
    hca_objects: int | None = None


@dataclass
class Resources:
    cpu: CPU | None = None
    memory: Memory | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = None
    devices: tuple[DeviceRule, ...] | None = None
    network: Network | None = None
    hugepage_limits: tuple[HugepageLimit, ...] = ()
    unified: tuple[tuple[str, str], ...] = ()
    rdma: tuple[RdmaLimit, ...] = ()

    @classmethod
    def from_oci(cls, d: dict | None) -> Resources:
        """Parse and validate an OCI ``linux.resources`` object (None → empty)."""
        if d is None:
            return cls()
        _need(isinstance(d, dict), "linux.resources", "must be an object", d)
        return cls(
            cpu=_cpu(d["cpu"]) if d.get("cpu") is not None else None,
            memory=_memory(d["memory"]) if d.get("memory") is not None else None,
            pids=_pids(d["pids"]) if d.get("pids") is not None else None,
            block_io=_block_io(d["blockIO"]) if d.get("blockIO") is not None else None,
            devices=_devices(d["devices"]) if d.get("devices") is not None else None,
            network=_network(d["network"]) if d.get("network") is not None else None,
            hugepage_limits=_hugepages(d.get("hugepageLimits") or []),
            unified=_unified(d.get("unified") or {}),
            rdma=_rdma(d.get("rdma") or {}),
        )


# --- helpers -----------------------------------------------------------------

def _need(ok: bool, name: str, what: str, value: Any) -> None:
    if not ok:
        raise InvalidArgument(f"linux.resources.{name.removeprefix('linux.resources.')}: "
                              f"{what}, got {value!r}")


def _obj(d: Any, name: str) -> dict:
    _need(isinstance(d, dict), name, "must be an object", d)
    return d


def _int(d: dict, key: str, name: str, lo: int, hi: int = INT64_MAX) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    _need(isinstance(v, int) and not isinstance(v, bool), f"{name}.{key}",
          "must be an integer", v)
    _need(lo <= v <= hi, f"{name}.{key}", f"must be between {lo} and {hi}", v)
    return v


def _bool(d: dict, key: str, name: str) -> bool | None:
    v = d.get(key)
    if v is None:
        return None
    _need(isinstance(v, bool), f"{name}.{key}", "must be true or false", v)
    return v


def parse_cpuset(text: str) -> frozenset[int]:
    """``0-3,5`` → {0,1,2,3,5}; ValueError on bad syntax or reversed ranges."""
    text = text.strip()
    if text == "":
        return frozenset()
    if not _is_cpuset(text):
        raise ValueError(f"bad cpu list {text!r}")
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if b < a:
            raise ValueError(f"reversed range {part!r}")
        out.update(range(a, b + 1))
    return frozenset(out)


def _cpuset(d: dict, key: str, name: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    _need(isinstance(v, str), f"{name}.{key}", "must be a string", v)
    try:
        parse_cpuset(v)
    except ValueError:
        _need(False, f"{name}.{key}", "must be a list like 0-3,5", v)
    return v.strip()


def _cpu(d: Any) -> CPU:
    n = "cpu"
    d = _obj(d, n)
    cpu = CPU(
        shares=_int(d, "shares", n, 0, UINT64_MAX),
        quota=_int(d, "quota", n, -1),
        burst=_int(d, "burst", n, 0, UINT64_MAX),
        period=_int(d, "period", n, 0, UINT64_MAX),
        realtime_runtime=_int(d, "realtimeRuntime", n, -1),
        realtime_period=_int(d, "realtimePeriod", n, 0, UINT64_MAX),
        cpus=_cpuset(d, "cpus", n),
        mems=_cpuset(d, "mems", n),
        idle=_int(d, "idle", n, 0, 1),
    )
    # The kernel's CFS bandwidth bounds: 1 ms <= period <= 1 s, quota >= 1 ms.
    if cpu.period not in (None, 0):
        _need(1000 <= cpu.period <= 1_000_000, "cpu.period", "must be between 1000 and 1000000",
              cpu.period)
    if cpu.quota not in (None, -1, 0):
        _need(cpu.quota >= 1000, "cpu.quota", "must be -1 or at least 1000", cpu.quota)
    return cpu


def _memory(d: Any) -> Memory:
    n = "memory"
    d = _obj(d, n)
    return Memory(
        limit=_int(d, "limit", n, -1),
        reservation=_int(d, "reservation", n, -1),
        swap=_int(d, "swap", n, -1),
        kernel=_int(d, "kernel", n, -1),
        kernel_tcp=_int(d, "kernelTCP", n, -1),
        swappiness=_int(d, "swappiness", n, 0, 100),
        disable_oom_killer=_bool(d, "disableOOMKiller", n),
        use_hierarchy=_bool(d, "useHierarchy", n),
        check_before_update=_bool(d, "checkBeforeUpdate", n),
    )


def _pids(d: Any) -> Pids:
    d = _obj(d, "pids")
    return Pids(limit=_int(d, "limit", "pids", -1))


def _throttle(items: Any, name: str) -> tuple[ThrottleDevice, ...]:
    if items is None:
        return ()
    _need(isinstance(items, list), name, "must be a list", items)
    out = []
    for i, it in enumerate(items):
        n = f"{name}[{i}]"
        it = _obj(it, n)
        major, minor = _int(it, "major", n, 0), _int(it, "minor", n, 0)
        rate = _int(it, "rate", n, 0, UINT64_MAX)
        _need(major is not None and minor is not None, n, "needs major and minor", it)
        _need(rate is not None, n, "needs rate", it)
        out.append(ThrottleDevice(major, minor, rate))  # type: ignore[arg-type]
    return tuple(out)


def _block_io(d: Any) -> BlockIO:
    n = "blockIO"
    d = _obj(d, n)
    weight = _int(d, "weight", n, 0, 1000)
    leaf = _int(d, "leafWeight", n, 0, 1000)
    # 0 means "unset" in runc; otherwise the blkio range is 10..1000.
    for key, v in (("weight", weight), ("leafWeight", leaf)):
        if v not in (None, 0):
            _need(v >= 10, f"{n}.{key}", "must be between 10 and 1000", v)
    wd = []
    for i, it in enumerate(d.get("weightDevice") or []):
        m = f"{n}.weightDevice[{i}]"
        it = _obj(it, m)
        major, minor = _int(it, "major", m, 0), _int(it, "minor", m, 0)
        _need(major is not None and minor is not None, m, "needs major and minor", it)
        w, lw = _int(it, "weight", m, 10, 1000), _int(it, "leafWeight", m, 10, 1000)
        wd.append(WeightDevice(major, minor, w, lw))  # type: ignore[arg-type]
    return BlockIO(
        weight=weight, leaf_weight=leaf, weight_device=tuple(wd),
        throttle_read_bps_device=_throttle(d.get("throttleReadBpsDevice"),
                                           f"{n}.throttleReadBpsDevice"),
        throttle_write_bps_device=_throttle(d.get("throttleWriteBpsDevice"),
                                            f"{n}.throttleWriteBpsDevice"),
        throttle_read_iops_device=_throttle(d.get("throttleReadIOPSDevice"),
                                            f"{n}.throttleReadIOPSDevice"),
        throttle_write_iops_device=_throttle(d.get("throttleWriteIOPSDevice"),
                                             f"{n}.throttleWriteIOPSDevice"),
    )


def _devices(items: Any) -> tuple[DeviceRule, ...]:
    _need(isinstance(items, list), "devices", "must be a list", items)
    out = []
    for i, it in enumerate(items):
        n = f"devices[{i}]"
        it = _obj(it, n)
        allow = it.get("allow")
        _need(isinstance(allow, bool), f"{n}.allow", "must be true or false", allow)
        typ = it.get("type") or "a"
        _need(typ in ("a", "b", "c"), f"{n}.type", "must be a, b or c", typ)
        major = _int(it, "major", n, -1)
        minor = _int(it, "minor", n, -1)
        access = it.get("access") or "rwm"
        _need(isinstance(access, str) and access != "" and set(access) <= set("rwm")
              and len(set(access)) == len(access), f"{n}.access",
              "must be a combination of r, w and m", access)
        # Canonical order so rules compare equal regardless of spelling ("wr" == "rw").
        access = "".join(c for c in "rwm" if c in access)
        out.append(DeviceRule(bool(allow), typ,
                              None if major in (None, -1) else major,
                              None if minor in (None, -1) else minor, access))
    return tuple(out)


def _network(d: Any) -> Network:
    n = "network"
    d = _obj(d, n)
    prios = []
    for i, it in enumerate(d.get("priorities") or []):
        m = f"{n}.priorities[{i}]"
        it = _obj(it, m)
        name = it.get("name")
        _need(isinstance(name, str) and name != "" and "/" not in name and " " not in name,
              f"{m}.name", "must be an interface name", name)
        prio = _int(it, "priority", m, 0, 2**32 - 1)
        _need(prio is not None, f"{m}.priority", "is required", prio)
        prios.append((str(name), int(prio)))  # type: ignore[arg-type]
    return Network(class_id=_int(d, "classID", n, 0, 2**32 - 1), priorities=tuple(prios))


def _hugepages(items: Any) -> tuple[HugepageLimit, ...]:
    _need(isinstance(items, list), "hugepageLimits", "must be a list", items)
    out = []
    for i, it in enumerate(items):
        n = f"hugepageLimits[{i}]"
        it = _obj(it, n)
        size = it.get("pageSize")
        _need(isinstance(size, str) and _is_page_size(size), f"{n}.pageSize",
              "must look like 2MB or 1GB", size)
        limit = _int(it, "limit", n, 0, UINT64_MAX)
        _need(limit is not None, f"{n}.limit", "is required", limit)
        out.append(HugepageLimit(size, limit))  # type: ignore[arg-type]
    return tuple(out)


def _unified(d: Any) -> tuple[tuple[str, str], ...]:
    _need(isinstance(d, dict), "unified", "must be an object", d)
    out = []
    for k, v in d.items():
        _need(isinstance(k, str) and _is_unified_key(k) and ".." not in k,
              "unified", "keys must be cgroup2 file names like memory.high", k)
        _need(k not in ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control",
                        "cgroup.kill", "cgroup.type"),
              f"unified.{k}", "this cgroup core file is managed by the runtime", k)
        _need(isinstance(v, str), f"unified.{k}", "must be a string", v)
        out.append((k, v))
    return tuple(out)


def _rdma(d: Any) -> tuple[RdmaLimit, ...]:
    _need(isinstance(d, dict), "rdma", "must be an object", d)
    out = []
    for dev, it in d.items():
        n = f"rdma.{dev}"
        _need(isinstance(dev, str) and dev != "" and " " not in dev, "rdma",
              "keys must be device names", dev)
        it = _obj(it, n)
        out.append(RdmaLimit(dev, _int(it, "hcaHandles", n, 0, 2**32 - 1),
                             _int(it, "hcaObjects", n, 0, 2**32 - 1)))
    return tuple(out)


#: runc's default allowed devices (libcontainer/specconv AllowedDevices): what a
#: runtime appends after the spec's own rules so a container gets its basic nodes.
DEFAULT_ALLOWED_DEVICES: tuple[DeviceRule, ...] = (
    DeviceRule(True, "c", None, None, "m"),
    DeviceRule(True, "b", None, None, "m"),
    DeviceRule(True, "c", 1, 3, "rwm"),     # /dev/null
    DeviceRule(True, "c", 1, 8, "rwm"),     # /dev/random
    DeviceRule(True, "c", 1, 7, "rwm"),     # /dev/full
    DeviceRule(True, "c", 5, 0, "rwm"),     # /dev/tty
    DeviceRule(True, "c", 1, 5, "rwm"),     # /dev/zero
    DeviceRule(True, "c", 1, 9, "rwm"),     # /dev/urandom
    DeviceRule(True, "c", 136, None, "rwm"),  # /dev/pts/*
    DeviceRule(True, "c", 5, 2, "rwm"),     # /dev/ptmx
)


def effective_device_rules(rules: tuple[DeviceRule, ...]) -> tuple[bool, tuple[DeviceRule, ...]]:
    """Reduce an ordered rule list to (default_allow, exceptions).

    Like runc's devices emulator (libcontainer/cgroups/devices, buildEmulator:
    "this defaults to a white-list"): everything is denied unless allowed; a
    wildcard rule (``a *:* rwm``) resets the default and forgets earlier
    exceptions; later rules take precedence over earlier ones.  A runtime
    appends :data:`DEFAULT_ALLOWED_DEVICES` after the spec's rules, as runc does.
    """
    default_allow = False
    exceptions: list[DeviceRule] = []
    for r in rules:
        if r.is_wildcard():
            default_allow, exceptions = r.allow, []
        else:
            exceptions.append(r)
    return default_allow, tuple(exceptions)
