"""Container status and the lifecycle transition table (runtime-spec "Lifecycle")."""

from __future__ import annotations

import re
from enum import Enum

from tomato.errors import Conflict, InvalidArgument


class Status(str, Enum):
    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


#: operation → the statuses it is allowed from.
ALLOWED = {
    "start": {Status.CREATED},
    "kill": {Status.CREATED, Status.RUNNING, Status.PAUSED},
    "pause": {Status.RUNNING},
    "resume": {Status.PAUSED},
    "exec": {Status.CREATED, Status.RUNNING},
    "delete": {Status.STOPPED, Status.CREATED},
    "update": {Status.CREATED, Status.RUNNING, Status.PAUSED},
}

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+\-.]*$")


def check_transition(op: str, container_id: str, status: Status) -> None:
    if status not in ALLOWED[op]:
        raise Conflict(f"cannot {op} container {container_id}: it is {status.value}")


def validate_id(container_id: str) -> str:
    """runc's rule: letters, digits, and _+-. ; no path separators, not empty."""
    if not container_id or len(container_id) > 1024 or not _ID.match(container_id):
        raise InvalidArgument(f"invalid container id {container_id!r}: use letters, digits "
                              "and _+-.")
    return container_id
