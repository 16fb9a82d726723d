"""What a running container uses and may use: stats, top and update."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

from tomato.engine.containers import Container, Containers
from tomato.engine.images import EngineConfig
from tomato.errors import Conflict, InvalidArgument, TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any


def _runtime_states(cfg: EngineConfig) -> Any:
    from tomato.engine.runtime_ops import runtime_root
    from tomato.runtime.statedir import StateDir

    return StateDir(str(runtime_root(cfg)))


def cgroups_of(cfg: EngineConfig, c: Container) -> Any:
    """A running container's cgroup manager, found once (the runtime's state read once),
    to be read as often as a caller samples it."""
    from tomato.runtime.lifecycle import load, manager_of

    if c.state.status not in ("running", "paused"):
        raise Conflict(f"container {c.short_id} is not running")
    rec, status = load(_runtime_states(cfg), c.id)
    if status not in ("running", "paused"):
        raise Conflict(f"container {c.short_id} is not running")
    mgr = manager_of(rec)
    if mgr is None:
        raise Conflict(f"container {c.short_id} has no cgroups")
    return mgr


def raw_stats(cfg: EngineConfig, c: Container) -> dict[str, Any]:
    result: dict[str, Any] = cgroups_of(cfg, c).stats()
    return result


@dataclass(frozen=True)
class Reading:
    """One reading of a container's cgroups (``at``: time.monotonic_ns())."""
    stats: dict[str, Any]
    at: int


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


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def compute(before: Reading, after: Reading) -> Sample:
    """CPU % as docker computes it (of one CPU = 100 %) between two readings; the rest
    from the later one.  Memory in use leaves out inactive page cache, as docker's CLI."""
    elapsed = after.at - before.at
    delta = _cpu_total(after.stats) - _cpu_total(before.stats)
    cpu = max(delta, 0) / elapsed * 100 if elapsed > 0 else 0.0
    mem = after.stats.get("memory", {})
    raw = mem.get("raw") or {}
    usage = int(mem.get("usage", {}).get("usage", 0))
    inactive = int(raw.get("total_inactive_file", raw.get("inactive_file", 0)) or 0)
    usage = usage - inactive if inactive < usage else usage
    limit = int(mem.get("usage", {}).get("limit", 0) or 0)
    limit = min(limit, physical_memory()) if limit else physical_memory()
    read, write = _block(after.stats)
    return Sample(cpu, usage, limit, usage * 100 / limit if limit else 0.0, read, write,
                  int(after.stats.get("pids", {}).get("current", 0)))


class Sampler:
    """Samples of many containers at once.

    CPU % is the difference of two readings of a counter.  A table of N containers
    costs one reading of all, one interval, and a second reading of all -- never an
    interval per container (that was 0.5 s a container: 100 s for 200) -- and each
    container's runtime state is read once, not at every reading.  A live table
    reads every container once a frame, against the frame before.
    """

    def __init__(self, cfg: EngineConfig, interval: float = 0.5) -> None:
        self.cfg = cfg
        self.interval = interval
        self._cgroups: dict[tuple[str, int], Any] = {}  # (id, pid): a restart is another
        self._last: dict[str, Reading] = {}
        self._pass_started = 0.0

    def _read(self, c: Container) -> Reading | None:
        """None when the container is not running (or stopped since it was listed)."""
        key = (c.id, c.state.pid)
        try:
            mgr = self._cgroups.get(key)
            if mgr is None:
                mgr = self._cgroups[key] = cgroups_of(self.cfg, c)
            return Reading(mgr.stats(), time.monotonic_ns())
        except (TomatoError, OSError):
            return None

    def _pace(self) -> None:
        """Sleep what is left of the interval since the last pass began: each
        container's two readings are then an interval apart (a pass is in the same
        order every time), and the time spent reading is not added to the wait."""
        left = self._pass_started + self.interval - time.monotonic()
        if left > 0:
            time.sleep(left)

    def sample(self, containers: list[Container]) -> list[tuple[Container, Sample]]:
        """(container, sample) for those of ``containers`` that are running, in order."""
        running = [c for c in containers if c.state.status in ("running", "paused")]
        new = [c for c in running if c.id not in self._last]
        if new:
            self._pass_started = time.monotonic()
            for c in new:
                first = self._read(c)
                if first is not None:
                    self._last[c.id] = first
        if self._pass_started:
            self._pace()
        self._pass_started = time.monotonic()
        out = []
        last: dict[str, Reading] = {}
        for c in running:
            before = self._last.get(c.id)
            now = self._read(c)
            if before is None or now is None:
                continue
            last[c.id] = now
            out.append((c, compute(before, now)))
        self._last = last  # who stopped or went is forgotten
        live = {(c.id, c.state.pid) for c in running}
        self._cgroups = {k: v for k, v in self._cgroups.items() if k in live}
        return out


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
