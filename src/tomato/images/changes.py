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
from typing import BinaryIO

from tomato._sys.fdtree import Node, tar_header, walk
from tomato._sys.paths import lexists_beneath
from tomato.records import record as dataclass

OPAQUE_XATTR = "trusted.overlay.opaque"


@dataclass(frozen=True)
class Change:
    kind: str  # "A", "C" or "D"
    path: str  # absolute, inside the container


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(node: Node) -> bool:
    try:  # through the pinned inode: getxattr has no fd form for an O_PATH fd
        return os.getxattr(f"/proc/self/fd/{node.fd}", OPAQUE_XATTR) == b"y"
    except OSError:
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


def _placeholder(rel: str, st: os.stat_result, lower_fds: list[int],
                 hidden: frozenset[str]) -> bool:
    """An empty file the runtime made only to mount over (/etc/hosts ...): not a change."""
    return ("/" + rel) in hidden and stat.S_ISREG(st.st_mode) and st.st_size == 0 \
        and not _in_lower(lower_fds, rel)


def changes(upper: str, lowers: list[str], hidden: frozenset[str] = frozenset()) -> list[Change]:
    """Everything the container added, changed or deleted, sorted by path.

    ``hidden`` names mount points the engine itself created (docker keeps those
    in a separate init layer, so they never show as changes)."""
    out: list[Change] = []
    with _upper_walk(upper, lowers) as (entries, lower_fds):
        for rel, node in entries:
            if _placeholder(rel, node.st, lower_fds, hidden):
                continue
            if _is_whiteout(node.st):
                out.append(Change("D", "/" + rel))
            elif _in_lower(lower_fds, rel):
                out.append(Change("C", "/" + rel))
            else:
                out.append(Change("A", "/" + rel))
    out.sort(key=lambda c: c.path)
    return out


def write_layer(upper: str, dest: BinaryIO, lowers: list[str] | None = None,
                hidden: frozenset[str] = frozenset()) -> None:
    """The upper directory as an uncompressed OCI layer tar written to ``dest``
    (placeholders for ``hidden`` mount points left out, as in ``changes``)."""
    with tarfile.open(fileobj=dest, mode="w|", format=tarfile.PAX_FORMAT) as tf, \
            _upper_walk(upper, lowers or []) as (entries, lower_fds):
        hardlinks: dict[tuple[int, int], str] = {}
        for rel, node in entries:
            st = node.st
            if _placeholder(rel, st, lower_fds, hidden):
                continue
            if _is_whiteout(st):
                parent, name = os.path.split(rel)
                whiteout = tarfile.TarInfo(f"{parent}/.wh.{name}" if parent else f".wh.{name}")
                whiteout.mtime = int(st.st_mtime)
                tf.addfile(whiteout)
                continue
            info = tar_header(rel, node)
            if info is None:
                continue  # a socket
            if info.isreg() and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in hardlinks:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, hardlinks[key], 0
                    tf.addfile(info)
                    continue
                hardlinks[key] = rel
            if info.isreg():
                with os.fdopen(node.open_file(), "rb") as f:
                    tf.addfile(info, _Sized(f, info.size))
            else:
                tf.addfile(info)
            if info.isdir() and _is_opaque(node):
                marker = tarfile.TarInfo(f"{rel}/.wh..wh..opq")
                marker.mtime = int(st.st_mtime)
                tf.addfile(marker)


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
