"""``GET /containers/{id}/stats``: the runtime's cgroup stats in the JSON Docker emits
(docker's CLI computes CPU % from cpu_stats/precpu_stats and system_cpu_usage)."""

from __future__ import annotations

import os
import time
from typing import Any

from tomato.api.http import Request
from tomato.engine import service
from tomato.engine.containers import Container, iso
from tomato.errors import TomatoError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.api.server import Api

_TICKS = os.sysconf("SC_CLK_TCK")


def _system_cpu() -> int:
    """Host CPU time in ns, as docker reads it from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                return sum(int(x) for x in line.split()[1:8]) * 10**9 // _TICKS
    return 0


def _networks(pid: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return out
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        v = [int(x) for x in rest.split()]
        out[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                     "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10],
                     "tx_dropped": v[11]}
    return out


def _cpu(raw: dict[str, Any]) -> dict[str, Any]:
    usage = raw.get("cpu", {}).get("usage", {})
    throttle = raw.get("cpu", {}).get("throttling", {})
    percpu = usage.get("percpu") or []
    return {"cpu_usage": {"total_usage": int(usage.get("total", 0)),
                          "percpu_usage": percpu or None,
                          "usage_in_kernelmode": int(usage.get("kernel", 0)),
                          "usage_in_usermode": int(usage.get("user", 0))},
            "system_cpu_usage": _system_cpu(), "online_cpus": os.cpu_count() or 1,
            "throttling_data": {"periods": int(throttle.get("periods", 0)),
                                "throttled_periods": int(throttle.get("throttledPeriods", 0)),
                                "throttled_time": int(throttle.get("throttledTime", 0))}}


def sample(c: Container, raw: dict[str, Any], pre: dict[str, Any] | None) -> dict[str, Any]:
    """Docker's stats JSON from one reading of the container's cgroups (``raw``)."""
    from tomato.engine import usage

    mem = raw.get("memory", {})
    limit = int(mem.get("usage", {}).get("limit", 0) or 0)
    limit = min(limit, usage.physical_memory()) if limit else usage.physical_memory()
    blk = [{"major": int(e.get("major", 0)), "minor": int(e.get("minor", 0)),
            "op": str(e.get("op", "")).capitalize(), "value": int(e.get("value", 0))}
           for e in raw.get("blkio", {}).get("ioServiceBytesRecursive", []) or []]
    return {
        "read": iso(time.time()), "preread": pre["read"] if pre else "0001-01-01T00:00:00Z",
        "pids_stats": {"current": int(raw.get("pids", {}).get("current", 0))},
        "blkio_stats": {"io_service_bytes_recursive": blk or None,
                        "io_serviced_recursive": None, "io_queue_recursive": None,
                        "io_service_time_recursive": None, "io_wait_time_recursive": None,
                        "io_merged_recursive": None, "io_time_recursive": None,
                        "sectors_recursive": None},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": _cpu(raw),
        "precpu_stats": pre["cpu_stats"] if pre else {"cpu_usage": {"total_usage": 0},
                                                       "throttling_data": {}},
        "memory_stats": {"usage": int(mem.get("usage", {}).get("usage", 0)),
                         "max_usage": int(mem.get("usage", {}).get("max", 0)),
                         "stats": {k: int(v) for k, v in (mem.get("raw") or {}).items()},
                         "limit": limit},
        "name": "/" + c.name, "id": c.id,
        "networks": _networks(c.state.pid) if c.state.pid else {},
    }


def _empty(c: Container) -> dict[str, Any]:
    """Docker answers a stopped container with zeroed stats, not an error."""
    return {"read": "0001-01-01T00:00:00Z", "preread": "0001-01-01T00:00:00Z",
            "pids_stats": {}, "blkio_stats": {}, "num_procs": 0, "storage_stats": {},
            "cpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "precpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "memory_stats": {}, "name": "/" + c.name, "id": c.id}


def stats(api: Api, req: Request, id: str) -> None:  # noqa: A002 — Docker's name
    from tomato.engine import usage

    c = service.get(api.cfg, id)
    stream = req.flag("stream", True) if "stream" in req.query else True
    one_shot = req.flag("one-shot")
    if c.state.status not in ("running", "paused") and not stream:
        req.json_response(_empty(c))
        return
    # The container's cgroups are found once (the runtime's state read once) and read
    # at each sample.  `docker stats` asks for every container at once, one request
    # each: the requests' threads wait out their intervals side by side.
    if not stream:
        try:
            mgr = usage.cgroups_of(api.cfg, c)
            pre = None if one_shot else sample(c, mgr.stats(), None)
            if pre is not None:
                time.sleep(0.5)
            body = sample(c, mgr.stats(), pre)
        except (TomatoError, OSError):  # it stopped meanwhile
            body = _empty(c)
        req.json_response(body)
        return
    req.start_stream()
    pre = None
    mgr, pid = None, 0
    while True:
        c = service.get(api.cfg, c.id)
        if c.state.status not in ("running", "paused"):
            break
        try:
            if mgr is None or pid != c.state.pid:  # a restart: new processes, new cgroups
                mgr, pid = usage.cgroups_of(api.cfg, c), c.state.pid
            cur = sample(c, mgr.stats(), pre)
        except (TomatoError, OSError):  # it stopped meanwhile
            break
        req.json_chunk(cur)
        pre = cur
        for _ in range(10):
            time.sleep(0.1)
            if req.client_gone():
                return
    req.end_stream()


ROUTES = [("GET", "/containers/{id}/stats", stats)]
