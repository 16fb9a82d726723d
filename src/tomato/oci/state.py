"""Container status and the lifecycle transition table (runtime-spec "Lifecycle").

Statuses are plain strings (the values the OCI state JSON carries); no enum
or regex here, since this module is on the runtime's start path.
"""

from __future__ import annotations

from tomato.errors import Conflict, InvalidArgument


class Status:
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

_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ID_FIRST | frozenset("_+-.")


def check_transition(op: str, container_id: str, status: str) -> None:
    if status not in ALLOWED[op]:
        raise Conflict(f"cannot {op} container {container_id}: it is {status}")


def validate_id(container_id: str) -> str:
    """runc's rule: letters, digits, and _+-. ; no path separators, not empty."""
    if (not container_id or len(container_id) > 1024 or container_id[0] not in _ID_FIRST
            or not _ID_REST.issuperset(container_id)):
        raise InvalidArgument(f"invalid container id {container_id!r}: use letters, digits "
                              "and _+-.")
    return container_id
