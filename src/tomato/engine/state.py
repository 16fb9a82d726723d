"""What the engine knows of a container: its record, made to tell the truth.

A record's state is a claim (containers.py); every read goes through
``reconcile``, which compares it with the kernel -- the container's pid and its
start time, the monitor's liveness, the exit the shim wrote down -- and records
what it finds through the one transition table (status.py).  So after kill -9 of
any tomato process the next `ps` or `inspect` tells what really happened:

    container alive, monitor dead   ->  killed, exited 137 (nobody reads its output)
    container dead, monitor alive   ->  the exit the shim wrote (exit.json), if any
    container dead, monitor dead    ->  exited, with whatever exit was written down
    frozen in the kernel            ->  paused (and back to running when thawed)

On a full disk a read still tells the truth: it is noted on the record in hand
even when it cannot be written.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tomato.engine import events, runtime_ops
from tomato.engine.containers import Container, Containers, apply_change, read_exit
from tomato.engine.status import (
    CREATED,
    DEAD,
    EXITED,
    LIVE,
    PAUSED,
    RESTARTING,
    RUNNING,
    StateChange,
    exited,
)
from tomato.errors import InvalidArgument, NoSpace, NotFound

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from tomato.engine.config import EngineConfig

#: State.Error of a container whose monitor died under it
MONITOR_LOST = "the container's monitor died: killed, as its output had nowhere to go"

__all__ = ["CREATED", "DEAD", "EXITED", "LIVE", "PAUSED", "RESTARTING", "RUNNING",
           "MONITOR_LOST", "reconcile", "get", "list_containers", "note", "request_stop",
           "wait_exit", "wait_recorded", "is_running", "log_path"]


def reconcile(cfg: EngineConfig, c: Container) -> Container:
    """Make the record tell the truth about the kernel (after crashes of anything)."""
    from tomato.runtime.statedir import alive

    st = c.state
    if st.status not in LIVE:
        return c
    monitor_alive = alive(st.monitor_pid, st.monitor_start)
    container_alive = alive(st.pid, st.pid_start)
    if container_alive and not monitor_alive:
        return monitor_lost(cfg, c)
    if container_alive:
        frozen = runtime_ops.is_paused(cfg, c.id)
        if frozen and st.status != PAUSED:
            note(cfg, c, StateChange(status=PAUSED))
        elif not frozen and st.status == PAUSED:
            note(cfg, c, StateChange(status=RUNNING))
        return c
    records = Containers(cfg.root)
    if monitor_alive:
        # The monitor is recording the exit; tomato-shim has already written it.
        info = read_exit(records.path(c.id))
        if not info:
            # Between restarts, or about to record the exit itself -- or it just did:
            # it writes the record before it unlinks exit.json, so read that again.
            return records.get(c.id)
        # Told, not written: the monitor writes it (and its events) in a moment.
        apply_change(c.id, c.state, exited(int(info.get("exit_code", 0)),
                                           float(info.get("finished_at", 0.0)),
                                           bool(info.get("oom_killed", False))))
        return c
    # Nobody is left to record the exit: the monitor died with or after the container
    # (tomato-shim may have written the exit down before it went).
    runtime_ops.delete(cfg, c.id)
    info = read_exit(records.path(c.id))
    finished = float(info.get("finished_at", 0.0)) or st.finished_at
    note(cfg, c, exited(int(info.get("exit_code", st.exit_code if finished else 255)),
                        finished or time.time(), bool(info.get("oom_killed", False))))
    return c


def monitor_lost(cfg: EngineConfig, c: Container) -> Container:
    """The monitor was killed and the container lives on: nobody reads its output or
    will record its exit.  As containerd does when a shim dies, the container is
    killed and recorded exited (137); a supervisor (`tomato daemon`) then applies its
    restart policy."""
    runtime_ops.delete(cfg, c.id)  # SIGKILL to everything in it (thawed first), cgroup gone
    note(cfg, c, exited(128 + signal.SIGKILL, time.time(), error=MONITOR_LOST))
    events.container(cfg.root, c, "die", exitCode=str(c.state.exit_code))
    return c


def note(cfg: EngineConfig, c: Container, change: StateChange) -> None:
    """Record what the kernel says of ``c`` -- and on a full disk, only tell it: a read
    (ps, inspect, logs) never needs a write to tell the truth."""
    try:
        c.state = Containers(cfg.root).set_state(c.id, change)
    except NoSpace:
        apply_change(c.id, c.state, change)


def request_stop(cfg: EngineConfig, c: Container) -> None:
    """Tell the monitor not to restart ``c`` when it exits: in the record, or on a full
    disk as an empty marker file (a new name needs no free block on most filesystems;
    the monitor looks for both).  Never a reason not to signal the container."""
    from tomato.engine.containers import STOP_MARKER

    records = Containers(cfg.root)
    try:
        records.set_state(c.id, StateChange(stop_requested=True))
    except NoSpace:
        try:
            os.close(os.open(records.path(c.id) / STOP_MARKER,
                             os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError:
            pass


def get(cfg: EngineConfig, ref: str) -> Container:
    """A container by id, name or unique id prefix, reconciled."""
    return reconcile(cfg, Containers(cfg.root).get(ref))


def list_containers(cfg: EngineConfig, all_states: bool = False) -> list[Container]:
    """The containers, newest first, reconciled (after sweeping what killed commands
    left: networks first, then every other piece)."""
    from tomato.engine import leftovers
    from tomato.engine.networks import sweep

    sweep(cfg.root)  # what a killed `tomato run` left of its network
    found = Containers(cfg.root).all()
    leftovers.sweep(cfg, {c.id for c in found})  # ...and of everything else
    out = []
    for c in found:
        c = reconcile(cfg, c)
        if all_states or c.state.status in LIVE:
            out.append(c)
    return out


def wait_exit(cfg: EngineConfig, ref: str, timeout: float | None = None) -> Container:
    """Until the container is no longer live (or ``timeout`` seconds): its state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    c = get(cfg, ref)
    while c.state.status in LIVE:
        if deadline is not None and time.monotonic() > deadline:
            break
        time.sleep(0.02)
        c = get(cfg, c.id)
    return c


def wait_recorded(cfg: EngineConfig, cid: str, timeout: float = 5.0) -> None:
    """Until the monitor has recorded the exit (and reported "die"): the kernel and
    exit.json tell `wait_exit` a little earlier.  A dead monitor records nothing."""
    from tomato.runtime.statedir import alive

    records = Containers(cfg.root)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = records.get(cid).state
        except NotFound:
            return
        if st.status not in LIVE or not alive(st.monitor_pid, st.monitor_start):
            return
        time.sleep(0.01)


def is_running(cfg: EngineConfig, cid: str) -> bool:
    try:
        return get(cfg, cid).state.status in LIVE
    except NotFound:
        return False


def log_path(cfg: EngineConfig, ref: str) -> tuple[Container, Path]:
    c = get(cfg, ref)
    if c.options.get("log_driver") == "none":
        raise InvalidArgument("configured logging driver does not support reading")
    return c, Containers(cfg.root).log_path(c.id)
