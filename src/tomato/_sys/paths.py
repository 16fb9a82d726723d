"""Resolving paths inside a root directory without ever leaving it.

A container image is hostile input: a symlink at /proc inside the rootfs may
point at the host's /.  ``resolve_in_root`` walks a path one component at a
time, treating absolute symlinks as relative to the root and clamping ``..``
at the root, exactly as the kernel would resolve it after pivot_root
(the same idea as openat2's RESOLVE_IN_ROOT and Go's filepath-securejoin).

A resolved path *string* is only good while nobody else can change the tree:
for a running container's root, use ``open_in_root``, which lets the kernel
resolve and open in one step (openat2 RESOLVE_IN_ROOT) and hands back an fd.
"""

from __future__ import annotations

import errno
import os
import stat

_MAX_SYMLINKS = 255

#: openat2 returns EAGAIN when a rename or mount raced a ".." in the lookup (a
#: container renaming in a loop makes that likely); retried this many times.
_EAGAIN_TRIES = 64


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """An fd of ``path`` resolved inside the directory ``root_fd`` as if it were "/".

    The kernel does the whole lookup (openat2 with RESOLVE_IN_ROOT): absolute
    symlinks and ``..`` stay inside the root, whatever the tree's owner renames
    or swaps meanwhile, and magic links (/proc/PID/root ...) are refused.  The
    last component is followed unless ``flags`` has O_NOFOLLOW; pass O_PATH for
    an fd to stat or to use as a ``dir_fd``.  Raises OSError(errno, strerror, path).
    """
    from tomato._sys import libc

    rel = path.lstrip("/") or "."
    resolve = libc.RESOLVE_IN_ROOT | libc.RESOLVE_NO_MAGICLINKS
    for _ in range(_EAGAIN_TRIES):
        try:
            return libc.openat2(root_fd, rel, flags, mode, resolve)
        except BlockingIOError:
            continue
        except OSError as err:
            raise OSError(err.errno, err.strerror, path) from None
    raise OSError(errno.EAGAIN, "the path kept changing while it was resolved", path)


def resolve_in_root(root: str, path: str, strict: bool = False) -> str:
    """Return the host path that ``path`` names inside ``root``.

    Components that do not exist yet are appended lexically; the result is
    always ``root`` or below it.  With ``strict``, a ``..`` that would climb
    above the root (a relative symlink aimed outside it) raises EXDEV
    instead of being clamped.
    """
    root = os.path.abspath(root)
    pending = [c for c in path.split("/") if c]
    pending.reverse()
    current = ""  # resolved path relative to root, always normalised
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if not current and strict:
                raise OSError(errno.EXDEV, "path escapes the root", path)
            current = os.path.dirname(current)
            continue
        candidate = f"{current}/{part}" if current else part
        full = f"{root}/{candidate}"
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            current = candidate
            continue
        except NotADirectoryError:
            current = candidate
            continue
        if not stat.S_ISLNK(st.st_mode):
            current = candidate
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        target = os.readlink(full)
        if target.startswith("/"):
            current = ""
        for c in reversed([c for c in target.split("/") if c]):
            pending.append(c)
    return f"{root}/{current}" if current else root


def read_in_root(root: str, path: str, limit: int = 4 << 20) -> bytes:
    """At most ``limit`` bytes of the regular file ``path`` inside the directory ``root``
    (resolved by the kernel inside it, as ``open_in_root``).

    Anything else is refused before it is opened for reading: from the host, opening
    a FIFO planted in a container blocks, and a device node opens the *host's* device
    (the container's device cgroup does not apply to us)."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        pinned = open_in_root(root_fd, path, os.O_PATH)
    finally:
        os.close(root_fd)
    try:
        if not stat.S_ISREG(os.fstat(pinned).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        fd = os.open(f"/proc/self/fd/{pinned}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    finally:
        os.close(pinned)
    try:
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def lexists_beneath(root_fd: int, path: str) -> bool:
    """Whether ``path`` names something below the directory ``root_fd`` reached without
    following any symlink (the last component may be one): how overlayfs looks a
    name up in a lower layer.  One openat2 (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)."""
    from tomato._sys import libc

    resolve = libc.RESOLVE_BENEATH | libc.RESOLVE_NO_SYMLINKS
    try:
        fd = libc.openat2(root_fd, path.lstrip("/") or ".", os.O_PATH | os.O_NOFOLLOW, 0,
                          resolve)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV):
            return False
        raise
    os.close(fd)
    return True


def is_within(root: str, path: str) -> bool:
    root = os.path.abspath(root).rstrip("/") or "/"
    path = os.path.abspath(path)
    return root == "/" or path == root or path.startswith(root + "/")


def open_root(root: str) -> int:
    """An O_PATH fd of the directory ``root``, for the ``*_at`` helpers below."""
    return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def mkdir_all_at(root_fd: int, path: str, mode: int = 0o777) -> int:
    """"mkdir -p" of ``path`` inside the directory ``root_fd``; an O_PATH fd of it.

    Never by name through the host's root: each existing prefix is opened by the
    kernel inside the root (``open_in_root``), each missing component is made with
    mkdirat relative to its pinned parent and opened O_NOFOLLOW right after.  A
    directory that another container sharing a volume swaps for a symlink to a host
    directory meanwhile is then followed inside the root, or refused: nothing is
    made on the host (a resolved path *string* made by name was, issue 13/14).
    Errors are os.makedirs's, naming the relative path it would have named: a last
    component that is not a directory "exists", an earlier one is "not a directory"
    for the component after it."""
    parts = [p for p in path.split("/") if p and p != "."]
    fd = os.dup(root_fd)
    done: list[str] = []
    try:
        for part in parts:
            done.append(part)
            try:
                nxt = open_in_root(root_fd, "/".join(done), os.O_PATH | os.O_DIRECTORY)
            except NotADirectoryError as err:
                if len(done) == len(parts):
                    raise OSError(errno.EEXIST, os.strerror(errno.EEXIST),
                                  "/".join(done)) from err
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                              "/".join(parts[:len(done) + 1])) from err
            except FileNotFoundError:
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile (or a dangling link): the open below decides
                except OSError as err:
                    raise OSError(err.errno, err.strerror, "/".join(done)) from None
                try:
                    nxt = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY |
                                  os.O_CLOEXEC, dir_fd=fd)
                except OSError as err:
                    raise OSError(err.errno, err.strerror, "/".join(done)) from None
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def mkdir_all_in_root(root: str, path: str, mode: int = 0o755) -> str:
    """Create ``path`` (and parents) inside ``root`` (``mkdir_all_at``); its host path.

    Errors name ``path`` as the container sees it, not the host path it
    resolved to (a cwd of /proc/self/fd/N resolves through the container's
    /proc to something like <root>/proc/1/fd/pipe:[123]).
    """
    try:
        host = resolve_in_root(root, path)
        root_fd = open_root(root)
        try:
            os.close(mkdir_all_at(root_fd, os.path.relpath(host, os.path.abspath(root)), mode))
        finally:
            os.close(root_fd)
    except OSError as err:
        raise OSError(err.errno, f"cannot create it: {err.strerror or err}", path) from err
    return host


def create_file_in_root(root: str, path: str, mode: int = 0o644) -> str:
    """Make sure ``path`` exists inside ``root`` as a file (for file bind mounts): its
    directory made and pinned by ``mkdir_all_at``, the file made relative to that fd
    (O_CREAT|O_EXCL|O_NOFOLLOW: an existing entry, even a symlink, is left as it is)."""
    host = resolve_in_root(root, path)
    rel = os.path.relpath(host, os.path.abspath(root))
    if rel == ".":
        return host  # the root itself: the caller's bind refuses it
    root_fd = open_root(root)
    try:
        parent = mkdir_all_at(root_fd, os.path.dirname(rel))
    finally:
        os.close(root_fd)
    try:
        fd = os.open(os.path.basename(rel), os.O_CREAT | os.O_EXCL | os.O_WRONLY |
                     os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
        os.close(fd)
    except FileExistsError:
        pass
    finally:
        os.close(parent)
    return host
