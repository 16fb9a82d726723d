"""Statistics of the v1 hierarchies, shaped like ``runc events --stats`` data."""

from __future__ import annotations

import os

from .base import read, read_int, read_keyed


def collect(paths: dict[str, str]) -> dict:
    """cpu (cpuacct + cpu.stat), memory, pids, blkio and hugetlb numbers."""
    out: dict = {}
    cpu: dict = {"usage": {}, "throttling": {}}
    acct = paths.get("cpuacct")
    if acct:
        u = cpu["usage"]
        u["total"] = read_int(os.path.join(acct, "cpuacct.usage"))
        u["percpu"] = _ints(os.path.join(acct, "cpuacct.usage_percpu"))
        u["percpu_kernel"] = _ints(os.path.join(acct, "cpuacct.usage_percpu_sys"))
        u["percpu_user"] = _ints(os.path.join(acct, "cpuacct.usage_percpu_user"))
        st = read_keyed(os.path.join(acct, "cpuacct.stat"))
        hz = os.sysconf("SC_CLK_TCK") or 100
        u["kernel"] = st.get("system", 0) * 1_000_000_000 // hz
        u["user"] = st.get("user", 0) * 1_000_000_000 // hz
    c = paths.get("cpu")
    if c:
        st = read_keyed(os.path.join(c, "cpu.stat"))
        cpu["throttling"] = {"periods": st.get("nr_periods", 0),
                             "throttledPeriods": st.get("nr_throttled", 0),
                             "throttledTime": st.get("throttled_time", 0)}
    out["cpu"] = cpu
    m = paths.get("memory")
    if m:
        def entry(prefix: str) -> dict:
            return {"limit": read_int(os.path.join(m, prefix + "limit_in_bytes")),
                    "usage": read_int(os.path.join(m, prefix + "usage_in_bytes")),
                    "max": read_int(os.path.join(m, prefix + "max_usage_in_bytes")),
                    "failcnt": read_int(os.path.join(m, prefix + "failcnt"))}
        raw = read_keyed(os.path.join(m, "memory.stat"))
        oom = read_keyed(os.path.join(m, "memory.oom_control"))
        out["memory"] = {"cache": raw.get("total_cache", raw.get("cache", 0)),
                         "usage": entry("memory."), "swap": entry("memory.memsw."),
                         "kernel": entry("memory.kmem."),
                         "kernelTCP": entry("memory.kmem.tcp."), "raw": raw,
                         "oom_kill": oom.get("oom_kill", 0),
                         "under_oom": oom.get("under_oom", 0)}
    p = paths.get("pids")
    if p:
        out["pids"] = {"current": read_int(os.path.join(p, "pids.current")),
                       "limit": read_int(os.path.join(p, "pids.max")),
                       "max_events": read_keyed(os.path.join(p, "pids.events")).get("max", 0)}
    b = paths.get("blkio")
    if b:
        out["blkio"] = {
            "ioServiceBytesRecursive": _blkio(os.path.join(
                b, "blkio.throttle.io_service_bytes_recursive")),
            "ioServicedRecursive": _blkio(os.path.join(
                b, "blkio.throttle.io_serviced_recursive")),
        }
    h = paths.get("hugetlb")
    if h:
        out["hugetlb"] = {}
        for name in sorted(os.listdir(h)):
            if name.startswith("hugetlb.") and name.endswith(".limit_in_bytes"):
                size = name.split(".")[1]
                out["hugetlb"][size] = {
                    "usage": read_int(os.path.join(h, f"hugetlb.{size}.usage_in_bytes")),
                    "max": read_int(os.path.join(h, f"hugetlb.{size}.max_usage_in_bytes")),
                    "failcnt": read_int(os.path.join(h, f"hugetlb.{size}.failcnt"))}
    return out


def _ints(path: str) -> list[int]:
    try:
        return [int(x) for x in read(path).split()]
    except (OSError, ValueError):
        return []


def _blkio(path: str) -> list[dict]:
    out: list[dict] = []
    try:
        text = read(path)
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            out.append({"major": int(major), "minor": int(minor), "op": parts[1],
                        "value": int(parts[2])})
    return out


