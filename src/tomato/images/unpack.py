"""Apply a layer tar into an empty snapshot directory, in overlayfs' format.

Layer tars are hostile input.  Every entry is placed by walking its parent
directories with ``openat(O_NOFOLLOW | O_DIRECTORY)`` from the snapshot's root
fd, so a symlink or a ``..`` can never carry a write outside the directory:
absolute names, ``..`` components, parents that are symlinks, hard links whose
target is not inside the layer and device nodes outside ``/dev`` are refused.

Whiteouts are converted as overlayfs expects them in a lowerdir:
``.wh.NAME`` becomes a 0:0 character device ``NAME`` and ``.wh..wh..opq`` marks
its directory with the ``trusted.overlay.opaque=y`` xattr.
"""

from __future__ import annotations

import base64
import errno
import os
import stat
import tarfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tomato._sys import userns
from tomato.errors import InvalidArgument

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class HostileLayer(InvalidArgument):
    """A layer entry tried to escape its directory or create what is not allowed."""


@dataclass(frozen=True)
class UnpackOptions:
    #: where block and character devices may be created: "none", "dev" (only under /dev)
    #: or "all".
    devices: str = "dev"
    #: chown entries to the uid/gid in the tar (root only).
    same_owner: bool = True
    #: a remapped engine's (engine/userns_remap.py): owners shifted on the way in,
    #: (uid start, uid count, gid start, gid count); None: as in the tar
    shift: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class UnpackStats:
    entries: int
    bytes_written: int


def _xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            out[key[len("SCHILY.xattr."):]] = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            name = key[len("LIBARCHIVE.xattr."):]
            out[name] = base64.b64decode(value + "=" * (-len(value) % 4))
    # overlayfs' own xattrs in a layer would let it redirect lookups or fake metadata:
    # only the opaque marker may set them, and that comes from a whiteout entry.
    return {k: v for k, v in out.items()
            if k.split(".", 1)[0] in ("user", "security", "trusted", "system")
            and not k.startswith(("trusted.overlay.", "user.overlay."))}


def opaque_xattr() -> str:
    """trusted.overlay.opaque, or user.overlay.opaque for a rootless engine: root of a
    user namespace cannot set trusted.* xattrs, and its overlay is mounted with
    ``userxattr`` (engine/mounts.py), which reads the user.* ones instead."""
    return "user.overlay.opaque" if userns.rootless() else OPAQUE_XATTR


def split_path(name: str, what: str = "entry") -> list[str]:
    """Components of a tar member name; refuse absolute names and ``..``."""
    if name.startswith("/"):
        raise HostileLayer(f"layer {what} {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise HostileLayer(f"layer {what} {name!r} has a '..' component")
    for p in parts:
        if "\0" in p:
            raise HostileLayer(f"layer {what} {name!r} has a nul byte")
    return parts


class _Tree:
    """Safe, fd-relative access to the snapshot directory; caches open directory fds."""

    CACHE = 128

    def __init__(self, root: str) -> None:
        self.root_fd = os.open(root, _DIR_FLAGS)
        self._cache: OrderedDict[tuple[str, ...], int] = OrderedDict()

    def close(self) -> None:
        self.drop_cache()
        os.close(self.root_fd)

    def drop_cache(self) -> None:
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()

    def dir_fd(self, parts: list[str], name: str, create: bool = True) -> int:
        """An fd of directory ``parts`` (borrowed; do not close), walked without symlinks."""
        key = tuple(parts)
        if not key:
            return self.root_fd
        fd = self._cache.get(key)
        if fd is not None:
            self._cache.move_to_end(key)
            return fd
        parent = self.dir_fd(parts[:-1], name, create)
        comp = parts[-1]
        try:
            fd = os.open(comp, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise HostileLayer(f"layer entry {name!r} refers to a missing path") from None
            # Docker creates missing parents of an entry with mode 0755.
            os.mkdir(comp, 0o755, dir_fd=parent)
            fd = os.open(comp, _DIR_FLAGS, dir_fd=parent)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise HostileLayer(
                    f"layer entry {name!r} goes through {'/'.join(parts)!r}, "
                    "which is not a directory (a symlink?)") from err
            raise
        self._cache[key] = fd
        if len(self._cache) > self.CACHE:
            _, old = self._cache.popitem(last=False)
            os.close(old)
        return fd

    def remove(self, pfd: int, base: str) -> None:
        """Remove whatever is at ``base`` in ``pfd`` (a later entry replaces an earlier one)."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self.drop_cache()
            _rmtree_at(pfd, base)
        else:
            os.unlink(base, dir_fd=pfd)


def _rmtree_at(pfd: int, name: str) -> None:
    fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
    try:
        for entry in os.scandir(fd):
            if entry.is_dir(follow_symlinks=False):
                _rmtree_at(fd, entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=pfd)


class _Applier:
    def __init__(self, root: str, options: UnpackOptions) -> None:
        self.tree = _Tree(root)
        self.opts = options
        self.chown = options.same_owner and os.geteuid() == 0
        #: a rootless engine's unpacking: owners land mapped, device nodes are skipped
        self.in_userns = not userns.in_initial()
        self.dir_times: list[tuple[list[str], int]] = []
        self.entries = 0
        self.bytes = 0
        self.padded: _Forward | None = None

    def owner(self, member: tarfile.TarInfo) -> tuple[int, int]:
        """The host's owner of an entry: the tar's, or shifted by a remapped engine (an
        id outside its range is refused, as dockerd refuses it)."""
        if self.opts.shift is None:
            return member.uid, member.gid
        uid_start, uid_count, gid_start, gid_count = self.opts.shift
        if not (0 <= member.uid < uid_count and 0 <= member.gid < gid_count):
            raise HostileLayer(f"{member.name}: owner {member.uid}:{member.gid} cannot be "
                               f"mapped into the engine's user namespace ({uid_count} ids)")
        return uid_start + member.uid, gid_start + member.gid

    def _meta(self, fd_or_name: Any, member: tarfile.TarInfo, pfd: int | None = None,
              chmod: bool = True) -> None:
        """Owner, then mode (chown clears setuid bits), then xattrs."""
        if pfd is None:
            if self.chown:
                os.fchown(fd_or_name, *self.owner(member))
            if chmod:
                os.fchmod(fd_or_name, member.mode & 0o7777)
            for k, v in _xattrs(member).items():
                try:
                    os.setxattr(fd_or_name, k, v)
                except OSError as err:
                    if err.errno != errno.EOPNOTSUPP:
                        raise
        else:
            if self.chown:
                os.chown(fd_or_name, *self.owner(member), dir_fd=pfd, follow_symlinks=False)
            if chmod:
                os.chmod(fd_or_name, member.mode & 0o7777, dir_fd=pfd)

    def apply(self, tf: tarfile.TarFile) -> None:
        for member in tf:
            self.entries += 1
            try:
                self._entry(tf, member)
            except OSError as err:
                if err.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise  # the disk's fault, not the layer's: callers keep what they have
                # e.g. a name too long: name the entry, keep the cause
                raise InvalidArgument(
                    f"cannot unpack layer entry {member.name!r}: {err.strerror or err}") from err
        self._finish_dirs()

    def _entry(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = split_path(m.name)
        if not parts:
            if m.isdir():  # "./": the snapshot root's own metadata
                self._meta(self.tree.root_fd, m)
                self.dir_times.append(([], int(m.mtime * 1e9)))
                return
            raise HostileLayer(f"layer entry {m.name!r} names the root as a non-directory")
        base = parts[-1]
        pfd = self.tree.dir_fd(parts[:-1], m.name)
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(pfd, base, m)
            return
        mtime = int(m.mtime * 1e9)
        if m.isdir():
            try:
                os.mkdir(base, 0o700, dir_fd=pfd)
            except FileExistsError:
                st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):  # a later dir replaces an earlier non-dir
                    self.tree.remove(pfd, base)
                    os.mkdir(base, 0o700, dir_fd=pfd)
            fd = os.open(base, _DIR_FLAGS, dir_fd=pfd)
            try:
                self._meta(fd, m)
            finally:
                os.close(fd)
            self.dir_times.append((parts, mtime))
            return
        if m.isreg():
            if m.issparse():
                raise HostileLayer(f"layer entry {m.name!r} is a sparse file (unsupported)")
            fd = self._replace(pfd, base, lambda: os.open(base, _FILE_FLAGS, 0o600, dir_fd=pfd))
            try:
                self._copy_data(fd, m)
                self._meta(fd, m)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)
            return
        if m.issym():
            self._replace(pfd, base, lambda: os.symlink(m.linkname, base, dir_fd=pfd))
            if self.chown:
                os.chown(base, *self.owner(m), dir_fd=pfd, follow_symlinks=False)
            os.utime(base, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)
            return
        if m.islnk():
            tparts = split_path(m.linkname, "hard link target")
            if not tparts:
                raise HostileLayer(f"layer hard link {m.name!r} points at the root")
            tpfd = self.tree.dir_fd(tparts[:-1], m.linkname, create=False)
            try:
                st = os.stat(tparts[-1], dir_fd=tpfd, follow_symlinks=False)
            except FileNotFoundError:
                raise HostileLayer(
                    f"layer hard link {m.name!r} -> {m.linkname!r}: target is not in the layer"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                raise HostileLayer(f"layer hard link {m.name!r} points at a directory")
            if (tparts[:-1], tparts[-1]) == (parts[:-1], base):
                return  # a link to itself: nothing to do
            self._replace(pfd, base, lambda: os.link(tparts[-1], base, src_dir_fd=tpfd,
                                                     dst_dir_fd=pfd, follow_symlinks=False))
            return
        if m.ischr() or m.isblk():
            self._check_device(parts, m)
            if self.in_userns:  # mknod is the host root's alone: podman's rootless skip
                return
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            dev = os.makedev(m.devmajor, m.devminor)
            self._replace(pfd, base, lambda: os.mknod(base, kind | 0o600, dev, dir_fd=pfd))
        elif m.isfifo():
            self._replace(pfd, base, lambda: os.mkfifo(base, 0o600, dir_fd=pfd))
        else:
            raise HostileLayer(f"layer entry {m.name!r} has unsupported type {m.type!r}")
        self._meta(base, m, pfd)
        os.utime(base, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)

    def _replace(self, pfd: int, base: str, create: Any) -> Any:
        """Create an entry; if the name exists (an earlier entry), remove that and retry."""
        try:
            return create()
        except FileExistsError:
            self.tree.remove(pfd, base)
            return create()

    def _copy_data(self, fd: int, m: tarfile.TarInfo) -> None:
        # tarfile leaves the stream at the member's data: read it straight from there
        # (no per-file ExFileObject).
        src = self.padded
        assert src is not None
        src.seek(m.offset_data)
        left = m.size
        while left > 0:
            block = src.read(min(left, 1 << 20))
            if not block:
                raise HostileLayer(f"layer entry {m.name!r} is truncated")
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view):]
            left -= len(block)
        if m.offset_data + m.size > src.real:
            raise HostileLayer(f"layer entry {m.name!r} is truncated")
        self.bytes += m.size

    def _check_device(self, parts: list[str], m: tarfile.TarInfo) -> None:
        policy = self.opts.devices
        if policy == "all" or (policy == "dev" and parts[0] == "dev" and len(parts) > 1):
            return
        raise HostileLayer(f"layer entry {m.name!r} is a device node, not allowed there")

    def _whiteout(self, pfd: int, base: str, m: tarfile.TarInfo) -> None:
        if base == OPAQUE:
            os.setxattr(pfd, opaque_xattr(), b"y")
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): no meaning here
        name = base[len(WHITEOUT_PREFIX):]
        if name in ("", ".", ".."):
            raise HostileLayer(f"layer whiteout {m.name!r} names nothing")
        self.tree.remove(pfd, name)
        os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
        if self.chown:
            os.chown(name, *self.owner(m), dir_fd=pfd, follow_symlinks=False)

    def _finish_dirs(self) -> None:
        # Directory mtimes last: creating children would bump them.  Deepest first.
        self.tree.drop_cache()
        for parts, ns in sorted(self.dir_times, key=lambda t: -len(t[0])):
            if not parts:
                os.utime(self.tree.root_fd, ns=(ns, ns))
                continue
            pfd = self.tree.dir_fd(parts[:-1], "/".join(parts), create=False)
            try:
                os.utime(parts[-1], ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                pass  # removed by a later entry


class _Forward:
    """A forward-only, seekable view of a tar stream for tarfile's random-access mode.

    tarfile's own stream mode ("r|") copies its whole read-ahead buffer on every
    header read (quadratic in the buffer size); here reads slice one chunk at a
    time and ``seek`` only skips ahead.

    It also pads a tar that ends without its last block's padding or the end marker:
    umoci 0.4.7 (Debian 12) writes such tars and Go's and GNU tar's readers cope.  A
    member whose data is cut short is still refused (``real`` counts the true bytes),
    and the diffID is computed below this wrapper over the real bytes.
    """

    CHUNK = 1 << 20

    def __init__(self, src: Any) -> None:
        self._src = src
        self._chunk = b""
        self._off = 0
        self._pos = 0
        self.real = 0
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._src.read(self.CHUNK)
        if data:
            self.real += len(data)
        else:
            self._eof = True
            data = b"\0" * ((-self.real % 512) + 1024)
        self._chunk, self._off = data, 0
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 62
        parts = []
        while n > 0:
            avail = len(self._chunk) - self._off
            if avail <= 0:
                if not self._fill():
                    break
                continue
            take = min(avail, n)
            parts.append(self._chunk[self._off:self._off + take])
            self._off += take
            self._pos += take
            n -= take
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise OSError(errno.ESPIPE, "layer stream can only skip forward")
        left = pos - self._pos
        while left > 0:
            avail = len(self._chunk) - self._off
            if avail <= 0:
                if not self._fill():
                    break
                continue
            take = min(avail, left)
            self._off += take
            self._pos += take
            left -= take
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


def apply_layer(stream: Any, target: str | os.PathLike[str],
                options: UnpackOptions | None = None) -> UnpackStats:
    """Extract the uncompressed tar ``stream`` into the directory ``target``.

    ``target`` should be a fresh, empty directory that the caller discards on error:
    a refused entry stops extraction with HostileLayer and leaves a partial tree there,
    but never anything outside it.
    """
    applier = _Applier(os.fspath(target), options or UnpackOptions())
    applier.padded = padded = _Forward(stream)
    try:
        try:
            tf = tarfile.open(fileobj=padded, mode="r:")  # type: ignore[call-overload]
        except tarfile.ReadError as err:
            raise InvalidArgument(f"layer is not a tar archive: {err}") from err
        try:
            applier.apply(tf)
        except tarfile.TarError as err:
            raise InvalidArgument(f"layer tar is corrupt: {err}") from err
        except EOFError as err:
            raise InvalidArgument("layer tar is truncated") from err
    finally:
        applier.tree.close()
    return UnpackStats(applier.entries, applier.bytes)


__all__ = ["apply_layer", "UnpackOptions", "UnpackStats", "HostileLayer", "split_path",
           "OPAQUE_XATTR"]
