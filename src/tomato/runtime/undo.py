"""Undo: what a step made, taken away newest first if a later step fails.

contextlib.ExitStack's ``callback``/``pop_all``, without contextlib: importing it
(functools, collections...) costs the runtime's start ~2 ms.  A failing undo step
does not hide the error being handled: it is noted on it, and the next step runs.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any


class Undo:
    def __init__(self) -> None:
        self._steps: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def callback(self, fn: Callable[..., object], *args: Any) -> None:
        self._steps.append((fn, args))

    def pop_all(self) -> None:
        """Success: keep everything made."""
        self._steps = []

    def __enter__(self) -> Undo:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        while self._steps:
            fn, args = self._steps.pop()
            try:
                fn(*args)
            except Exception as failed:  # noqa: BLE001 — the original error stays raised
                if err is None:
                    raise
                err.add_note(f"while undoing: {failed}")
