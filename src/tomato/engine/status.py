"""A container's status (Docker's words) and the one table of how it may change.

The engine's counterpart of the runtime's oci/state.py.  Every status change
goes through ``Containers.set_state`` with a ``StateChange``, which checks the
move against ``TRANSITIONS`` inside the write transaction that makes it:

    created    --start-->  running  --pause-->  paused  --unpause-->  running
    running / paused  --exit (the monitor, or the next look after a crash)-->  exited
    exited  --restart policy-->  restarting  --start-->  running
    exited / restarting  --start-->  running

A start that fails leaves the status as it was (created, or exited) and notes
the error and the exit code Docker gives it.  A status set to itself is allowed
(a monitor and a reader may both record the same exit).  ``StateChange`` has the
record's fields, each left alone unless given: a misspelt field is a TypeError,
never a value written and dropped on read.
"""

from __future__ import annotations

from tomato.errors import Conflict
from tomato.records import record

# Docker's status words.
CREATED, RUNNING, PAUSED, RESTARTING, EXITED, DEAD, REMOVING = (
    "created", "running", "paused", "restarting", "exited", "dead", "removing")

#: the statuses a live container (one with a process) has
LIVE = (RUNNING, PAUSED, RESTARTING)

#: status -> the statuses it may change to
TRANSITIONS: dict[str, frozenset[str]] = {
    CREATED: frozenset({CREATED, RUNNING}),
    RUNNING: frozenset({RUNNING, PAUSED, EXITED}),
    PAUSED: frozenset({PAUSED, RUNNING, EXITED}),
    RESTARTING: frozenset({RESTARTING, RUNNING, EXITED}),
    EXITED: frozenset({EXITED, RUNNING, RESTARTING}),
    DEAD: frozenset({DEAD}),
    REMOVING: frozenset({REMOVING}),
}


class _Unset:
    """A field a change leaves as it is."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: object = _Unset()


@record
class StateChange:
    """Some fields of a container's ``State`` (containers.py), the others UNSET."""

    status: object = UNSET
    pid: object = UNSET
    pid_start: object = UNSET
    exit_code: object = UNSET
    started_at: object = UNSET
    finished_at: object = UNSET
    oom_killed: object = UNSET
    restart_count: object = UNSET
    error: object = UNSET
    monitor_pid: object = UNSET
    monitor_start: object = UNSET
    stop_requested: object = UNSET

    def items(self) -> list[tuple[str, object]]:
        """The fields this change sets, with their values."""
        return [(name, value) for name, value in (
            ("status", self.status), ("pid", self.pid), ("pid_start", self.pid_start),
            ("exit_code", self.exit_code), ("started_at", self.started_at),
            ("finished_at", self.finished_at), ("oom_killed", self.oom_killed),
            ("restart_count", self.restart_count), ("error", self.error),
            ("monitor_pid", self.monitor_pid), ("monitor_start", self.monitor_start),
            ("stop_requested", self.stop_requested)) if value is not UNSET]


class InvalidTransition(Conflict):
    """A status change the table does not allow (a bug, or a record changed under us)."""


def check_transition(cid: str, current: str, new: str) -> None:
    if new not in TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"container {cid[:12]} cannot go from {current} to {new}")


def running(pid: int, pid_start: int, started_at: float) -> StateChange:
    """The monitor started the container's process."""
    return StateChange(status=RUNNING, pid=pid, pid_start=pid_start, started_at=started_at,
                       exit_code=0, finished_at=0.0, oom_killed=False, error="")


def exited(code: int, finished_at: float, oom_killed: bool = False,
           error: str | None = None) -> StateChange:
    """The container's process is gone: how, and when."""
    return StateChange(status=EXITED, exit_code=code, finished_at=finished_at,
                       oom_killed=oom_killed, pid=0, pid_start=0,
                       error=UNSET if error is None else error)
