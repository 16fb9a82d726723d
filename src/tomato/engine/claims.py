"""Claims: "a live process is making this", as an flock on a lock file.

A create claims its container id before it makes anything and holds the claim until
the record exists.  What a killed create left (a directory, a mount, a snapshot, a
lease, a netns) has no record and no live claim: the sweeps (engine/leftovers.py,
networks.sweep) remove exactly that, never what a create still in progress is making.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tomato.errors import Conflict


@contextmanager
def claim(path: Path) -> Iterator[None]:
    """Hold ``path``'s claim for the block (the lock file goes with it)."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    for _ in range(100):  # bounded: a sweep unlinks a stale lock file at most once
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # a sweep removed the file we locked: lock the new one
    else:
        raise Conflict(f"cannot claim {path}")
    try:
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)


def claimed(path: Path) -> bool:
    """Whether a live process holds ``path``'s claim; a stale lock file (kill -9) goes."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    finally:
        os.close(fd)
    return False
