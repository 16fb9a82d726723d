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

from tomato.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
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


#: the filter keys dockerd's /events takes (swarm's name objects this engine never has)
FILTER_KEYS = frozenset(("config", "container", "daemon", "event", "image", "label",
                         "network", "node", "plugin", "scope", "secret", "service", "type",
                         "volume"))


def check_filters(filters: dict[str, list[str]]) -> None:
    for key in filters:
        if key not in FILTER_KEYS:
            raise InvalidArgument(f"invalid filter '{key}'")


def matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Docker's event filters: values of a key OR'ed, keys AND'ed."""
    actor = event.get("Actor", {})
    attrs = actor.get("Attributes", {})
    for key, values in filters.items():
        if not values:
            continue
        if key == "type":
            ok = event.get("Type") in values
        elif key == "event":
            ok = event.get("Action") in values or \
                str(event.get("Action", "")).split(":")[0] in values
        elif key in ("container", "image", "volume", "network"):
            ok = (event.get("Type") == key or key == "image") and any(
                v == actor.get("ID") or actor.get("ID", "").startswith(v) or
                v == attrs.get("name") or v == attrs.get("image") for v in values)
            if key == "container" and event.get("Type") != "container":
                ok = False
        elif key == "label":
            ok = all(attrs.get(v.partition("=")[0]) == v.partition("=")[2] if "=" in v
                     else v in attrs for v in values)
        else:
            ok = True
        if not ok:
            return False
    return True


def follow(root: Path | str, since: float | None, until: float | None,
           stop: Callable[[], bool]) -> Iterator[dict[str, Any] | None]:
    """Events from ``since`` (or from now), then new ones; yields None when idle so
    the caller can check its client.  Ends at ``until`` or when ``stop()``."""
    path = Path(root) / LOG_NAME
    start_ns = int((since if since is not None else time.time()) * 1e9)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)  # as record() makes it
    with open(fd, "rb") as f:
        pending = b""
        while True:
            chunk = f.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if event.get("timeNano", 0) < start_ns:
                        continue
                    if until is not None and event.get("timeNano", 0) > until * 1e9:
                        return
                    yield event
                continue
            if until is not None and time.time() > until:
                return
            if stop():
                return
            yield None
            time.sleep(0.05)
