"""OCI resources as systemd unit properties (runc's genV1/genV2ResourcesProperties),
and the ``org.systemd.property.*`` annotations as extra properties.

Pure functions: no D-Bus, no files.  What the kernel holds now comes in through
``current(name)`` (a cgroup file of the unit's, "" when unknown), the systemd
version through ``version()`` (asked only when a property needs it).

Every property says what the cgroupfs driver then writes itself (the systemd
driver sets the properties, then writes the same files, as runc does): systemd
rewrites the files it knows from its properties on every daemon-reload, so a
value given to the kernel alone would be undone, and a property that disagreed
with the file would win later.  Hence the same conversions as v1.py and v2.py
(``pids.limit`` <= 0 is "max" for both), and a CPU quota that systemd can only
hold as whole percents is rounded up the way runc does, for the files too.
"""

from __future__ import annotations

from tomato.errors import InvalidArgument
from tomato.records import replace

from .convert import shares_to_weight, swap_to_v2
from .dbus import Variant
from .resources import CPU, DeviceRule, Resources, effective_device_rules

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Property = tuple[str, Variant]

INFINITY = 2**64 - 1          # systemd's USEC_INFINITY / CGROUP_LIMIT_MAX
DEFAULT_PERIOD = 100000       # the kernel's default cpu period, in microseconds


def prop(name: str, signature: str, value: object) -> tuple[str, Variant]:
    return (name, Variant(signature, value))


def range_to_bits(cpuset: str) -> list[int]:
    """"0-2,5" → the bytes of systemd's AllowedCPUs (bit n of byte n//8, little end first)."""
    bits = 0
    for part in cpuset.split(","):
        part = part.strip()
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise InvalidArgument(f"cpuset {cpuset!r}: not a list of numbers and ranges")
        start, end = int(lo), int(hi) if dash else int(lo)
        if start > end or end >= 1 << 16:
            raise InvalidArgument(f"cpuset {cpuset!r}: bad range {part}")
        for n in range(start, end + 1):
            bits |= 1 << n
    if bits == 0:
        raise InvalidArgument(f"cpuset {cpuset!r} is empty")
    return list(bits.to_bytes((bits.bit_length() + 7) // 8, "little"))


def cpu_quota(quota: int | None, period: int | None, current: Callable[[str], str],
              version: Callable[[], int]) -> tuple[list[Property], int | None]:
    """CPUQuotaPeriodUSec and CPUQuotaPerSecUSec (runc's addCPUQuota), and the quota
    the files are then to get: systemd keeps a quota as per-second microseconds in
    whole percents (multiples of 10 ms), so an odd one is rounded up, for both."""
    props: list[Property] = []
    if quota in (None, 0) and period in (None, 0):
        return props, quota
    if quota in (None, 0):
        # Only the period changes: keep the quota in place (runc would lift it).
        now = current("cpu.max").split() or current("cpu.cfs_quota_us").split()
        quota = -1 if not now or now[0] in ("max", "-1") else int(now[0])
        keep = True
    else:
        keep = False
    if period not in (None, 0):
        if version() >= 242:
            props.append(prop("CPUQuotaPeriodUSec", "t", period))
    else:
        now = current("cpu.max").split()
        period = int(now[1]) if len(now) == 2 and now[1].isdigit() else \
            int(current("cpu.cfs_period_us") or DEFAULT_PERIOD)
    assert quota is not None and period  # for mypy: both settled above
    if quota < 0:
        props.append(prop("CPUQuotaPerSecUSec", "t", INFINITY))
        return props, None if keep else quota
    per_sec = quota * 1000000 // period
    if per_sec % 10000:
        per_sec = (per_sec // 10000 + 1) * 10000
        quota = per_sec * period // 1000000
    props.append(prop("CPUQuotaPerSecUSec", "t", per_sec))
    return props, None if keep else quota


def device_properties(rules: tuple[DeviceRule, ...], version: Callable[[], int],
                      warn: Callable[[str], None]) -> list[Property]:
    """DevicePolicy=strict and a DeviceAllow list for the effective rules (runc's
    devices/systemd.go): systemd has allow lists only, so the cgroupfs driver's own
    rules (written after) do what a list cannot say."""
    reset = prop("DeviceAllow", "a(ss)", [])
    default_allow, exceptions = effective_device_rules(rules)
    if default_allow:
        if not exceptions:
            return [reset, prop("DevicePolicy", "s", "auto")]  # everything allowed
        warn("linux.resources.devices: systemd has no deny rules; its unit denies every "
             "device, tomato's own device rules allow the rest")
        return [reset, prop("DevicePolicy", "s", "strict")]
    allowed: dict[tuple[str, int | None, int | None], str] = {}
    for r in exceptions:
        types = ("c", "b") if r.type == "a" else (r.type,)
        if r.allow:
            for t in types:
                key = (t, r.major, r.minor)
                allowed[key] = "".join(c for c in "rwm" if c in allowed.get(key, "") + r.access)
            continue
        for (t, major, minor), access in list(allowed.items()):
            if t not in types:
                continue
            covers = (r.major is None or r.major == major) and \
                (r.minor is None or r.minor == minor)
            if covers:
                allowed[(t, major, minor)] = "".join(c for c in access if c not in r.access)
            elif (major is None or major == r.major) and (minor is None or minor == r.minor):
                warn(f"linux.resources.devices: systemd cannot deny {t} {_num(r.major)}:"
                     f"{_num(r.minor)} inside its allowed {t} {_num(major)}:{_num(minor)}; "
                     "tomato's own device rules deny it")
    entries = []
    for (t, major, minor), access in allowed.items():
        if not access:
            continue
        group = "char-" if t == "c" else "block-"
        if major is None:
            if minor is not None:
                warn(f"linux.resources.devices: systemd has no {t} *:{minor} rules; "
                     "tomato's own device rules allow it")
                continue
            path = group + "*"
        elif minor is None:
            if version() < 240:
                warn(f"linux.resources.devices: systemd before v240 has no {group}{major} "
                     "rules; tomato's own device rules allow it")
                continue
            path = f"{group}{major}"
        else:
            path = f"/dev/{'char' if t == 'c' else 'block'}/{major}:{minor}"
        entries.append((path, access))
    return [reset, prop("DevicePolicy", "s", "strict"), prop("DeviceAllow", "a(ss)", entries)]


def _num(n: int | None) -> str:
    return "*" if n is None else str(n)


def _limit(value: int) -> int:
    return INFINITY if value == -1 else value


def resource_properties(res: Resources, cgroup_version: int, current: Callable[[str], str],
                        version: Callable[[], int], warn: Callable[[str], None]
                        ) -> tuple[list[Property], Resources]:
    """The properties for ``res``, and ``res`` as the files must then get it."""
    props: list[Property] = []
    if res.devices is not None:
        props += device_properties(res.devices, version, warn)
    unified = dict(res.unified)
    c, m = res.cpu, res.memory
    if c is not None:
        quota_props, quota = cpu_quota(c.quota, c.period, current, version)
        props += quota_props
        if quota != c.quota and c.quota not in (None, 0):
            res = replace(res, cpu=replace(c, quota=quota))
        idle = c.idle == 1 and cgroup_version == 2 and version() >= 252
        if idle:
            props.append(prop("CPUWeight", "t", 0))  # systemd's cpu.idle=1
        if c.shares and not idle:
            if cgroup_version == 1:
                props.append(prop("CPUShares", "t", c.shares))
            elif "cpu.weight" not in unified:
                props.append(prop("CPUWeight", "t", shares_to_weight(c.shares)))
        props += _cpuset(c, version)
    if m is not None:
        limit = None if m.limit in (None, 0) else m.limit
        if limit is not None:
            props.append(prop("MemoryLimit" if cgroup_version == 1 else "MemoryMax", "t",
                              _limit(limit)))
        if cgroup_version == 2:
            if m.reservation not in (None, 0):
                props.append(prop("MemoryLow", "t", _limit(m.reservation)))  # type: ignore[arg-type]
            now = current("memory.max")
            try:
                swap = swap_to_v2(m.swap, limit if limit is not None else
                                  (None if now in ("", "max") else int(now)))
            except ValueError as err:
                raise InvalidArgument(f"linux.resources.memory.swap: {err}, "
                                      f"got {m.swap}") from err
            if swap is not None:
                props.append(prop("MemorySwapMax", "t", _limit(swap)))
    if res.pids is not None and res.pids.limit is not None:
        props.append(prop("TasksMax", "t", INFINITY if res.pids.limit <= 0 else res.pids.limit))
    if cgroup_version == 1 and res.block_io is not None and res.block_io.weight:
        props.append(prop("BlockIOWeight", "t", res.block_io.weight))
    if cgroup_version == 2:
        props += unified_properties(unified, current, version)
    return props, res


def _cpuset(c: CPU, version: Callable[[], int]) -> list[Property]:
    out: list[Property] = []
    for value, name in ((c.cpus, "AllowedCPUs"), (c.mems, "AllowedMemoryNodes")):
        if value and version() >= 244:
            out.append(prop(name, "ay", range_to_bits(value)))
    return out


_MEMORY_KEYS = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow",
                "memory.min": "MemoryMin", "memory.max": "MemoryMax",
                "memory.swap.max": "MemorySwapMax"}


def unified_properties(unified: dict[str, str], current: Callable[[str], str],
                       version: Callable[[], int]) -> list[Property]:
    """linux.resources.unified keys systemd knows (runc's unifiedResToSystemdProps);
    the others are only written to the files."""
    out: list[Property] = []
    idle = unified.get("cpu.idle", "").strip() == "1" and version() >= 252
    for key, raw in unified.items():
        value = raw.strip()
        field = f"linux.resources.unified.{key}"
        try:
            if key == "cpu.idle" and idle:
                out.append(prop("CPUWeight", "t", 0))
            elif key == "cpu.weight" and not idle:
                out.append(prop("CPUWeight", "t", int(value)))
            elif key == "cpu.max":
                parts = value.split()
                if not 1 <= len(parts) <= 2:
                    raise ValueError(value)
                quota = -1 if parts[0] == "max" else int(parts[0])
                period = int(parts[1]) if len(parts) == 2 else DEFAULT_PERIOD
                out += cpu_quota(quota, period, current, version)[0]
            elif key in ("cpuset.cpus", "cpuset.mems") and version() >= 244:
                name = "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes"
                out.append(prop(name, "ay", range_to_bits(value)))
            elif key in _MEMORY_KEYS:
                out.append(prop(_MEMORY_KEYS[key], "t",
                                INFINITY if value == "max" else int(value)))
            elif key == "pids.max":
                n = INFINITY if value == "max" else int(value)
                out.append(prop("TasksMax", "t", n or 1))  # systemd takes no 0 (runc: 1)
        except ValueError as err:
            raise InvalidArgument(f"{field}: {value!r} is not a value systemd can "
                                  "take") from err
        if out and out[-1][1].signature == "t" and not 0 <= out[-1][1].value < 2**64:  # type: ignore[operator]
            raise InvalidArgument(f"{field}: {value!r} is out of range")
    return out


# ---- org.systemd.property.* annotations (runc's initSystemdProps) --------------

ANNOTATION_PREFIX = "org.systemd.property."
_TYPED = {"byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u",
          "int64": "x", "uint64": "t", "double": "d", "boolean": "b", "string": "s",
          "objectpath": "o", "signature": "g"}
_RANGE = {"y": (0, 2**8), "n": (-2**15, 2**15), "q": (0, 2**16), "i": (-2**31, 2**31),
          "u": (0, 2**32), "x": (-2**63, 2**63), "t": (0, 2**64)}


def annotation_properties(annotations: dict[str, str]) -> list[Property]:
    """Extra unit properties from ``org.systemd.property.NAME`` annotations, whose
    values are GVariant text ("uint64 123", "'inactive-or-failed'", "true", "[...]");
    a ``...Sec`` name takes seconds and becomes ``...USec`` (runc's rule)."""
    out: list[Property] = []
    for key in sorted(annotations):
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        name, text = key[len(ANNOTATION_PREFIX):], annotations[key]
        if len(name) < 3 or not (name.isascii() and name.isalpha()):
            raise InvalidArgument(f"annotation {key} name incorrect: only letters, "
                                  "at least three")
        if not isinstance(text, str):
            raise InvalidArgument(f"annotation {key}: the value must be a string")
        try:
            sig, value = parse_gvariant(text)
        except ValueError as err:
            raise InvalidArgument(f"annotation {key}={text} value parse error: {err}") from err
        if name.endswith("Sec") and len(name) > 3 and name[-4].islower():
            if sig not in ("y", "n", "q", "i", "u", "x", "t", "d") or value < 0:  # type: ignore[operator]
                raise InvalidArgument(f"annotation {key}={text} value parse error: "
                                      "not a number")
            name, sig, value = name[:-3] + "USec", "t", int(value * 1000000)  # type: ignore[operator]
        out.append(prop(name, sig, value))
    return out


def parse_gvariant(text: str) -> tuple[str, object]:
    """A small part of the GVariant text format: numbers (bare ones are int32, or
    double with a dot), typed numbers ("uint64 5"), true/false, quoted strings and
    arrays of one of those ("['a', 'b']")."""
    text = text.strip()
    if text.startswith("["):
        if not text.endswith("]"):
            raise ValueError("unclosed array")
        items = [parse_gvariant(part) for part in _split_items(text[1:-1])]
        sigs = {s for s, _ in items}
        if len(sigs) > 1:
            raise ValueError("array items of different types")
        if not items:
            raise ValueError("an empty array has no type (write @as [] ...)")
        return "a" + sigs.pop(), [v for _, v in items]
    word, _, rest = text.partition(" ")
    if word in _TYPED and rest.strip():
        sig = _TYPED[word]
        inner_sig, value = parse_gvariant(rest)
        if sig in _RANGE:
            if inner_sig not in ("i", "x") or not _RANGE[sig][0] <= value < _RANGE[sig][1]:  # type: ignore[operator]
                raise ValueError(f"{rest.strip()!r} is not a {word}")
        elif sig == "d":
            value = float(value)  # type: ignore[arg-type]
        elif sig == "b" and inner_sig != "b" or sig in "sog" and inner_sig != "s":
            raise ValueError(f"{rest.strip()!r} is not a {word}")
        return sig, value
    if text in ("true", "false"):
        return "b", text == "true"
    if len(text) >= 2 and text[0] in "'\"" and text[-1] == text[0]:
        return "s", _unquote(text[1:-1], text[0])
    try:
        n = int(text)
    except ValueError:
        pass
    else:
        return ("i" if -2**31 <= n < 2**31 else "x"), n
    try:
        return "d", float(text)
    except ValueError:
        raise ValueError(f"cannot read {text!r}") from None


def _split_items(text: str) -> list[str]:
    items, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if text[start:].strip():
        items.append(text[start:])
    return [item for item in items if item.strip()]


def _unquote(body: str, quote: str) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(body[i + 1])
            i += 2
            continue
        if ch == quote:
            raise ValueError("an unescaped quote inside a string")
        out.append(ch)
        i += 1
    return "".join(out)
