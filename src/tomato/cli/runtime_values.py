"""tomato-runtime's flag values parsed as runc 1.1 parses them: `update`'s resources
(from -r or from its flags) and `exec --cgroup`."""

from __future__ import annotations

import sys

from tomato import fastjson as json
from tomato.cli.flags import Parsed
from tomato.errors import InvalidArgument

TYPE_CHECKING = False  # the runtime's start path: no typing import
if TYPE_CHECKING:
    from typing import Any


def update_resources(p: Parsed) -> dict[str, Any]:
    """runc 1.1's update: -r FILE|- (linux.resources JSON) or its flags, parsed as runc
    parses them (unsigned: periods and shares; signed: quotas and rt runtime; sizes
    with units or -1; 0 or an absent flag leaves the value alone)."""
    if p.str("resources"):
        src = p.str("resources")
        try:
            if src == "-":
                data = json.loads(sys.stdin.read())
            else:
                with open(src) as f:
                    data = json.loads(f.read())
        except (OSError, ValueError) as err:
            raise InvalidArgument(f"cannot read resources {src}: {err}") from err
        if not isinstance(data, dict):
            raise InvalidArgument(f"resources {src} must be a JSON object")
        return data

    def num(name: str, signed: bool = True) -> int | None:
        raw = p.get(name)
        if raw is None:
            return None
        text = str(raw).strip()
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or (value < 0 and not signed):
            kind = "an integer" if signed else "an unsigned integer"
            raise InvalidArgument(f"invalid value for --{name}: {text!r} is not {kind}")
        return value

    def size(name: str) -> int | None:
        raw = p.get(name)
        if raw is None:
            return None
        text = str(raw).strip()
        if text == "-1":
            return -1
        from tomato.runtime.units import parse_size

        try:
            return parse_size(text)
        except ValueError:
            raise InvalidArgument(f"invalid value for --{name}: {text!r} is not a size "
                                  "(bytes, or with k, m, g...; -1 for unlimited)") from None

    res: dict[str, Any] = {}
    cpu_flags = (("shares", num("cpu-share", False)), ("quota", num("cpu-quota")),
                 ("period", num("cpu-period", False)), ("burst", num("cpu-burst", False)),
                 ("realtimeRuntime", num("cpu-rt-runtime")),
                 ("realtimePeriod", num("cpu-rt-period", False)))
    cpu: dict[str, int | str] = {k: v for k, v in cpu_flags if v}
    if p.get("cpuset-cpus") is not None:
        cpu["cpus"] = p.str("cpuset-cpus")
    if p.get("cpuset-mems") is not None:
        cpu["mems"] = p.str("cpuset-mems")
    if cpu:
        res["cpu"] = cpu
    limit, swap = size("memory"), size("memory-swap")
    if limit and swap and limit > 0 and 0 < swap < limit:
        raise InvalidArgument(f"invalid value for --memory-swap: {swap} is below --memory "
                              f"{limit} (it limits memory + swap)")
    mem = {k: v for k, v in (("limit", limit), ("reservation", size("memory-reservation")),
                             ("swap", swap), ("kernel", size("kernel-memory")),
                             ("kernelTCP", size("kernel-memory-tcp"))) if v}
    if mem:
        res["memory"] = mem
    pids = num("pids-limit")
    if pids:  # runc: 0 leaves it alone, -1 is "max"
        res["pids"] = {"limit": pids}
    weight = num("blkio-weight", False)
    if weight:
        res["blockIO"] = {"weight": weight}
    return res


def sub_cgroups(args: list[str]) -> dict[str, str] | None:
    """runc 1.1's `exec --cgroup [<controller>[,<controller>]:]<path>` (repeatable;
    without a controller, once only: the path below every hierarchy)."""
    if not args:
        return None
    paths: dict[str, str] = {}
    for arg in args:
        parts = arg.split(":")
        if len(parts) > 2 or not parts[-1]:
            raise InvalidArgument(f"invalid --cgroup argument: {arg}")
        if len(parts) == 1:
            if len(args) != 1:
                raise InvalidArgument(f"invalid --cgroup argument: {arg} (missing "
                                      "<controller>: prefix)")
            paths[""] = arg
        else:
            for ctrl in parts[0].split(","):
                paths[ctrl] = parts[1]
    return paths
