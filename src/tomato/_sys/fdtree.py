"""Walking and reading a directory tree through file descriptors only.

A tree that a container can write to (its root, its overlay upper directory, a
volume) changes while we read it: a directory checked a moment ago may be a
symlink to the host's / now (CVE-2018-15664).  So nothing here opens a path
string.  Every entry is first *pinned*: opened with ``O_PATH | O_NOFOLLOW``
relative to its parent's fd, which never follows a symlink and never opens a
device or a FIFO for I/O.  What it is comes from ``fstat`` of that fd, and
only then is it opened for real from the same inode: a directory with
``openat(fd, ".")``, a regular file through ``/proc/self/fd/N``.  A name
swapped after the listing is seen as what it has become, never followed.

``tar_header`` describes a pinned entry as a tar header (what cp, export and
commit write), from its fstat alone.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Callable, Iterator

PIN_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Node:
    """One inode, pinned by an O_PATH fd, with its stat (close it, or use ``with``)."""

    __slots__ = ("fd", "st")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        try:
            self.st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    def is_file(self) -> bool:
        return stat.S_ISREG(self.st.st_mode)

    def is_link(self) -> bool:
        return stat.S_ISLNK(self.st.st_mode)

    def open_dir(self) -> int:
        """A readable fd of this directory (the same inode, nothing resolved)."""
        if not self.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        return os.open(".", DIR_FLAGS, dir_fd=self.fd)

    def open_file(self) -> int:
        """A read-only fd of this regular file, reopened from the pinned inode."""
        if not self.is_file():
            raise OSError(errno.EINVAL, "not a regular file")
        return os.open(f"/proc/self/fd/{self.fd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)

    def readlink(self) -> str:
        return os.readlink("", dir_fd=self.fd)


def tar_header(name: str, node: Node) -> tarfile.TarInfo | None:
    """A tar header for ``node`` named ``name`` (numeric owners only); None for a
    socket, which tar cannot hold (Docker leaves them out too)."""
    st = node.st
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFREG:
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif kind == stat.S_IFDIR:
        info.type = tarfile.DIRTYPE
    elif kind == stat.S_IFLNK:
        info.type, info.linkname = tarfile.SYMTYPE, node.readlink()
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        info.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif kind == stat.S_IFIFO:
        info.type = tarfile.FIFOTYPE
    else:
        return None
    return info


def pin(dir_fd: int, name: str) -> Node | None:
    """``name`` in the directory ``dir_fd``, not followed; None if it is gone."""
    try:
        return Node(os.open(name, PIN_FLAGS, dir_fd=dir_fd))
    except FileNotFoundError:
        return None


def walk(top: Node, prefix: str = "",
         prune: Callable[[str], bool] | None = None) -> Iterator[tuple[str, Node]]:
    """Every entry below the directory ``top`` as (relative path, node), parents first,
    names sorted.  A node is valid until the next item is asked for (it is closed
    then); an entry removed meanwhile is left out, and so is one whose path ``prune``
    says to leave out (with everything below it, unvisited).

    One fd is held per level being walked, so the depth is bounded by the fd limit:
    a hostile tree too deep for it ends the walk with EMFILE, never a wrong answer."""
    stack: list[tuple[int, str, Iterator[str]]] = []

    def push(node: Node, rel: str) -> None:
        fd = node.open_dir()
        try:
            with os.scandir(fd) as it:
                names = sorted(e.name for e in it)
        except BaseException:
            os.close(fd)
            raise
        stack.append((fd, rel, iter(names)))

    push(top, prefix)
    try:
        while stack:
            fd, rel, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(fd)
                stack.pop()
                continue
            node = pin(fd, name)
            if node is None:
                continue
            path = f"{rel}/{name}" if rel else name
            if prune is not None and prune(path):
                node.close()
                continue
            try:
                yield path, node
                if node.is_dir():
                    push(node, path)
            finally:
                node.close()
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def disk_usage(path: str | os.PathLike[str]) -> int:
    """Bytes a file or tree takes on disk, each inode counted once, nothing followed.

    Metadata only, so no entry is pinned: each name is stat'ed relative to its
    directory's fd without following, and each directory opened with O_NOFOLLOW
    from its parent's (one swapped for a symlink meanwhile is skipped)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    total = st.st_blocks * 512
    if not stat.S_ISDIR(st.st_mode):
        return total
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[int, Iterator[os.DirEntry[str]]]] = []  # one fd a level

    def enter(fd: int) -> None:
        try:
            with os.scandir(fd) as it:
                entries = list(it)
        except BaseException:
            os.close(fd)
            raise
        stack.append((fd, iter(entries)))

    try:
        enter(os.open(path, DIR_FLAGS))
    except OSError:
        return total
    try:
        while stack:
            fd, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                os.close(fd)
                stack.pop()
                continue
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            if (est.st_dev, est.st_ino) not in seen:
                seen.add((est.st_dev, est.st_ino))
                total += est.st_blocks * 512
            if stat.S_ISDIR(est.st_mode):
                try:
                    enter(os.open(entry.name, DIR_FLAGS, dir_fd=fd))
                except OSError:
                    continue  # gone, or no longer a directory
    finally:
        for fd, _ in stack:
            os.close(fd)
    return total


def rmtree_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd`` and, if it is a directory, everything below it;
    no symlink is ever followed (an explicit stack: a hostile tree may be deep)."""
    node = pin(dir_fd, name)
    if node is None:
        return
    stack: list[tuple[int, str, Iterator[str]]] = []  # (dir fd, its name, names left)

    def enter(dir_node: Node, dir_name: str) -> None:
        fd = dir_node.open_dir()
        try:
            with os.scandir(fd) as it:
                names = [e.name for e in it]
        except BaseException:
            os.close(fd)
            raise
        stack.append((fd, dir_name, iter(names)))

    with node:
        if not node.is_dir():
            os.unlink(name, dir_fd=dir_fd)
            return
        enter(node, name)
    try:
        while stack:
            fd, dir_name, names = stack[-1]
            child = next(names, None)
            if child is None:
                os.close(fd)
                stack.pop()
                os.rmdir(dir_name, dir_fd=stack[-1][0] if stack else dir_fd)
                continue
            sub = pin(fd, child)
            if sub is None:
                continue
            with sub:
                if sub.is_dir():
                    enter(sub, child)
                else:
                    os.unlink(child, dir_fd=fd)
    finally:
        for fd, _, _ in stack:
            os.close(fd)
