"""The files COPY and ADD take: paths resolved inside a tree that may be hostile.

A ``Tree`` is a directory pinned as an fd: the build context, or the mounted root
filesystem of an earlier stage or an image (``COPY --from``).  Nothing in it is
opened by a path string: a source is resolved by the kernel inside the root
(openat2 RESOLVE_IN_ROOT, as Docker's FollowSymlinkInScope), so ``../x`` and an
absolute symlink pointing out stay inside (and ``../x`` written in the Dockerfile
is refused outright, as Docker does); a symlink loop is an error.  Inner
symlinks are copied as symlinks, never followed.  Directories are walked through
fds (``_sys.fdtree``); a FIFO or device node is never opened.

Wildcards are Go's ``filepath.Match`` (``*``, ``?``, ``[a-z]``, ``\\`` escapes), one
path segment at a time.  Paths the context's .dockerignore excludes do not exist
for COPY; ``digest`` hashes what a source would copy (names, types, modes, sizes,
link targets, contents -- not times, not owners: Docker's cache ignores them).
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import re
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from tomato._sys import fdtree
from tomato._sys.fdtree import DIR_FLAGS, Node, pin
from tomato._sys.paths import open_in_root
from tomato.build.ignore import Matcher, is_forbidden
from tomato.errors import InvalidArgument, NotFound

_WILD = re.compile(r"[*?\[]")
Item = tuple[tarfile.TarInfo, "IO[bytes] | None"]


@dataclass
class Source:
    name: str  # as written or matched, for messages and names in the destination
    node: Node  # the resolved inode (symlinks followed inside the tree)
    rel: str  # its real path inside the tree ("" for the root)

    @property
    def is_dir(self) -> bool:
        return self.node.is_dir()


def has_wildcards(path: str) -> bool:
    return bool(_WILD.search(path.replace("\\\\", "").replace("\\*", "")
                             .replace("\\?", "").replace("\\[", "")))


def _segment_regex(segment: str) -> re.Pattern[str]:
    """One path segment of a Go filepath.Match pattern as a regex."""
    out = []
    i = 0
    while i < len(segment):
        ch = segment[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < len(segment):
            i += 1
            out.append(re.escape(segment[i]))
        elif ch == "[":
            end = segment.find("]", i + 2)
            if end < 0:
                raise InvalidArgument(f"syntax error in pattern {segment!r}")
            body = segment[i + 1:end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\")
                       .replace("^", "\\^") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S)


class Tree:
    """A directory tree pinned as an fd (not owned: the caller closes ``root_fd``)."""

    def __init__(self, root_fd: int, ignore: Matcher | None = None, what: str = "the build "
                 "context") -> None:
        self.root_fd = root_fd
        self.ignore = ignore if ignore else None
        self.what = what
        self._root_path = os.readlink(f"/proc/self/fd/{root_fd}").rstrip("/")
        #: content hashes known from an earlier build, by "dev:ino": [size, mtime_ns,
        #: ctime_ns, sha256] -- reused only while all three stamps are the same (a write
        #: or a chmod moves ctime, which no one can set back); ``seen``: this build's
        self.known: dict[str, list[Any]] = {}
        self.seen: dict[str, list[Any]] = {}

    # -- resolving ------------------------------------------------------------------
    def _rel_of(self, fd: int) -> str:
        """The real path of an fd opened inside the tree, relative to its root."""
        real = os.readlink(f"/proc/self/fd/{fd}")
        if real == self._root_path:
            return ""
        if not real.startswith(self._root_path + "/"):
            raise InvalidArgument(f"forbidden path outside {self.what}")
        return real[len(self._root_path) + 1:]

    def _excluded(self, rel: str) -> bool:
        return self.ignore is not None and rel != "" and self.ignore.excluded(rel)

    def resolve(self, path: str) -> list[Source]:
        """The sources ``path`` names (a wildcard may name several, sorted); NotFound
        when it names nothing, InvalidArgument for a path outside the tree."""
        if is_forbidden(path.lstrip("/") if path.startswith("/") else path):
            raise InvalidArgument(f"forbidden path outside {self.what}: {path}")
        clean = posixpath.normpath("/" + path).lstrip("/")
        names = self._glob(clean) if has_wildcards(clean) else [clean]
        out: list[Source] = []
        try:
            for name in names:
                src = self._open(name, path)
                if src is not None:
                    out.append(src)
        except BaseException:
            for s in out:
                s.node.close()
            raise
        if not out:
            if has_wildcards(clean):
                raise NotFound(f"no source files were specified: {path} matches nothing in "
                               f"{self.what}")
            raise NotFound(f"{path}: not found in {self.what}")
        return out

    def _open(self, name: str, written: str) -> Source | None:
        try:
            fd = open_in_root(self.root_fd, name, os.O_PATH | os.O_CLOEXEC)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            if err.errno == errno.ELOOP:
                raise InvalidArgument(f"{written}: too many levels of symbolic links "
                                      f"(a symlink loop in {self.what})") from None
            raise InvalidArgument(f"{written}: {err.strerror}") from None
        node = Node(fd)
        try:
            rel = self._rel_of(fd)
        except BaseException:
            node.close()
            raise
        if self._excluded(rel) or self._excluded(name):
            node.close()
            return None
        return Source(name or ".", node, rel)

    def _glob(self, pattern: str) -> list[str]:
        """Paths of the tree matching ``pattern`` segment by segment (never through a
        symlinked directory, as Docker's walk of the context)."""
        parts = [p for p in pattern.split("/") if p]
        found: list[str] = []

        def visit(dir_fd: int, prefix: str, i: int) -> None:
            part = parts[i]
            if not has_wildcards(part):
                names = [part.replace("\\", "")]
            else:
                rx = _segment_regex(part)
                with os.scandir(dir_fd) as it:
                    names = sorted(e.name for e in it if rx.match(e.name))
            for name in names:
                path = f"{prefix}/{name}" if prefix else name
                if i == len(parts) - 1:
                    node = pin(dir_fd, name)
                    if node is not None:
                        node.close()
                        found.append(path)
                    continue
                try:
                    sub = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
                except OSError:
                    continue
                try:
                    visit(sub, path, i + 1)
                finally:
                    os.close(sub)

        top = os.open(".", DIR_FLAGS, dir_fd=self.root_fd)
        try:
            visit(top, "", 0)
        finally:
            os.close(top)
        return found

    # -- reading --------------------------------------------------------------------
    def walk(self, source: Source, prefix: str = "") -> Iterator[tuple[str, Node]]:
        """Everything below a directory source as (``prefix/``path below it, node),
        parents first, names sorted; excluded paths left out -- and their subtrees
        unvisited, unless a ``!`` exception may bring something below them back."""
        cut = len(prefix) + 1 if prefix else 0

        def rel(path: str) -> str:  # the path below the context's root, as ignore rules see it
            below = path[cut:]
            return f"{source.rel}/{below}" if source.rel else below

        keep_looking = self.ignore is not None and self.ignore.has_exclusions
        prune = None if keep_looking else (lambda path: self._excluded(rel(path)))
        for path, node in fdtree.walk(source.node, prefix, prune=prune):
            if keep_looking and self._excluded(rel(path)):
                continue
            yield path, node

    def items(self, source: Source, top: str) -> Iterator[Item]:
        """``source`` as archive items named ``top`` and ``top/...`` (hard links kept)."""
        from tomato.engine import rootfs_io

        return rootfs_io.items(source.node, top, self.walk(source, top))

    def read(self, source: Source, limit: int) -> bytes:
        """A regular file source's bytes (at most ``limit``)."""
        if not source.node.is_file():
            raise InvalidArgument(f"{source.name} is not a regular file")
        fd = source.node.open_file()
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read(limit)
        finally:
            os.close(fd)

    def digest(self, source: Source) -> str:
        """A hash of what copying ``source`` writes (Docker's cache ignores mtime and
        owners), hex."""
        h = hashlib.sha256()

        def entry(name: str, node: Node) -> None:
            st = node.st
            kind = stat.S_IFMT(st.st_mode)
            link = node.readlink() if kind == stat.S_IFLNK else ""
            dev = st.st_rdev if kind in (stat.S_IFCHR, stat.S_IFBLK) else 0
            size = st.st_size if kind == stat.S_IFREG else 0
            h.update(f"{name}\0{kind:o}\0{stat.S_IMODE(st.st_mode):o}\0{size}\0{link}\0{dev}\n"
                     .encode("utf-8", "surrogateescape"))
            if kind == stat.S_IFREG:
                h.update(self._content(node).encode())

        entry("", source.node)
        if source.is_dir:
            for path, node in self.walk(source):
                entry(path, node)
        return h.hexdigest()


    def _content(self, node: Node) -> str:
        """A regular file's sha256 (hex), from ``known`` when its stamps are unchanged."""
        st = node.st
        ident = f"{st.st_dev}:{st.st_ino}"
        stamps = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        found = self.known.get(ident)
        if found is not None and found[:3] == stamps:
            self.seen[ident] = found
            return str(found[3])
        fd = node.open_file()
        try:
            h = hashlib.sha256()
            while block := os.read(fd, 1 << 20):
                h.update(block)
        finally:
            os.close(fd)
        after = os.fstat(node.fd)
        if [after.st_size, after.st_mtime_ns, after.st_ctime_ns] == stamps:
            self.seen[ident] = [*stamps, h.hexdigest()]  # (not while it was being written)
        return h.hexdigest()


__all__ = ["Tree", "Source", "has_wildcards", "Item"]
