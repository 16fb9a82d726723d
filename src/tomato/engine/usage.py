"""What a running container uses and may use: stats, top and update."""

from __future__ import annotations

import os
import subprocess
import time

from tomato.engine.containers import Container, Containers
from tomato.engine.images import EngineConfig
from tomato.errors import Conflict, InvalidArgument
from tomato.records import record as dataclass

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any


def _runtime_states(cfg: EngineConfig) -> Any:
    from tomato.engine.service import runtime_root
    from tomato.runtime.statedir import StateDir

    return StateDir(str(runtime_root(cfg)))


def raw_stats(cfg: EngineConfig, c: Container) -> dict[str, Any]:
    from tomato.runtime.lifecycle import stats

    if c.state.status not in ("running", "paused"):
        raise Conflict(f"container {c.short_id} is not running")
    result: dict[str, Any] = stats(_runtime_states(cfg), c.id)
    return result


@dataclass(frozen=True)
class Sample:
    cpu_percent: float
    mem_usage: int
    mem_limit: int
    mem_percent: float
    block_read: int
    block_write: int
    pids: int


def _cpu_total(stats: dict[str, Any]) -> int:
    return int(stats.get("cpu", {}).get("usage", {}).get("total", 0))


def _block(stats: dict[str, Any]) -> tuple[int, int]:
    read = write = 0
    for entry in stats.get("blkio", {}).get("ioServiceBytesRecursive", []) or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += int(entry.get("value", 0))
        elif op == "write":
            write += int(entry.get("value", 0))
    return read, write


def sample(cfg: EngineConfig, c: Container, interval: float = 0.5) -> Sample:
    """Two readings ``interval`` apart: CPU % as docker computes it (of one CPU = 100 %)."""
    first = raw_stats(cfg, c)
    t0 = time.monotonic()
    time.sleep(interval)
    second = raw_stats(cfg, c)
    elapsed_ns = (time.monotonic() - t0) * 1e9
    cpu = (_cpu_total(second) - _cpu_total(first)) / elapsed_ns * 100 if elapsed_ns else 0.0
    mem = second.get("memory", {}).get("usage", {})
    raw = second.get("memory", {}).get("raw", {})
    usage = int(mem.get("usage", 0)) - int(raw.get("total_inactive_file", 0) or 0)
    limit = int(mem.get("limit", 0))
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = min(limit, physical) if limit else physical
    read, write = _block(second)
    return Sample(cpu, max(usage, 0), limit, usage * 100 / limit if limit else 0.0, read, write,
                  int(second.get("pids", {}).get("current", 0)))


def top(cfg: EngineConfig, c: Container, ps_args: list[str]) -> list[list[str]]:
    """`ps` on the host, limited to the container's processes (as docker top does)."""
    from tomato.runtime.lifecycle import pids

    if c.state.status not in ("running", "paused"):
        raise Conflict(f"Container {c.id} is not running")
    wanted = set(pids(_runtime_states(cfg), c.id))
    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True)
    if out.returncode != 0:
        raise InvalidArgument(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        raise InvalidArgument("couldn't find PID field in ps output")
    col = header.index("PID")
    rows = [header]
    for line in lines[1:]:
        fields = line.split(None, len(header) - 1)
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            rows.append(fields)
    return rows


def update(cfg: EngineConfig, c: Container, changes: dict[str, Any]) -> None:
    """New limits for a running container, and for every later start of it."""
    from tomato.runtime.lifecycle import update as rt_update

    resources = dict(c.spec.get("linux", {}).get("resources", {}))
    for key, value in changes.items():
        resources[key] = {**resources.get(key, {}), **value}
    if c.state.status in ("running", "paused"):
        rt_update(_runtime_states(cfg), c.id, changes)
    c.spec.setdefault("linux", {})["resources"] = resources
    options = dict(c.options)
    if "restart" in changes:
        options["restart"] = changes.pop("restart")
    Containers(cfg.root).update_options(c.id, options, c.spec)
    bundle = Containers(cfg.root).bundle(c.id) / "config.json"
    if bundle.exists():
        import json

        from tomato.files import write_private

        write_private(bundle, json.dumps(c.spec))
    from tomato.engine import events

    events.container(cfg.root, c, "update")
