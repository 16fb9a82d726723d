"""A container's changes, read from its overlay upper directory.

overlayfs records a deletion as a 0:0 character device and an opaque
directory (one that hides everything below it) as the xattr
trusted.overlay.opaque=y.  ``changes`` lists them the way `docker diff`
prints them (A added, C changed, D deleted); ``write_layer`` turns the upper
directory into an OCI layer tar, whiteouts converted back to ``.wh.`` files.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from tomato._sys.fdtree import Node, tar_header, walk
from tomato._sys.paths import lexists_beneath

OPAQUE_XATTR = "trusted.overlay.opaque"
USER_OPAQUE_XATTR = "user.overlay.opaque"  # overlay's userxattr (a rootless engine)


@dataclass(frozen=True)
class Change:
    kind: str  # "A", "C" or "D"
    path: str  # absolute, inside the container


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(node: Node) -> bool:
    for name in (OPAQUE_XATTR, USER_OPAQUE_XATTR):  # root's, or a rootless engine's
        try:  # through the pinned inode: getxattr has no fd form for an O_PATH fd
            if os.getxattr(f"/proc/self/fd/{node.fd}", name) == b"y":
                return True
        except OSError:
            continue
    return False


@contextmanager
def _upper_walk(upper: str, lowers: list[str]) -> Iterator[tuple[Iterator[tuple[str, Node]],
                                                                  list[int]]]:
    """The upper directory walked through fds, and the lower layers' fds.

    A running container (commit --pause=false, diff) renames and swaps entries in its
    upper directory while we read it: a directory listed a moment ago may be a symlink
    to the host's / now.  ``fdtree.walk`` never follows one, so the walk and every
    file read stays inside the upper directory."""
    with ExitStack() as stack:
        flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
        top = stack.enter_context(Node(os.open(upper, flags)))
        lower_fds = []
        for lower in lowers:
            fd = os.open(lower, flags)
            stack.callback(os.close, fd)
            lower_fds.append(fd)
        yield walk(top), lower_fds


def _in_lower(lower_fds: list[int], rel: str) -> bool:
    return any(lexists_beneath(fd, rel) for fd in lower_fds)


def _placeholder(rel: str, node: Node, lower_fds: list[int],
                 hidden: frozenset[str]) -> bool:
    """An empty file (or directory) the runtime made only to mount over (/etc/hosts,
    /proc in an image without one ...): not a change."""
    if ("/" + rel) not in hidden:
        return False
    st = node.st
    if stat.S_ISREG(st.st_mode):
        empty = st.st_size == 0
    elif stat.S_ISDIR(st.st_mode):
        fd = node.open_dir()
        try:
            empty = not os.listdir(fd)
        finally:
            os.close(fd)
    else:
        return False
    return empty and not _in_lower(lower_fds, rel)


def _copied_up_only(rel: str, node: Node, lower_fds: list[int],
                    hidden: frozenset[str]) -> bool:
    """A directory overlayfs copied up only because a placeholder was made in it (/etc
    for /etc/hosts): the same directory as below, so a layer need not carry it unless
    something real changes beneath it."""
    if not any(h.startswith("/" + rel + "/") for h in hidden) or _is_opaque(node):
        return False
    for fd in lower_fds:
        try:
            low = os.stat(rel, dir_fd=fd, follow_symlinks=False)
        except OSError:
            continue
        st = node.st
        return stat.S_ISDIR(low.st_mode) and stat.S_IMODE(low.st_mode) == \
            stat.S_IMODE(st.st_mode) and (low.st_uid, low.st_gid) == (st.st_uid, st.st_gid)
    return False


def changes(upper: str, lowers: list[str], hidden: frozenset[str] = frozenset()) -> list[Change]:
    """Everything the container added, changed or deleted, sorted by path.

    ``hidden`` names mount points the engine itself created (docker keeps those
    in a separate init layer, so they never show as changes)."""
    out: list[Change] = []
    with _upper_walk(upper, lowers) as (entries, lower_fds):
        for rel, node in entries:
            if _placeholder(rel, node, lower_fds, hidden):
                continue
            if _is_whiteout(node.st):
                out.append(Change("D", "/" + rel))
            elif _in_lower(lower_fds, rel):
                out.append(Change("C", "/" + rel))
            else:
                out.append(Change("A", "/" + rel))
    out.sort(key=lambda c: c.path)
    return out


def changes_size(upper: str, lowers: list[str], hidden: frozenset[str] = frozenset()) -> int:
    """Bytes of the regular files the container added or changed, each inode once
    (Docker's ``SizeRw``: archive.ChangesSize); placeholders and whiteouts weigh 0."""
    total = 0
    seen: set[tuple[int, int]] = set()
    with _upper_walk(upper, lowers) as (entries, lower_fds):
        for rel, node in entries:
            st = node.st
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen or \
                    _placeholder(rel, node, lower_fds, hidden):
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


NOBODY = 65534  #: the owner the kernel shows for an id outside a user namespace's map


def unshift(info: tarfile.TarInfo, shift: tuple[int, int, int, int] | None
            ) -> tarfile.TarInfo:
    """A remapped engine's entry with the owner the container sees (UnpackOptions.shift
    undone), so its layers and exports hold the image's own ids."""
    if shift is not None:
        uid_start, uid_count, gid_start, gid_count = shift
        info.uid = info.uid - uid_start if 0 <= info.uid - uid_start < uid_count else NOBODY
        info.gid = info.gid - gid_start if 0 <= info.gid - gid_start < gid_count else NOBODY
    return info


def write_layer(upper: str, dest: BinaryIO, lowers: list[str] | None = None,
                hidden: frozenset[str] = frozenset(),
                shift: tuple[int, int, int, int] | None = None) -> int:
    """The upper directory as an uncompressed OCI layer tar written to ``dest``
    (placeholders for ``hidden`` mount points left out, as in ``changes``, and the
    directories holding them unless something else changed in there); returns how
    many entries it holds (0: the container changed nothing)."""
    count = 0
    with tarfile.open(fileobj=dest, mode="w|", format=tarfile.PAX_FORMAT) as tf, \
            _upper_walk(upper, lowers or []) as (entries, lower_fds):
        hardlinks: dict[tuple[int, int], str] = {}
        waiting: list[tuple[str, tarfile.TarInfo]] = []  # copied-up-only directories

        def add(rel: str, info: tarfile.TarInfo, data: Any = None) -> None:
            nonlocal count
            while waiting and not rel.startswith(waiting[-1][0] + "/"):
                waiting.pop()  # its subtree is over and changed nothing
            for _, parent in waiting:
                tf.addfile(parent)
                count += 1
            waiting.clear()
            tf.addfile(info, data)
            count += 1

        for rel, node in entries:
            st = node.st
            if _placeholder(rel, node, lower_fds, hidden):
                continue
            if _is_whiteout(st):
                parent, name = os.path.split(rel)
                whiteout = tarfile.TarInfo(f"{parent}/.wh.{name}" if parent else f".wh.{name}")
                whiteout.mtime = int(st.st_mtime)
                add(rel, whiteout)
                continue
            info = tar_header(rel, node)
            if info is None:
                continue  # a socket
            unshift(info, shift)
            if info.isreg() and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in hardlinks:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, hardlinks[key], 0
                    add(rel, info)
                    continue
                hardlinks[key] = rel
            if info.isreg():
                with os.fdopen(node.open_file(), "rb") as f:
                    add(rel, info, _Sized(f, info.size))
            elif info.isdir() and _copied_up_only(rel, node, lower_fds, hidden):
                while waiting and not rel.startswith(waiting[-1][0] + "/"):
                    waiting.pop()
                waiting.append((rel, info))
            else:
                add(rel, info)
            if info.isdir() and _is_opaque(node):
                marker = tarfile.TarInfo(f"{rel}/.wh..wh..opq")
                marker.mtime = int(st.st_mtime)
                add(f"{rel}/.wh..wh..opq", marker)
    return count


class _Sized:
    """A file's data as exactly the size its header announced (a running container
    may grow or shrink it meanwhile): cut, or padded with zeros."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f = f
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)  # a buffered file returns all n unless at its end
        data += b"\0" * (n - len(data))
        self.left -= n
        return data
