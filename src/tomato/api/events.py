"""``GET /events``: Docker's filters, and following the engine's event log.

The engine's use cases write the log (tomato.engine.events), whoever asked
for them; the API adds what only it does (attach, exec instances, restart).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tomato.engine import events

matches = events.matches  # (their home is the engine's: `tomato events` filters too)


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, kind: str, action: str, actor: str,
               attributes: dict[str, str] | None = None) -> None:
        events.emit(self.path.parent, kind, action, actor, attributes)

    def follow(self, since: float | None, until: float | None,
               stop: Callable[[], bool]) -> Iterator[dict[str, Any] | None]:
        return events.follow(self.path.parent, since, until, stop)
