"""Files the engine writes for itself: private from their first byte, replaced whole;
and the space it holds back so that a full disk never stops a removal.

A container's config and state hold its environment (`-e DB_PASSWORD=...`), so they
are never readable by other users: created 0600 (not chmod'ed after, when someone may
already hold them open), and written to a temporary name first, then renamed over the
old one, so a reader -- or a crash, or a full disk -- never sees half a file.
No fsync: these files are rewritten from the store after a crash, and fsync costs
milliseconds on the start path.
"""

from __future__ import annotations

import errno
import os

PRIVATE = 0o600


def write_private(path: str | os.PathLike[str], data: bytes | str, mode: int = PRIVATE) -> None:
    """Replace ``path`` with ``data``, as a file of ``mode`` (0600) from the start."""
    if isinstance(data, str):
        data = data.encode()
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode)
    try:
        try:
            os.fchmod(fd, mode)  # a leftover .tmp of a dead process keeps its old mode
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def make_private(path: str | os.PathLike[str], mode: int = PRIVATE) -> None:
    """Create ``path`` empty with ``mode`` if it does not exist; take away other users'
    access if it does (a file an older version made 0644), e.g. before sqlite opens it
    (sqlite gives its -wal and -shm files the database file's mode).

    An existing file is never opened: closing any descriptor of a file drops every
    POSIX lock the process holds on it, sqlite's too -- a connection's locks on
    tomato.db went silently, and concurrent commands corrupted the database."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode)
    except FileExistsError:
        st = os.lstat(path)
        if (st.st_mode & 0o170000) == 0o120000:  # a symlink: refused, as O_NOFOLLOW would
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.fspath(path)) from None
        if st.st_mode & 0o077 & ~mode:
            os.chmod(path, mode)
        return
    os.close(fd)


# -- space held back for deletes ---------------------------------------------------------
#: ``ROOT/reserved-space``: a file of RESERVE_SIZE bytes the engine keeps while the disk
#: has room, and gives back when a full disk would otherwise stop it from *recording a
#: removal* (sqlite must grow its -shm and -wal to delete a row).  Without it, on a disk
#: filled by something else, `rm -f` frees a small container's files and still cannot
#: write that the container is gone.
RESERVE_NAME = "reserved-space"
RESERVE_SIZE = 1 << 20


def keep_reserve(root: str | os.PathLike[str]) -> None:
    """Make the reserve if it is missing and the disk has room to spare for it."""
    path = os.path.join(root, RESERVE_NAME)
    if os.path.exists(path):
        return
    try:
        st = os.statvfs(root)
    except OSError:
        return
    if st.f_bavail * st.f_frsize < 8 * RESERVE_SIZE:
        return  # not while the disk is (nearly) full: that is what it is for
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE)
        try:
            os.posix_fallocate(fd, 0, RESERVE_SIZE)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def release_reserve(root: str | os.PathLike[str]) -> bool:
    """Give the reserve back to the filesystem; whether there was one."""
    try:
        os.unlink(os.path.join(root, RESERVE_NAME))
    except FileNotFoundError:
        return False
    return True
