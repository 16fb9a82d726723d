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
from typing import BinaryIO

from tomato.records import record as dataclass

OPAQUE_XATTR = "trusted.overlay.opaque"


@dataclass(frozen=True)
class Change:
    kind: str  # "A", "C" or "D"
    path: str  # absolute, inside the container


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _in_lower(lowers: list[str], rel: str) -> bool:
    return any(os.path.lexists(os.path.join(lower, rel)) for lower in lowers)


def _placeholder(rel: str, st: os.stat_result, lowers: list[str], hidden: frozenset[str]) -> bool:
    """An empty file the runtime made only to mount over (/etc/hosts ...): not a change."""
    return ("/" + rel) in hidden and stat.S_ISREG(st.st_mode) and st.st_size == 0 \
        and not _in_lower(lowers, rel)


def changes(upper: str, lowers: list[str], hidden: frozenset[str] = frozenset()) -> list[Change]:
    """Everything the container added, changed or deleted, sorted by path.

    ``hidden`` names mount points the engine itself created (docker keeps those
    in a separate init layer, so they never show as changes)."""
    out: list[Change] = []
    for dirpath, dirnames, filenames in os.walk(upper):
        rel_dir = os.path.relpath(dirpath, upper)
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(full)
            if _placeholder(rel, st, lowers, hidden):
                continue
            if _is_whiteout(st):
                out.append(Change("D", "/" + rel))
            elif _in_lower(lowers, rel):
                out.append(Change("C", "/" + rel))
            else:
                out.append(Change("A", "/" + rel))
    out.sort(key=lambda c: c.path)
    return out


def write_layer(upper: str, dest: BinaryIO, lowers: list[str] | None = None,
                hidden: frozenset[str] = frozenset()) -> None:
    """The upper directory as an uncompressed OCI layer tar written to ``dest``
    (placeholders for ``hidden`` mount points left out, as in ``changes``)."""
    with tarfile.open(fileobj=dest, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        hardlinks: dict[tuple[int, int], str] = {}
        for dirpath, dirnames, filenames in os.walk(upper):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, upper)
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.normpath(os.path.join(rel_dir, name))
                st = os.lstat(full)
                if _placeholder(rel, st, lowers or [], hidden):
                    continue
                if _is_whiteout(st):
                    parent = os.path.dirname(rel)
                    info = tarfile.TarInfo(os.path.join(parent, ".wh." + name).lstrip("./")
                                           if parent not in ("", ".") else ".wh." + name)
                    info.mtime = int(st.st_mtime)
                    tf.addfile(info)
                    continue
                info = tf.gettarinfo(full, arcname=rel)
                key = (st.st_dev, st.st_ino)
                if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                    if key in hardlinks:
                        info.type = tarfile.LNKTYPE
                        info.linkname = hardlinks[key]
                        info.size = 0
                        tf.addfile(info)
                        continue
                    hardlinks[key] = rel
                if stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as f:
                        tf.addfile(info, f)
                else:
                    tf.addfile(info)
                if stat.S_ISDIR(st.st_mode) and _is_opaque(full):
                    marker = tarfile.TarInfo(os.path.join(rel, ".wh..wh..opq"))
                    marker.mtime = int(st.st_mtime)
                    tf.addfile(marker)
