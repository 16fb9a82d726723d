"""What every `tomato` container-side command shares: Docker's exit codes and
one-line errors.

Exit codes as Docker's: 125 when the engine fails (bad flag value, unknown
image, name in use...), 126 when the command cannot be invoked, 127 when
it is not found, and the container's own code otherwise.
"""

from __future__ import annotations

import argparse
import sys

from tomato.errors import TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

ENGINE_ERROR = 125


def fail(err: Exception | str, code: int = ENGINE_ERROR) -> int:
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    print(f"tomato: {msg}", file=sys.stderr)
    return code


def guard(func: Any) -> Any:
    """Engine errors print one line and exit 125 (docker's 'daemon error' code)."""
    def run(args: argparse.Namespace, cfg: Any) -> int:
        try:
            return int(func(args, cfg) or 0)
        except TomatoError as err:
            if getattr(args, "debug", False):
                raise
            return fail(err)
    return run


def each(refs: list[str], action: Any) -> int:
    failed = 0
    for ref in refs:
        try:
            action(ref)
            print(ref)
        except TomatoError as err:
            print(f"tomato: {str(err).splitlines()[0]}", file=sys.stderr)
            failed = 1
    return failed
