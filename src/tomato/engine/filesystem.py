"""A container's filesystem: diff, commit, cp and export.

The merged view is the container's overlay, mounted at its bundle's rootfs
for the container's whole life; paths under a volume or bind mount go to the
mount's source, as docker cp does.  Whichever root holds a path, it is opened
as a directory fd and the path resolved by the kernel inside it (openat2
RESOLVE_IN_ROOT), then copied only through fds (``engine.rootfs_io``): the
container may rename and swap symlinks in while we copy, and a copy still
never leaves its root (CVE-2018-15664).

``cp`` follows Docker's copy rules: ``SRC/.`` copies a directory's contents,
``DEST/`` must be a directory, a missing DEST is created from SRC, a directory
never replaces a file; files copied into a container are owned by its root
unless ``-a`` keeps their owners.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, BinaryIO

from tomato._sys.fdtree import Node
from tomato._sys.paths import open_in_root
from tomato.engine import rootfs_io
from tomato.engine.containers import Container, Containers
from tomato.engine.images import EngineConfig, _Ctx, _record, rootfs_mounts
from tomato.errors import InvalidArgument, NotFound, TomatoError


def _overlay(cfg: EngineConfig, c: Container) -> tuple[str, list[str]]:
    mounts = rootfs_mounts(cfg, c.id)
    if not mounts or mounts[0].type != "overlay":
        raise InvalidArgument(f"container {c.short_id} has no overlay layer")
    upper = mounts[0].option("upperdir")
    assert upper is not None
    return upper, mounts[0].lowerdirs


#: Files the engine bind-mounts over; their empty placeholders are not changes.
ENGINE_FILES = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"})


def diff(cfg: EngineConfig, c: Container) -> list[tuple[str, str]]:
    from tomato.images.changes import changes

    upper, lowers = _overlay(cfg, c)
    return [(ch.kind, ch.path) for ch in changes(upper, lowers, ENGINE_FILES)]


def commit(cfg: EngineConfig, c: Container, reference: str | None, *, comment: str = "",
           author: str = "", changes: dict[str, Any] | None = None, pause: bool = True) -> str:
    """The container's changes as a new image; returns its id."""
    from tomato.engine import service
    from tomato.images.commit import commit_layer
    from tomato.images.pull import unpack
    from tomato.images.reference import parse

    ctx = _Ctx(cfg)
    upper, lowers = _overlay(cfg, c)
    paused_here = False
    if pause and c.state.status == "running":
        service.pause(cfg, c.id)
        paused_here = True
    try:
        with ctx.store.lock("gc", shared=True):
            from tomato.engine.images import get_image

            base = get_image(cfg, c.image_id)
            if changes:  # laid over the image's config as a Dockerfile's lines would be
                from tomato.engine.image_changes import merge
                from tomato.engine.images import inspect

                changes = merge(inspect(cfg, base.id).config or {}, changes)
            if c.options.get("healthcheck"):  # the container's, as Docker's commit keeps it
                changes = {**(changes or {}), "Healthcheck": c.options["healthcheck"]}
            digest = commit_layer(ctx.content, base.manifest_digest, upper, changes or {},
                                  comment=comment, author=author,
                                  created_by=" ".join(c.spec.get("process", {}).get("args", [])),
                                  lowers=lowers, hidden=ENGINE_FILES,
                                  shift=ctx.stores.shift)
            chains, size = unpack(digest, ctx.stores)
            from tomato.images.manifest import load_manifest

            manifest = load_manifest(ctx.content, digest)
            img = _record(ctx, None, image_id=manifest.config.digest, manifest_digest=digest,
                          target_digest=digest, chain_ids=chains, size=size,
                          names=[parse(reference)] if reference else [])
    finally:
        if paused_here:
            service.unpause(cfg, c.id)
    return img.id


@dataclass(frozen=True)
class PathStat:
    """What Docker's X-Docker-Container-Path-Stat header tells about a path."""

    name: str
    size: int
    mode: int  # Go's os.FileMode bits, as the docker CLI reads them
    mtime: float
    link_target: str  # a symlink's target fully resolved in the container, else ""


@dataclass(frozen=True)
class _Place:
    """Which host directory holds a container path, and the path inside it."""

    root: str  # the container's rootfs, or a mount's source directory
    inner: str  # absolute, inside ``root``
    mount: str  # the container path ``root`` is seen at ("/" for the rootfs)
    read_only: bool
    file_mount: bool = False  # ``root``/``inner`` is a file bind-mounted at the path


def _split(path: str) -> tuple[str, str]:
    """(lexically clean absolute path, "/." or "/" if the user wrote one, else "")."""
    trailing = "/." if path.endswith("/.") else "/" if path.endswith("/") else ""
    norm = posixpath.normpath("/" + path.lstrip("/"))
    return norm, "" if norm == "/" else trailing


def _place(cfg: EngineConfig, c: Container, norm: str) -> _Place:
    """The root holding the clean container path ``norm`` (volumes and binds included)."""
    best: dict[str, Any] | None = None
    for m in c.spec.get("mounts", []):
        if m.get("type") != "bind":
            continue
        dest = posixpath.normpath(m["destination"])
        if (norm == dest or norm.startswith(dest.rstrip("/") + "/")) and \
                (best is None or len(dest) > len(best["destination"])):
            best = {**m, "destination": dest}
    if best is not None:
        dest, source = best["destination"], best["source"]
        ro = "ro" in best.get("options", [])
        if os.path.isdir(source):
            return _Place(source, norm[len(dest):] or "/", dest, ro)
        if norm != dest:
            raise NotFound(f"Could not find the file {norm} in container {c.name}")
        return _Place(os.path.dirname(source), "/" + os.path.basename(source), dest, ro,
                      file_mount=True)
    rootfs = str(Containers(cfg.root).bundle(c.id) / "rootfs")
    if not os.path.ismount(rootfs):
        raise InvalidArgument(f"container {c.short_id} has no mounted filesystem")
    return _Place(rootfs, norm, "/", bool(c.spec.get("root", {}).get("readonly")))


@contextmanager
def _root_fd(place: _Place) -> Iterator[int]:
    fd = os.open(place.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _missing(c: Container, path: str, err: OSError) -> TomatoError:
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFound(f"Could not find the file {path} in container {c.name}")
    return TomatoError(f"{path} in container {c.name}: {err.strerror or err}")


@contextmanager
def _source(cfg: EngineConfig, c: Container, path: str,
            follow: bool = False) -> Iterator[tuple[Node, str, _Place, int]]:
    """The container path ``path`` pinned (the last symlink followed only with
    ``follow`` or a trailing "/"), with the name Docker's archive gives it."""
    if not path:
        raise InvalidArgument("path must not be empty")
    norm, trailing = _split(path)
    place = _place(cfg, c, norm)
    flags = os.O_PATH if (trailing or follow) else os.O_PATH | os.O_NOFOLLOW
    with _root_fd(place) as root:
        try:
            node = Node(open_in_root(root, place.inner + trailing, flags))
        except OSError as err:
            raise _missing(c, path, err) from err
        with node:
            name = "." if trailing == "/." or norm == "/" else posixpath.basename(norm)
            yield node, name, place, root


def _go_mode(st: os.stat_result) -> int:
    """st_mode as Go's os.FileMode (what the docker CLI decodes from the stat header)."""
    mode = stat.S_IMODE(st.st_mode) & 0o777
    kind = stat.S_IFMT(st.st_mode)
    mode |= {stat.S_IFDIR: 1 << 31, stat.S_IFLNK: 1 << 27, stat.S_IFIFO: 1 << 25,
             stat.S_IFSOCK: 1 << 24, stat.S_IFBLK: 1 << 26,
             stat.S_IFCHR: (1 << 26) | (1 << 21)}.get(kind, 0)
    if st.st_mode & stat.S_ISUID:
        mode |= 1 << 23
    if st.st_mode & stat.S_ISGID:
        mode |= 1 << 22
    if st.st_mode & stat.S_ISVTX:
        mode |= 1 << 20
    return mode


def _in_container(place: _Place, root_fd: int, fd: int) -> str | None:
    """The container path of an fd opened inside ``place``'s root, or None."""
    host = os.readlink(f"/proc/self/fd/{fd}")
    root = os.readlink(f"/proc/self/fd/{root_fd}").rstrip("/")
    if host != root and not host.startswith(root + "/"):
        return None
    return posixpath.normpath(posixpath.join(place.mount, host[len(root):].lstrip("/")))


def _stat(path: str, node: Node, name: str, place: _Place, root: int) -> PathStat:
    target = ""
    if node.is_link():
        try:  # Docker reports the target fully resolved in the container
            fd = open_in_root(root, place.inner, os.O_PATH)
            try:
                target = _in_container(place, root, fd) or ""
            finally:
                os.close(fd)
        except OSError:
            target = ""
        if not target:  # dangling: the link's own text, taken from its directory
            target = posixpath.normpath(posixpath.join(
                posixpath.dirname(_split(path)[0]), node.readlink()))
    if name == "." and not path.endswith("/."):
        name = "/"  # Go's filepath.Base("/")
    return PathStat(name=name, size=node.st.st_size, mode=_go_mode(node.st),
                    mtime=node.st.st_mtime, link_target=target)


def stat_path(cfg: EngineConfig, c: Container, path: str) -> PathStat:
    """Docker's stat of a container path (HEAD /containers/{id}/archive)."""
    with _source(cfg, c, path) as (node, name, place, root):
        return _stat(path, node, name, place, root)


@contextmanager
def path_archive(cfg: EngineConfig, c: Container, path: str, follow: bool = False
                 ) -> Iterator[tuple[PathStat, Callable[[BinaryIO], None]]]:
    """GET archive: ``path`` resolved once, its stat and a writer of its tar stream
    (named as Docker names it) from that same pinned inode."""
    with _source(cfg, c, path, follow) as (node, name, place, root):
        yield (_stat(path, node, name, place, root),
               lambda out: rootfs_io.write_tar(out, _unshifted(cfg, rootfs_io.items(node,
                                                                                  name))))


def archive(cfg: EngineConfig, c: Container, path: str, out: BinaryIO,
            follow: bool = False) -> None:
    """``path`` as a tar stream named as Docker names it (``cp C:SRC -``)."""
    with path_archive(cfg, c, path, follow) as (_, write):
        write(out)


def _plan(src_is_dir: bool, src_name: str, dest: str, exists: bool, is_dir: bool,
          asserts_dir: bool) -> tuple[str, str]:
    """Docker's copy rules (archive.PrepareArchiveCopy): the directory to extract into,
    and the name the source's top entry takes there."""
    if exists and is_dir:
        return dest, src_name  # into it: SRC/. as its contents, else as SRC's base name
    if exists and src_is_dir:
        raise InvalidArgument(f"cannot copy directory: {dest} exists and is not a directory")
    if not exists and not src_is_dir and asserts_dir:
        raise NotFound(f"no such directory: {dest}")
    return posixpath.dirname(dest) or "/", posixpath.basename(dest)


def _host_destination(dest: str) -> tuple[str, bool, bool]:
    """A host destination as Docker's CLI reads it: (path with its last symlinks
    followed, exists, is a directory); its parent must be a directory."""
    path = os.path.abspath(dest)
    for _ in range(10):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            parent = os.path.dirname(path)
            if not os.path.isdir(parent):
                raise NotFound(f"no such directory: {parent}") from None
            return path, False, False
        if not stat.S_ISLNK(st.st_mode):
            return path, True, stat.S_ISDIR(st.st_mode)
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    raise InvalidArgument(f"too many symlinks in {dest}")


def copy_from(cfg: EngineConfig, c: Container, src: str, dest: str,
              out: BinaryIO | None = None, *, keep_owner: bool = False,
              follow: bool = False) -> None:
    """`cp CONTAINER:SRC DEST`: DEST "-" is a tar stream on ``out``; a host DEST is an
    extraction into its directory's fd (an entry can never land outside it)."""
    if dest == "-":
        assert out is not None
        archive(cfg, c, src, out, follow)
        return
    with _source(cfg, c, src, follow) as (node, name, _, _):
        path, exists, is_dir = _host_destination(dest)
        into, top = _plan(node.is_dir(), name, path, exists, is_dir,
                          dest.endswith(("/", "/.")))
        dfd = os.open(into, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            opts = rootfs_io.ExtractOptions(keep_owner=keep_owner, devices=False,
                                            keep_setid=keep_owner)
            rootfs_io.Extractor(dfd, opts).extract(rootfs_io.items(node, top))
        finally:
            os.close(dfd)


def _open_extraction_point(cfg: EngineConfig, c: Container, path: str) -> tuple[int, _Place]:
    """A directory fd of the container directory ``path`` (symlinks followed inside
    the container, as Docker does), refusing read-only roots and volumes."""
    norm, _ = _split(path)
    place = _place(cfg, c, norm)
    if place.file_mount:
        raise InvalidArgument(f"extraction point is not a directory: {path}")
    with _root_fd(place) as root:
        try:
            fd = open_in_root(root, place.inner, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as err:
            if err.errno == errno.ENOTDIR:
                raise InvalidArgument(f"extraction point is not a directory: {path}") from err
            raise _missing(c, path, err) from err
    if place.read_only:
        os.close(fd)
        raise InvalidArgument("container rootfs is marked read-only" if place.mount == "/"
                              else f"mounted volume is marked read-only: {place.mount}")
    return fd, place


def _extract_into(cfg: EngineConfig, c: Container, path: str, entries: Any, *,
                  keep_owner: bool, no_overwrite_dir_nondir: bool = True) -> None:
    fd, _ = _open_extraction_point(cfg, c, path)
    try:
        opts = rootfs_io.ExtractOptions(owner=None if keep_owner else _root_owner(cfg, c),
                                        keep_owner=keep_owner, shift=_shift(cfg, c),
                                        no_overwrite_dir_nondir=no_overwrite_dir_nondir)
        rootfs_io.Extractor(fd, opts).extract(entries)
    finally:
        os.close(fd)


def extract_archive(cfg: EngineConfig, c: Container, path: str, stream: BinaryIO, *,
                    keep_owner: bool = False, no_overwrite_dir_nondir: bool = True) -> None:
    """A tar stream extracted into the container directory ``path`` (PUT archive,
    ``cp - CONTAINER:DEST``)."""
    _extract_into(cfg, c, path, rootfs_io.tar_items(stream), keep_owner=keep_owner,
                  no_overwrite_dir_nondir=no_overwrite_dir_nondir)


@contextmanager
def _host_source(src: str, follow: bool) -> Iterator[tuple[Node, str]]:
    norm, trailing = os.path.abspath(src), "/." if src.endswith("/.") else \
        "/" if src.endswith("/") else ""
    try:
        if trailing or follow or norm == "/":
            node = Node(os.open(norm + trailing, os.O_PATH | os.O_CLOEXEC))
        else:
            parent = os.open(os.path.dirname(norm), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                node = Node(os.open(os.path.basename(norm), os.O_PATH | os.O_NOFOLLOW |
                                    os.O_CLOEXEC, dir_fd=parent))
            finally:
                os.close(parent)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"no such file or directory: {src}") from None
    with node:
        yield node, "." if trailing == "/." or norm == "/" else os.path.basename(norm)


def copy_to(cfg: EngineConfig, c: Container, src: str, dest: str,
            stream: BinaryIO | None = None, *, keep_owner: bool = False,
            follow: bool = False) -> None:
    """`cp SRC CONTAINER:DEST` (SRC "-": a tar stream on ``stream``, DEST a directory)."""
    if not dest:
        raise InvalidArgument("path must not be empty")
    if src == "-":
        assert stream is not None
        extract_archive(cfg, c, dest, stream, keep_owner=keep_owner)
        return
    norm, trailing = _split(dest)
    place = _place(cfg, c, norm)
    with _root_fd(place) as root:
        try:  # DEST's last symlink followed, inside the container, as docker's CLI does
            with Node(open_in_root(root, place.inner + trailing,
                                   os.O_PATH | os.O_NOFOLLOW)) as target:
                st = target.st
                if target.is_link():  # only then is the resolved path the one to use: an
                    # fd's path also shows a directory the container renamed meanwhile
                    with Node(open_in_root(root, place.inner, os.O_PATH)) as linked:
                        st = linked.st
                        norm = _in_container(place, root, linked.fd) or norm
            exists, is_dir, kind = True, stat.S_ISDIR(st.st_mode), stat.S_IFMT(st.st_mode)
        except OSError as err:
            if err.errno != errno.ENOENT:
                raise _missing(c, dest, err) from err
            exists, is_dir, kind = False, False, 0
    if exists and kind not in (stat.S_IFDIR, stat.S_IFREG):
        raise InvalidArgument(f'destination "{c.name}:{dest}" must be a directory or a '
                              "regular file")
    if place.file_mount:
        raise InvalidArgument(f"cannot copy onto {norm}: it is a file mounted into the "
                              "container (device or resource busy)")
    with _host_source(src, follow) as (node, name):
        into, top = _plan(node.is_dir(), name, norm, exists, is_dir,
                          dest.endswith(("/", "/.")))
        _extract_into(cfg, c, into, rootfs_io.items(node, top), keep_owner=keep_owner)


def _unshifted(cfg: EngineConfig, items: Iterable[rootfs_io.Item]
               ) -> Iterable[rootfs_io.Item]:
    """--userns-remap: entries with the ids a container sees (dockerd's export and cp)."""
    r = cfg.userns_remap
    if r is None:
        return items
    from tomato.images.changes import unshift

    shift = (r.uid_start, r.uid_count, r.gid_start, r.gid_count)
    return ((unshift(info, shift), data) for info, data in items)


def _shift(cfg: EngineConfig, c: Container) -> tuple[int, int, int, int] | None:
    """A remapped container's shift of ids (for `cp -a` into it), else None."""
    r = cfg.userns_remap
    if r is None or c.options.get("userns_mode") == "host":
        return None
    return (r.uid_start, r.uid_count, r.gid_start, r.gid_count)


def _root_owner(cfg: EngineConfig, c: Container) -> tuple[int, int]:
    """Who the container's root is on the host: the range's start when remapped."""
    r = cfg.userns_remap
    if r is None or c.options.get("userns_mode") == "host":
        return (0, 0)
    return (r.uid_start, r.gid_start)


def export(cfg: EngineConfig, c: Container, out: BinaryIO) -> None:
    """The merged root filesystem as a tar stream (mounts inside it not included)."""
    place = _place(cfg, c, "/")
    with _root_fd(place) as root, Node(os.open(".", os.O_PATH | os.O_CLOEXEC,
                                               dir_fd=root)) as top:
        rootfs_io.write_tar(out, _unshifted(cfg, islice(rootfs_io.items(top, ""), 1,
                                                        None)))
