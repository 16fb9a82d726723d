"""COPY and ADD: Docker's copy rules, carried out inside a root that is not ours.

    COPY dir/ /dst         the directory's *contents* go into /dst (made if missing)
    COPY a.txt /dst/       into the directory: /dst/a.txt
    COPY a.txt /dst        /dst is the file -- unless /dst exists as a directory
    COPY a b /dst/         several sources (or a wildcard): the destination must end in /
    COPY <<EOF /file       a heredoc as a file
    ADD x.tar.gz /dst/     a local tar (plain, gzip, bzip2, xz) is extracted
    ADD http://h/f /dst/   a download (mode 0600, as Docker's)

A relative destination is below WORKDIR.  Files keep their modes and times and are
owned by root unless ``--chown=user[:group]`` (names from the image's own
/etc/passwd and /etc/group; a user alone is also the group, as Docker reads it);
``--chmod`` sets every copied file's and directory's mode.  Directories a copy makes
are 0755, owned as the copied files.

What a COPY adds is written straight into the new layer's own directory (a fresh
snapshot, engine.stepimages.new_layer), never into a container: the files
copied, and the directories above them as the image has them (mode and owner),
so the layer changes nothing else -- what Docker's layer of a copy holds, with
each file written once.  The image's merged root (a mounted, never started
container) is only read: to resolve the destination's symlinks inside it, to see
whether the destination is a directory, for --chown's names.  Files are written
by the engine's extractor through directory fds (the code `cp` uses: a symlink
in a parent is never followed, every file is made under a temporary name
first); an archive ADD extracts is hostile input there too.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import posixpath
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tomato._sys.paths import open_in_root
from tomato.build.context import compression_of, is_tar
from tomato.build.sources import Item, Source, Tree
from tomato.errors import InvalidArgument, NotFound

MAX_DOWNLOAD = 8 << 30


@dataclass
class CopySpec:
    """A COPY or ADD with its words expanded."""

    sources: list[str]
    dest: str  # as written (expanded)
    workdir: str
    chown: str = ""
    chmod: int | None = None
    is_add: bool = False
    heredocs: dict[str, str] = field(default_factory=dict)  # name -> content
    checksum: str = ""

    @property
    def dest_is_dir(self) -> bool:
        d = self.dest
        return d.endswith("/") or d == "." or d.endswith("/.") or d == ".."

    @property
    def target(self) -> str:
        """The absolute destination path (lexically clean)."""
        path = self.dest if self.dest.startswith("/") else \
            posixpath.join(self.workdir or "/", self.dest)
        return posixpath.normpath("/" + path)


@dataclass
class _Download:
    name: str
    path: Path
    mtime: float


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _download(url: str, into: Path, checksum: str) -> _Download:
    """ADD's URL: fetched into the build's scratch, checked against ``--checksum``."""
    import email.utils
    import urllib.error
    import urllib.parse
    import urllib.request

    name = posixpath.basename(urllib.parse.urlsplit(url).path)
    path = into / f"download-{os.urandom(6).hex()}"
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as out:  # noqa: S310
            size = 0
            while block := resp.read(1 << 20):
                size += len(block)
                if size > MAX_DOWNLOAD:
                    raise InvalidArgument(f"{url}: larger than {MAX_DOWNLOAD >> 30} GiB")
                h.update(block)
                out.write(block)
            modified = resp.headers.get("Last-Modified")
    except urllib.error.HTTPError as err:
        raise InvalidArgument(f"failed to download {url}: {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or err
        raise InvalidArgument(f"failed to download {url}: {reason}") from None
    if checksum:
        algo, _, want = checksum.partition(":")
        if algo != "sha256" or not want:
            raise InvalidArgument(f"unsupported checksum {checksum!r}: want sha256:HEX")
        if h.hexdigest() != want.lower():
            raise InvalidArgument(f"checksum of {url} does not match: sha256:{h.hexdigest()}")
    mtime = time.time()
    if modified:
        try:
            parsed = email.utils.parsedate_to_datetime(modified)
            mtime = parsed.timestamp()
        except (TypeError, ValueError):
            pass
    return _Download(name, path, mtime)


class CopyJob:
    """A COPY/ADD's sources resolved (and downloads fetched): hashed for the cache key,
    then copied into a root on a miss.  Close it."""

    def __init__(self, spec: CopySpec, tree: Tree | None, scratch: Path) -> None:
        self.spec = spec
        self.tree = tree
        self.sources: list[Source] = []
        self.downloads: list[_Download] = []
        self.heredocs: list[tuple[str, bytes]] = []
        try:
            for src in spec.sources:
                if src in spec.heredocs:
                    self.heredocs.append((src, spec.heredocs[src].encode()))
                elif is_url(src):
                    if not spec.is_add:
                        raise InvalidArgument(f"source can't be a URL for COPY: {src}")
                    self.downloads.append(_download(src, scratch, spec.checksum))
                elif src.startswith("git@") or src.endswith(".git"):
                    raise InvalidArgument(f"ADD of a git repository is not supported: {src}")
                else:
                    if tree is None:
                        raise InvalidArgument(f"{src}: there is no build context to copy from")
                    self.sources.extend(tree.resolve(src))
            if spec.checksum and not self.downloads:
                raise InvalidArgument("checksum can't be specified for non-HTTP(S) sources")
        except BaseException:
            self.close()
            raise
        count = len(self.sources) + len(self.downloads) + len(self.heredocs)
        if count > 1 and not spec.dest_is_dir:
            self.close()
            raise InvalidArgument(f"When using {'ADD' if spec.is_add else 'COPY'} with more "
                                  "than one source file, the destination must be a directory "
                                  "and end with a /")

    def close(self) -> None:
        for s in self.sources:
            s.node.close()
        self.sources = []

    # -- the cache key ----------------------------------------------------------------
    def _is_archive(self, source: Source) -> bool:
        if not self.spec.is_add or not source.node.is_file():
            return False
        assert self.tree is not None
        head = self.tree.read(source, 1 << 16)
        kind = compression_of(head)
        if kind:
            import bz2
            import lzma
            import zlib

            try:
                if kind == "gzip":
                    head = zlib.decompressobj(47).decompress(head, 1024)
                elif kind == "bzip2":
                    head = bz2.BZ2Decompressor().decompress(head, 1024)
                elif kind == "xz":
                    head = lzma.LZMADecompressor().decompress(head, 1024)
                else:
                    return False
            except Exception:  # noqa: BLE001 — not an archive after all: copied as a file
                return False
        return is_tar(head)

    def describe(self) -> str:
        """Docker's ``file:<hash>`` / ``dir:<hash>`` / ``multi:<hash>`` of the sources."""
        assert self.tree is not None or not self.sources
        parts = []
        for s in self.sources:
            assert self.tree is not None
            parts.append(("dir:" if s.is_dir else "file:") + self.tree.digest(s))
        for d in self.downloads:
            parts.append("file:" + _file_digest(d.path))
        for name, data in self.heredocs:
            parts.append("file:" + hashlib.sha256(name.encode() + b"\0" + data).hexdigest())
        if len(parts) == 1:
            return parts[0]
        return "multi:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()

    # -- copying ----------------------------------------------------------------------
    def apply(self, layer_fd: int, view: str | None, owner: tuple[int, int],
              keep_owners: bool = False) -> None:
        """Write what the step adds into the new layer's directory ``layer_fd``: the files
        copied, and the directories above them as the image (``view``: its merged root,
        mounted; None for an image with no files) has them, so the layer changes
        nothing else.  Symlinks in the image's part of the destination are resolved
        inside the image, as Docker does.  ``keep_owners``: files keep their owners
        (COPY --from without --chown, as BuildKit and buildah), else ``owner``'s."""
        self.keep_owners = keep_owners
        spec = self.spec
        target = _resolve(view, spec.target)
        place = _Place(layer_fd, view, owner)
        try:
            for source in self.sources:
                assert self.tree is not None
                if source.is_dir:
                    self._extract(place, target, self.tree.items(source, ""), owner)
                elif self._is_archive(source):
                    self._add_archive(place, target, source, owner)
                else:
                    path = self._file_target(place, target, posixpath.basename(source.name))
                    self._extract(place, posixpath.dirname(path),
                                  self.tree.items(source, posixpath.basename(path)), owner)
            for d in self.downloads:
                if spec.dest_is_dir and not d.name:
                    raise InvalidArgument("cannot determine filename from url: use a "
                                          "destination that does not end in /")
                path = self._file_target(place, target, d.name)
                info = tarfile.TarInfo(posixpath.basename(path))
                info.size, info.mode, info.mtime = os.path.getsize(d.path), 0o600, int(d.mtime)
                with open(d.path, "rb") as f:
                    self._extract(place, posixpath.dirname(path), iter([(info, f)]), owner)
            for name, data in self.heredocs:
                path = self._file_target(place, target, name)
                info = tarfile.TarInfo(posixpath.basename(path))
                info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                self._extract(place, posixpath.dirname(path),
                              iter([(info, io.BytesIO(data))]), owner)
        finally:
            place.close()

    def _file_target(self, place: _Place, target: str, base: str) -> str:
        """Where a single file goes: into ``target`` if it is (or must be) a directory."""
        if self.spec.dest_is_dir or place.is_dir(target):
            return posixpath.join(target, base)
        if target == "/":
            raise InvalidArgument("cannot copy a file onto /")
        return target

    def _chmod(self, items: Iterator[Item]) -> Iterator[Item]:
        mode = self.spec.chmod
        for info, data in items:
            if mode is not None and info.type in (tarfile.REGTYPE, tarfile.AREGTYPE,
                                                  tarfile.DIRTYPE):
                info.mode = mode
            yield info, data

    def _extract(self, place: _Place, directory: str, items: Iterator[Item],
                 owner: tuple[int, int], keep_owner: bool = False) -> None:
        from tomato.engine.rootfs_io import ExtractOptions, Extractor

        keep_owner = keep_owner or getattr(self, "keep_owners", False)
        fd = place.make_dirs(directory)
        opts = ExtractOptions(owner=None if keep_owner else owner, keep_owner=keep_owner,
                              no_overwrite_dir_nondir=False)
        Extractor(fd, opts).extract(self._chmod(items))

    def _add_archive(self, place: _Place, target: str, source: Source,
                     owner: tuple[int, int]) -> None:
        from tomato.engine.rootfs_io import tar_items

        fd = source.node.open_file()
        with os.fdopen(fd, "rb") as f:
            try:
                self._extract(place, target, tar_items(f), owner,
                              keep_owner=not self.spec.chown)
            except InvalidArgument as err:
                raise InvalidArgument(f"ADD {source.name}: {err}") from None


def _resolve(view: str | None, path: str) -> str:
    """``path`` with the image's symlinks resolved inside it (the missing rest kept)."""
    if view is None:
        return path
    from tomato._sys.paths import resolve_in_root

    try:
        host = resolve_in_root(view, path)
    except OSError as err:
        raise InvalidArgument(f"cannot copy to {path}: {err.strerror}") from None
    return "/" + host[len(view.rstrip("/")):].lstrip("/")


class _Place:
    """The new layer's directory, and the image below it: directories are made in the
    layer as the image has them (mode and owner), new ones 0755 owned by ``owner``."""

    def __init__(self, layer_fd: int, view: str | None, owner: tuple[int, int]) -> None:
        self.layer_fd = layer_fd
        self.view_fd = -1 if view is None else \
            os.open(view, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.owner = owner
        self.fds: dict[str, int] = {}

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
        if self.view_fd >= 0:
            os.close(self.view_fd)
            self.view_fd = -1

    def _in_view(self, path: str) -> os.stat_result | None:
        if self.view_fd < 0:
            return None
        try:
            fd = open_in_root(self.view_fd, path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def is_dir(self, path: str) -> bool:
        import stat

        try:
            st = os.stat(path.lstrip("/") or ".", dir_fd=self.layer_fd, follow_symlinks=False)
            return stat.S_ISDIR(st.st_mode)
        except OSError:
            pass
        found = self._in_view(path)
        return found is not None and stat.S_ISDIR(found.st_mode)

    def make_dirs(self, path: str) -> int:
        """A (cached, borrowed) fd of directory ``path`` in the layer, made as above."""
        import stat

        path = posixpath.normpath("/" + path)
        if path in self.fds:
            return self.fds[path]
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.layer_fd)
        done = ""
        try:
            for part in [p for p in path.split("/") if p]:
                done = f"{done}/{part}"
                try:
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW |
                                  os.O_CLOEXEC, dir_fd=fd)
                except FileNotFoundError:
                    below = self._in_view(done)
                    if below is not None and not stat.S_ISDIR(below.st_mode):
                        raise InvalidArgument(f"cannot copy to {path}: {done} is not a "
                                              "directory") from None
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW |
                                  os.O_CLOEXEC, dir_fd=fd)
                    if below is not None:  # as the image has it
                        os.fchown(nxt, below.st_uid, below.st_gid)
                        os.fchmod(nxt, stat.S_IMODE(below.st_mode))
                    else:
                        os.fchown(nxt, *self.owner)
                        os.fchmod(nxt, 0o755)
                except OSError as err:
                    if err.errno in (errno.ENOTDIR, errno.ELOOP):
                        raise InvalidArgument(f"cannot copy to {path}: {done} is not a "
                                              "directory") from None
                    raise
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        self.fds[path] = fd
        return fd


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def resolve_owner(chown: str, root: str | None) -> tuple[int, int]:
    """``--chown=user[:group]`` as numbers (names from the root's own files; a user
    alone names the group too, as Docker's classic builder reads it)."""
    if not chown:
        return 0, 0
    parts = chown.split(":")
    if len(parts) > 2 or not all(parts):
        raise InvalidArgument(f"invalid chown string format: {chown}")
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return _lookup(user, root, "/etc/passwd", "user"), _lookup(group, root, "/etc/group",
                                                               "group")


def _lookup(name: str, root: str | None, path: str, kind: str) -> int:
    if name.isdigit():
        return int(name)
    entries: list[list[str]] = []
    if root is not None:
        from tomato._sys.paths import read_in_root

        try:
            text = read_in_root(root, path).decode("utf-8", "surrogateescape")
            entries = [line.split(":") for line in text.splitlines() if ":" in line]
        except OSError:
            entries = []
    for e in entries:
        if len(e) > 2 and e[0] == name and e[2].isdigit():
            return int(e[2])
    raise NotFound(f"unable to find {kind} {name}: no matching entries in "
                   f"{posixpath.basename(path)} file")


__all__ = ["CopySpec", "CopyJob", "resolve_owner", "is_url"]
