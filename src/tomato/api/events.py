"""Docker's events: an append-only JSON-lines log under the engine root.

``record(root, ...)`` is the one function that writes an event; the API
handlers call it for what they do.  (Engine hooks could call it too, so
events from `tomato` CLI commands would appear: ``record(cfg.root, "container",
"start", cid, {"name": ..., "image": ...})`` after each use case.)
``GET /events`` reads the log from ``since`` and follows it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def record(root: Path | str, kind: str, action: str, actor: str,
           attributes: dict[str, str] | None = None) -> dict[str, Any]:
    now = time.time_ns()
    event: dict[str, Any] = {"Type": kind, "Action": action,
                             "Actor": {"ID": actor, "Attributes": dict(attributes or {})},
                             "scope": "local", "time": now // 10**9, "timeNano": now}
    if kind == "container":  # the pre-1.22 fields docker-py and compose still read
        event.update({"status": action, "id": actor,
                      "from": (attributes or {}).get("image", "")})
    path = Path(root) / "events.jsonl"
    line = (json.dumps(event) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        os.close(fd)
    return event


def matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
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
            ok = any(attrs.get(v.partition("=")[0]) == v.partition("=")[2] if "=" in v
                     else v in attrs for v in values)
        else:
            ok = True
        if not ok:
            return False
    return True


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, kind: str, action: str, actor: str,
               attributes: dict[str, str] | None = None) -> None:
        try:
            record(self.path.parent, kind, action, actor, attributes)
        except OSError:
            pass  # an event is never worth failing the operation it reports

    def follow(self, since: float | None, until: float | None,
               stop: Callable[[], bool]) -> Iterator[dict[str, Any] | None]:
        """Events from ``since`` (or from now), then new ones; yields None when idle so
        the caller can check its client.  Ends at ``until`` or when ``stop()``."""
        start_ns = int((since if since is not None else time.time()) * 1e9)
        try:
            f = open(self.path, "rb")  # noqa: SIM115 — closed below
        except FileNotFoundError:
            self.path.touch()
            f = open(self.path, "rb")  # noqa: SIM115
        with f:
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
                        if until is not None and event.get("time", 0) > until:
                            return
                        yield event
                    continue
                if until is not None and time.time() > until:
                    return
                if stop():
                    return
                yield None
                time.sleep(0.05)
