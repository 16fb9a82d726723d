"""Docker's events: an append-only JSON-lines log, ``ROOT/events.jsonl``.

The engine's use cases record what they did (create, start, die, kill, stop,
destroy, pause, rename, ...; networks and volumes too) whoever asked: the
`tomato` CLI, the API server or a container's own monitor, which is the only
one that sees a container die.  ``GET /events`` (tomato.api.events) reads the
log and follows it.  Writing an event never fails the operation it reports.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

LOG_NAME = "events.jsonl"


def record(root: Path | str, kind: str, action: str, actor: str,
           attributes: dict[str, str] | None = None) -> dict[str, Any]:
    """Append one event; returns it.  Raises OSError (``emit`` does not)."""
    now = time.time_ns()
    event: dict[str, Any] = {"Type": kind, "Action": action,
                             "Actor": {"ID": actor, "Attributes": dict(attributes or {})},
                             "scope": "local", "time": now // 10**9, "timeNano": now}
    if kind == "container":  # the pre-1.22 fields docker-py and compose still read
        event.update({"status": action, "id": actor,
                      "from": (attributes or {}).get("image", "")})
    line = (json.dumps(event) + "\n").encode()
    fd = os.open(os.path.join(root, LOG_NAME),
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one whole line at a time, whoever writes
        os.write(fd, line)
    finally:
        os.close(fd)
    return event


def emit(root: Path | str, kind: str, action: str, actor: str,
         attributes: dict[str, str] | None = None) -> None:
    try:
        record(root, kind, action, actor, attributes)
    except OSError:
        pass  # an event is never worth failing the operation it reports


def container_attributes(name: str, image: str, labels: dict[str, str] | None) -> dict[str, str]:
    return {"name": name, "image": image, **(labels or {})}


def container(root: Path | str, c: Any, action: str, **extra: str) -> None:
    """An event about container record ``c`` (name, image and labels as attributes)."""
    attrs = container_attributes(c.name, c.image, c.options.get("labels"))
    emit(root, "container", action, c.id, {**attrs, **extra})
