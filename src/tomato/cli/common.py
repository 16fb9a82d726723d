"""What every `tomato` container-side command shares: Docker's exit codes and
one-line errors.

Exit codes as Docker's: 125 when the engine fails (bad flag value, unknown
image, name in use...), 126 when the command cannot be invoked, 127 when
it is not found, and the container's own code otherwise.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from tomato.errors import TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from tomato.engine.config import EngineConfig

    #: a command's handler: (args, cfg) -> exit code (None: 0)
    Handler = Callable[[argparse.Namespace, EngineConfig], int | None]
    Command = Callable[[argparse.Namespace, EngineConfig], int]

ENGINE_ERROR = 125


#: for a user refused another's root (a user's own engine is the default --root)
ROOTLESS_HINT = "not your engine's root: yours is $XDG_DATA_HOME/tomato, the default --root"


def fail(err: Exception | str, code: int = ENGINE_ERROR) -> int:
    msg = describe(err)
    print(f"tomato: {msg}", file=sys.stderr)
    return code


def describe(err: Exception | str, text: str = "") -> str:
    """One line for an error (``text`` if given); for a user who is not root, a refusal
    by the kernel says why (the engine is root's, as dockerd is)."""
    msg = (text or str(err)).splitlines()[0] if (text or str(err)) else type(err).__name__
    if isinstance(err, Exception) and os.geteuid() != 0 and _refused(err) and \
            ROOTLESS_HINT not in msg:
        msg += f" ({ROOTLESS_HINT})"
    return msg


def _refused(err: BaseException) -> bool:
    seen = 0
    cause: BaseException | None = err
    while cause is not None and seen < 10:  # the error, or what it was raised from
        if isinstance(cause, OSError) and cause.errno in (errno.EACCES, errno.EPERM):
            return True
        text = str(cause).lower()
        if "permission denied" in text or "operation not permitted" in text or \
                "unable to open database file" in text:
            return True
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return False


def root_refusal(root: str) -> str:
    """For a user who is not root: why the engine's root is out of reach (one line), or ""
    when it is theirs to use (a root of their own, where what needs root fails later)."""
    if os.geteuid() == 0:
        return ""
    path = os.path.abspath(root)
    if os.path.isdir(path):
        ok = os.access(path, os.R_OK | os.W_OK | os.X_OK)
    else:  # to be made: the nearest directory that exists must let us
        parent = os.path.dirname(path)
        while parent != "/" and not os.path.isdir(parent):
            parent = os.path.dirname(parent)
        ok = os.access(parent, os.W_OK | os.X_OK)
    return "" if ok else f"permission denied: {path} ({ROOTLESS_HINT})"


def guard(func: Handler) -> Command:
    """Engine errors print one line and exit 125 (docker's 'daemon error' code)."""
    def run(args: argparse.Namespace, cfg: EngineConfig) -> int:
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
            print(f"tomato: {describe(err)}", file=sys.stderr)
            failed = 1
    return failed
