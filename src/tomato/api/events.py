"""``GET /events``: Docker's filters, and following the engine's event log.

The engine's use cases write the log (tomato.engine.events), whoever asked
for them; the API adds what only it does (attach, exec instances, restart).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tomato.engine import events


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
        events.emit(self.path.parent, kind, action, actor, attributes)

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
