"""Trees copied out of and into a root through file descriptors only (cp, export).

A running container can rename and swap anything in its root while we copy, so
no path inside it is ever opened as a string (CVE-2018-15664):

- out: the source is resolved by the kernel inside the pinned root
  (``_sys.paths.open_in_root``, openat2 RESOLVE_IN_ROOT), then walked with
  ``_sys.fdtree`` (every entry pinned with O_PATH|O_NOFOLLOW, checked with
  fstat, only then opened), giving archive *items*: a tar header and, for a
  regular file, a reader of its data;
- in: items (from that walk, or from a tar stream) are extracted into a
  directory fd.  Parent directories are walked from it with O_NOFOLLOW (a
  symlink there, planted by the container or by the archive, is refused, never
  followed); every non-directory is made under a temporary name and renamed
  into place, so a failure leaves no half-written file; symlinks are written
  as they are, whatever they point at; hard links only to earlier entries of
  the same archive; names are cleaned as Docker does (``/etc/x`` is ``etc/x``,
  a ``..`` that climbs out of the destination is refused).

The host side of ``cp`` goes through the same extractor (into the destination
directory's fd), so nothing in an archive from a container lands outside it.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

from tomato._sys.fdtree import DIR_FLAGS, Node, pin, rmtree_at, tar_header, walk
from tomato.errors import InvalidArgument, TomatoError

#: One archive entry: its header and, for a regular file, a reader of its data.
Item = tuple[tarfile.TarInfo, "IO[bytes] | None"]

_TMP_PREFIX = ".tomato-cp-"
_SETID = stat.S_ISUID | stat.S_ISGID


# -- out: a pinned tree as archive items -------------------------------------------------

class _Exact:
    """A file's data as exactly ``size`` bytes: a file that grows while it is copied is
    cut at the size its header announced, one that shrinks is padded with zeros."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.left = size

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        chunks, got = [], 0
        while got < n:  # tarfile wants every read full
            chunk = os.read(self.fd, n - got)
            if not chunk:
                chunks.append(b"\0" * (n - got))
                break
            chunks.append(chunk)
            got += len(chunk)
        self.left -= n
        return b"".join(chunks)


def items(top: Node, top_name: str,
          below: Iterator[tuple[str, Node]] | None = None) -> Iterator[Item]:
    """``top`` named ``top_name`` and, for a directory, everything below it, named
    ``top_name/...`` as Docker's archives are: for ``SRC/.`` the directory is "." and
    its contents "./a" (the docker CLI renames them by replacing that "."); with ""
    (export) the contents are bare names.  Files with several links become hard links
    to the first name seen.  ``below``: the entries under a directory ``top``, named
    ``top_name/...``, when not all of them (a build context's .dockerignore)."""
    seen: dict[tuple[int, int], str] = {}

    def one(name: str, node: Node) -> Iterator[Item]:
        info = tar_header(name, node)
        if info is None:
            return
        if info.isreg() and node.st.st_nlink > 1:
            key = (node.st.st_dev, node.st.st_ino)
            if key in seen:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, seen[key], 0
                yield info, None
                return
            seen[key] = name
        if not info.isreg():
            yield info, None
            return
        fd = node.open_file()
        try:
            yield info, _Exact(fd, info.size)  # type: ignore[misc]
        finally:
            os.close(fd)

    yield from one(top_name, top)
    if top.is_dir():
        for rel, node in walk(top, top_name) if below is None else below:
            yield from one(rel, node)


def tar_items(stream: BinaryIO) -> Iterator[Item]:
    """The entries of a tar stream (plain, gzip, bzip2 or xz), read once, in order."""
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            for member in tf:
                yield member, tf.extractfile(member) if member.isreg() else None
    except (tarfile.TarError, EOFError, ValueError) as err:
        raise InvalidArgument(f"invalid tar archive: {err}") from err


def write_tar(out: BinaryIO, entries: Iterable[Item]) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, data)


# -- in: archive items extracted into a directory fd --------------------------------------

@dataclass(frozen=True)
class ExtractOptions:
    #: every entry owned by this (uid, gid): Docker's cp into a container (its root)
    owner: tuple[int, int] | None = None
    #: entries owned by the archive's uid/gid (cp -a); neither: by whoever extracts
    keep_owner: bool = False
    #: --userns-remap (with keep_owner): the archive's ids shifted to the host's
    #: (uid start, uid count, gid start, gid count); an id outside the range is nobody's
    shift: tuple[int, int, int, int] | None = None
    #: an archive's directory never replaces a non-directory, nor the reverse
    #: (the docker CLI asks for this: noOverwriteDirNonDir)
    no_overwrite_dir_nondir: bool = True
    #: device nodes may be made (into a container); refused onto the host
    devices: bool = True
    #: setuid/setgid bits kept; dropped onto the host unless ownership is kept too
    keep_setid: bool = True


def clean_name(name: str) -> str:
    """A member name as Docker reads it: "" for the destination itself; an absolute
    name is relative to the destination; a ``..`` climbing out is refused."""
    if "\0" in name:
        raise InvalidArgument(f"archive entry {name!r} has a nul byte")
    norm = posixpath.normpath(name or ".")
    if norm.startswith("/"):
        norm = posixpath.normpath(norm.lstrip("/") or ".")
    if norm == ".." or norm.startswith("../"):
        raise InvalidArgument(f"archive entry {name!r} is outside of the destination")
    return "" if norm == "." else norm


class Extractor:
    """Extracts archive items into the directory ``dest_fd`` (borrowed, not closed)."""

    CACHE = 64  # open parent directory fds kept between entries

    def __init__(self, dest_fd: int, options: ExtractOptions) -> None:
        self.dest_fd = dest_fd
        self.opts = options
        self._dirs: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self._made: set[str] = set()  # non-directories extracted: hard link targets
        self._dir_times: list[tuple[str, int]] = []
        self._serial = 0

    def extract(self, entries: Iterable[Item]) -> int:
        """Extract every item; returns how many.  Directory times are set last."""
        count = 0
        try:
            for info, data in entries:
                try:
                    self._entry(info, data)
                except OSError as err:
                    raise TomatoError(
                        f"cannot extract {info.name!r}: {err.strerror or err}") from err
                except (tarfile.TarError, EOFError) as err:  # its data cut short
                    raise InvalidArgument(f"invalid tar archive: {err}") from err
                count += 1
            self._finish_dirs()
        finally:
            self._drop_dirs()
        return count

    # parents ----------------------------------------------------------------------------

    def _drop_dirs(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    def _forget(self, top: tuple[str, ...]) -> None:
        """Close the cached fds of ``top`` and the directories below it (going away)."""
        for key in [k for k in self._dirs if k[:len(top)] == top]:
            os.close(self._dirs.pop(key))

    def _dir(self, parts: tuple[str, ...], name: str, create: bool) -> int:
        """The fd of directory ``parts`` below the destination (borrowed), walked with
        O_NOFOLLOW from the deepest cached one; missing ones made if ``create``."""
        if not parts:
            return self.dest_fd
        cached = self._dirs.get(parts)
        if cached is not None:
            self._dirs.move_to_end(parts)
            return cached
        depth = len(parts) - 1
        while depth > 0 and parts[:depth] not in self._dirs:
            depth -= 1
        fd = self._dirs[parts[:depth]] if depth else self.dest_fd
        owned = -1  # an intermediate fd of ours, closed when the next one is open
        try:
            for i in range(depth, len(parts)):
                child = self._open_dir(fd, parts[i], "/".join(parts[:i + 1]), name, create)
                if owned >= 0:
                    os.close(owned)
                fd = owned = child
        except BaseException:
            if owned >= 0:
                os.close(owned)
            raise
        self._dirs[parts] = fd
        if len(self._dirs) > self.CACHE:
            os.close(self._dirs.popitem(last=False)[1])
        return fd

    def _open_dir(self, parent: int, comp: str, path: str, name: str, create: bool) -> int:
        try:
            return os.open(comp, DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise InvalidArgument(f"archive entry {name!r}: {path!r} does not exist") \
                    from None
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise InvalidArgument(f"cannot extract {name!r}: {path!r} is not a directory "
                                      "(a symlink is never followed)") from err
            raise
        try:  # a missing parent is made as Docker does: 0755, owned as the entries are
            os.mkdir(comp, 0o755, dir_fd=parent)
        except FileExistsError:
            pass
        fd = os.open(comp, DIR_FLAGS, dir_fd=parent)
        if self.opts.owner is not None:
            os.fchown(fd, *self.opts.owner)
        return fd

    # entries ----------------------------------------------------------------------------

    def _entry(self, info: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        name = clean_name(info.name)
        if not name:
            if info.isdir():
                return  # the destination itself: Docker leaves its metadata alone
            raise InvalidArgument(f"archive entry {info.name!r} would replace the destination")
        parts = tuple(name.split("/"))
        parent = self._dir(parts[:-1], info.name, create=True)
        base = parts[-1]
        if info.isdir():
            self._mkdir(parent, base, name, info)
            return
        if info.islnk():
            target = clean_name(info.linkname)
            if target not in self._made:
                raise InvalidArgument(f"hard link {info.name!r} -> {info.linkname!r}: the "
                                      "target is not an earlier entry of the archive")
            tparts = tuple(target.split("/"))
            tparent = self._dir(tparts[:-1], info.linkname, create=False)
            parent = self._dir(parts[:-1], info.name, create=True)  # (still cached)
            tmp = self._tmp(lambda t: os.link(tparts[-1], t, src_dir_fd=tparent,
                                              dst_dir_fd=parent, follow_symlinks=False),
                            parent)
        elif info.isreg():
            tmp = self._write_file(parent, info, data)
        elif info.issym():
            tmp = self._tmp(lambda t: os.symlink(info.linkname, t, dir_fd=parent), parent)
        elif info.ischr() or info.isblk() or info.isfifo():
            if not info.isfifo() and not self.opts.devices:
                raise InvalidArgument(f"archive entry {info.name!r} is a device node: "
                                      "not made here")
            kind = stat.S_IFIFO if info.isfifo() else \
                stat.S_IFCHR if info.ischr() else stat.S_IFBLK
            dev = 0 if info.isfifo() else os.makedev(info.devmajor, info.devminor)
            tmp = self._tmp(lambda t: os.mknod(t, kind | 0o600, dev, dir_fd=parent), parent)
        else:
            raise InvalidArgument(f"archive entry {info.name!r} has unsupported type "
                                  f"{info.type!r}")
        try:
            if not info.isreg() and not info.islnk():  # (a hard link's are its target's)
                self._meta_at(parent, tmp, info)
            self._install(parent, tmp, base, name)
        except BaseException:
            _unlink_quietly(parent, tmp)
            raise

    def _tmp(self, make: object, parent: int) -> str:
        """A fresh temporary name in ``parent``, made by ``make(name)``."""
        for _ in range(100):
            self._serial += 1
            tmp = f"{_TMP_PREFIX}{os.getpid()}-{self._serial}-{os.urandom(3).hex()}"
            try:
                make(tmp)  # type: ignore[operator]
                return tmp
            except FileExistsError:
                continue
        raise TomatoError("cannot find a free temporary name")

    def _write_file(self, parent: int, info: tarfile.TarInfo, data: IO[bytes] | None) -> str:
        fds: list[int] = []
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        tmp = self._tmp(lambda t: fds.append(os.open(t, flags, 0o600, dir_fd=parent)), parent)
        fd = fds[0]
        try:
            left = info.size
            while left > 0 and data is not None:
                block = data.read(min(left, 1 << 20))
                if not block:
                    raise InvalidArgument(f"archive entry {info.name!r} is truncated")
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view):]
                left -= len(block)
            self._owner(info, lambda uid, gid: os.fchown(fd, uid, gid))
            os.fchmod(fd, self._mode(info))
            os.utime(fd, ns=(_ns(info), _ns(info)))
        except BaseException:
            os.close(fd)
            _unlink_quietly(parent, tmp)
            raise
        os.close(fd)
        return tmp

    def _mkdir(self, parent: int, base: str, name: str, info: tarfile.TarInfo) -> None:
        node = pin(parent, base)
        if node is not None:  # an existing directory is merged into (its metadata set)
            with node:
                is_dir = node.is_dir()
            if not is_dir:
                if self.opts.no_overwrite_dir_nondir:
                    raise InvalidArgument(f"cannot overwrite non-directory {name!r} "
                                          "with a directory")
                os.unlink(base, dir_fd=parent)
                node = None
        if node is None:
            os.mkdir(base, 0o700, dir_fd=parent)
        fd = os.open(base, DIR_FLAGS, dir_fd=parent)
        try:
            self._owner(info, lambda uid, gid: os.fchown(fd, uid, gid))
            os.fchmod(fd, self._mode(info))
        finally:
            os.close(fd)
        self._dir_times.append((name, _ns(info)))

    def _install(self, parent: int, tmp: str, base: str, name: str) -> None:
        """Rename ``tmp`` over ``base``: atomic for anything but a directory, which only
        goes (with everything in it) if the caller did not ask to keep directories."""
        node = pin(parent, base)
        if node is not None:
            with node:
                is_dir = node.is_dir()
            if is_dir:
                if self.opts.no_overwrite_dir_nondir:
                    raise InvalidArgument(f"cannot overwrite directory {name!r} "
                                          "with a non-directory")
                self._forget(tuple(name.split("/")))
                rmtree_at(parent, base)
        os.rename(tmp, base, src_dir_fd=parent, dst_dir_fd=parent)
        self._made.add(name)

    # metadata ---------------------------------------------------------------------------

    def _mode(self, info: tarfile.TarInfo) -> int:
        mode = info.mode & 0o7777
        return mode if self.opts.keep_setid else mode & ~_SETID

    def _owner(self, info: tarfile.TarInfo, chown: object) -> None:
        if self.opts.owner is not None:
            chown(*self.opts.owner)  # type: ignore[operator]
        elif self.opts.keep_owner and self.opts.shift is not None:
            uid_start, uid_count, gid_start, gid_count = self.opts.shift
            chown(uid_start + info.uid if 0 <= info.uid < uid_count else 65534,  # type: ignore[operator]
                  gid_start + info.gid if 0 <= info.gid < gid_count else 65534)
        elif self.opts.keep_owner:
            chown(info.uid, info.gid)  # type: ignore[operator]

    def _meta_at(self, parent: int, tmp: str, info: tarfile.TarInfo) -> None:
        """Owner, mode and time of a symlink, device or FIFO we just made at ``tmp``:
        never through a name that could be followed (the container may swap it)."""
        self._owner(info, lambda uid, gid: os.chown(tmp, uid, gid, dir_fd=parent,
                                                    follow_symlinks=False))
        if not info.issym():  # a symlink has no mode of its own on Linux
            node = pin(parent, tmp)
            if node is None or node.is_link() or node.is_dir():
                raise TomatoError(f"{info.name!r} changed while it was extracted")
            with node:  # chmod has no no-follow form: through the pinned inode
                os.chmod(f"/proc/self/fd/{node.fd}", self._mode(info))
        os.utime(tmp, ns=(_ns(info), _ns(info)), dir_fd=parent, follow_symlinks=False)

    def _finish_dirs(self) -> None:
        # Directory times last (their entries bumped them), deepest first.
        self._drop_dirs()
        for name, ns in sorted(self._dir_times, key=lambda t: -t[0].count("/")):
            parts = tuple(name.split("/"))
            try:
                parent = self._dir(parts[:-1], name, create=False)
                os.utime(parts[-1], ns=(ns, ns), dir_fd=parent, follow_symlinks=False)
            except (InvalidArgument, FileNotFoundError):
                continue  # replaced or removed by a later entry


def _ns(info: tarfile.TarInfo) -> int:
    return int(info.mtime * 1_000_000_000)


def _unlink_quietly(parent: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=parent)
    except OSError:
        pass
