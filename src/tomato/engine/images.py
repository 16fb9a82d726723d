"""Image use cases shared by the CLI and the API: pull, push, list, inspect, tag, rmi,
prune, history, save, load, import, login/logout, system df.  The records they read
and write, and a new container's rootfs (a snapshot leased on its image), are
image_store.py's.

Every function takes an ``EngineConfig`` and returns dataclasses; nothing prints.
Records live in the engine store (``tomato.db``); blobs in ``ROOT/content``;
layers in ``ROOT/snapshots``.  Slow work (network, unpacking) happens outside any
transaction under a shared ``gc`` lock; removal and prune sweep under the
exclusive one, so GC never deletes what an in-flight pull is about to record.

What an interrupted pull, commit, load or import left (the bytes of a download,
a half-unpacked layer, blobs and layers no image names) is the "Pull Cache" of
``system df``: the next pull resumes from it, and the sweep of ``rmi`` and
``image prune`` removes what no live process holds.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tomato import sqlitedb as sqlite3
from tomato.errors import Conflict, InvalidArgument, NoSpace, NotFound
from tomato.images.content import disk_usage as _du
from tomato.images.manifest import (
    Index,
    Manifest,
    Platform,
    host_platform,
    load_config,
    load_manifest,
    parse_manifest,
)
from tomato.images.reference import Reference, parse
from tomato.images.snapshots import COMMITTED

from .config import EngineConfig  # noqa: F401 — its old home; the use cases' first argument

# The records, and the container's rootfs leases: image_store.py (these names are
# read from here too, the private ones by the build's modules)
from .image_store import IMAGE_COLUMNS as _COLS  # noqa: F401
from .image_store import (  # noqa: F401
    PULL_CACHE,
    DfRow,
    HistoryEntry,
    ImageDetail,
    ImageSummary,
    RemoveResult,
    prepare_rootfs,
    release_rootfs,
    rootfs_mounts,
)
from .image_store import ImageContext as _Ctx
from .image_store import find_image as _find
from .image_store import record_image as _record
from .image_store import summary_of as _summary  # noqa: F401

# The registry client, archives and the pull machinery (http.client, email,
# threads...) are imported by the use cases that need them: `tomato ps` and
# `tomato run` of a local image must not pay ~50 ms for them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from tomato.images.auth import Credentials
    from tomato.images.pull import Progress
    from tomato.images.push import Pushed
    from tomato.images.registry import RegistryClient


# -- registry access -------------------------------------------------------------------
def _client(ctx: _Ctx, ref: Reference, credentials: Credentials | None = None
            ) -> RegistryClient:
    """A client of ``ref``'s registry: with the caller's ``credentials`` (the API's
    X-Registry-Auth), else those `login` stored for it."""
    from tomato.images.auth import CredentialStore
    from tomato.images.registry import RegistryClient
    insecure = ref.domain in ctx.cfg.insecure_registries
    creds = credentials or CredentialStore(ctx.cfg.auth_file).get(ref.domain)
    return RegistryClient(ref.domain, insecure=insecure, credentials=creds)


def pull(cfg: EngineConfig, name: str, *, platform: Platform | None = None,
         progress: Callable[[Progress], None] | None = None,
         credentials: Credentials | None = None) -> ImageSummary:
    from tomato.images.pull import pull as _pull
    ref = parse(name)
    ctx = _Ctx(cfg)
    client = _client(ctx, ref, credentials)
    try:
        with _disk_space(cfg, f"pulling {name}"), ctx.store.lock("gc", shared=True):
            img = _pull(ref, client, ctx.stores,
                        platform=platform or cfg.platform or host_platform(), progress=progress)
            return _record(ctx, img, image_id=img.config_digest,
                           manifest_digest=img.manifest_digest, target_digest=img.target_digest,
                           chain_ids=img.chain_ids, size=img.unpacked_size,
                           names=[ref] if ref.tag else [])
    finally:
        client.close()


def _full(err: BaseException, root: Path) -> bool:
    if isinstance(err, NoSpace):
        return True
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(err, sqlite3.OperationalError):  # the snapshots' metadata.db
        if "full" in str(err):
            return True
        try:  # sqlite says "disk I/O error" when it cannot grow its -wal or -shm
            st = os.statvfs(root)
        except OSError:
            return False
        return st.f_bfree * st.f_frsize < 256 * 1024
    return False


@contextmanager
def _disk_space(cfg: EngineConfig, doing: str) -> Iterator[None]:
    """A full disk as one line naming what was being done (docker's "no space left on
    device"); what was written stays for the next try, reclaimable with image prune."""
    try:
        yield
    except (OSError, sqlite3.OperationalError, NoSpace) as err:
        if _full(err, cfg.root):
            raise NoSpace(f"no space left on device while {doing}") from err
        raise


def push(cfg: EngineConfig, name: str, *,
         progress: Callable[[Progress], None] | None = None,
         credentials: Credentials | None = None) -> Pushed:
    from tomato.images.push import push as _push
    ref = parse(name)
    ctx = _Ctx(cfg)
    with ctx.store.read() as db:
        img = _find(db, name)
    target = img.target_digest if ctx.content.exists(img.target_digest) else img.manifest_digest
    client = _client(ctx, ref, credentials)
    try:
        pushed = _push(ref, target, client, ctx.content, progress=progress)
    finally:
        client.close()
    with ctx.store.write() as db:
        db.execute("INSERT OR REPLACE INTO repo_digests VALUES (?,?)",
                   (f"{ref.repository}@{pushed.digest}", img.id))
    return pushed


def login(cfg: EngineConfig, server: str, username: str, password: str) -> str:
    """Check the credentials against the registry, then store them (0600). Returns the host."""
    from tomato.images.auth import Credentials, CredentialStore
    from tomato.images.registry import RegistryClient
    host = server.removeprefix("https://").removeprefix("http://").rstrip("/")
    if host in ("index.docker.io/v1", "index.docker.io", "registry-1.docker.io"):
        host = "docker.io"
    creds = Credentials(username, password)
    client = RegistryClient(host, insecure=host in cfg.insecure_registries, credentials=creds)
    try:
        client.ping()
    finally:
        client.close()
    CredentialStore(cfg.auth_file).put(host, creds)
    return host


def logout(cfg: EngineConfig, server: str) -> bool:
    from tomato.images.auth import CredentialStore
    host = server.removeprefix("https://").removeprefix("http://").rstrip("/") or "docker.io"
    return CredentialStore(cfg.auth_file).remove(host)


# -- local queries ---------------------------------------------------------------------
def list_images(cfg: EngineConfig, *, reference: str | None = None,
                dangling: bool | None = None) -> list[ImageSummary]:
    ctx = _Ctx(cfg)
    with ctx.store.read() as db:
        rows = db.execute(f"SELECT {_COLS} FROM images ORDER BY added DESC").fetchall()
        out = [_summary(db, r) for r in rows]
    if dangling is not None:
        out = [i for i in out if (not i.repo_tags) == dangling]
    if reference:
        import fnmatch
        out = [i for i in out
               if any(fnmatch.fnmatch(t, reference) or fnmatch.fnmatch(t.rsplit(":", 1)[0],
                                                                       reference)
                      for t in i.repo_tags)]
    return out


def get_image(cfg: EngineConfig, name: str) -> ImageSummary:
    ctx = _Ctx(cfg)
    with ctx.store.read() as db:
        return _find(db, name)


def inspect(cfg: EngineConfig, name: str) -> ImageDetail:
    ctx = _Ctx(cfg)
    with ctx.store.read() as db:
        img = _find(db, name)
    manifest = load_manifest(ctx.content, img.manifest_digest)
    config = load_config(ctx.content, manifest)
    return ImageDetail(img, config.config, config.platform, config.diff_ids, config.history,
                       manifest.media_type)


def history(cfg: EngineConfig, name: str) -> list[HistoryEntry]:
    ctx = _Ctx(cfg)
    detail = inspect(cfg, name)
    sizes = [int(ctx.snapshots.stat(c).labels.get("tomato.size", "0"))
             if ctx.snapshots.exists(c) else 0 for c in detail.summary.chain_ids]
    entries = []
    layer = 0
    hist = list(detail.history) or [{} for _ in detail.diff_ids]
    for h in hist:
        empty = bool(h.get("empty_layer"))
        size = 0
        if not empty and layer < len(sizes):
            size = sizes[layer]
            layer += 1
        entries.append(HistoryEntry("<missing>", h.get("created", ""), h.get("created_by", ""),
                                    size, h.get("comment", ""), empty))
    entries.reverse()
    if entries:
        entries[0] = HistoryEntry(detail.summary.id, *[getattr(entries[0], f) for f in
                                                       ("created", "created_by", "size",
                                                        "comment", "empty_layer")])
    return entries


def tag(cfg: EngineConfig, source: str, target: str) -> None:
    ref = parse(target)
    if ref.digest:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
    ctx = _Ctx(cfg)
    with ctx.store.write() as db:
        img = _find(db, source)
        db.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (str(ref), img.id))


# -- removal and GC -----------------------------------------------------------------------
def _leases(db: sqlite3.Connection, image_id: str) -> list[str]:
    return [r[0] for r in db.execute("SELECT holder FROM image_leases WHERE image_id=?",
                                     (image_id,))]


def remove(cfg: EngineConfig, name: str, *, force: bool = False) -> RemoveResult:
    """``tomato rmi``: untag, and delete the image once no name and no holder is left."""
    from tomato.engine import leftovers

    leftovers.sweep(cfg)  # a lease a killed create left names no container: it goes first
    ctx = _Ctx(cfg)
    with ctx.store.lock("gc"):
        with ctx.store.write() as db:
            img = _find(db, name)
            untagged: list[str] = []
            try:
                ref: Reference | None = parse(name)
            except InvalidArgument:
                ref = None
            by_name = ref is not None and not ref.digest and db.execute(
                "SELECT 1 FROM tags WHERE name=?", (str(ref),)).fetchone() is not None
            if by_name and ref is not None and len(img.repo_tags) > 1:
                db.execute("DELETE FROM tags WHERE name=?", (str(ref),))
                return RemoveResult((ref.familiar(),), ())
            if not by_name and len(img.repo_tags) > 1 and not force:
                raise Conflict(f"unable to delete {img.id[7:19]} (must be forced) - image is "
                               "referenced in multiple repositories")
            holders = _leases(db, img.id)
            if holders and not force:
                raise Conflict(f"unable to remove image {name} (must be forced) - image is being "
                               f"used by container {holders[0][:12]}")
            untagged = list(img.repo_tags) + list(img.repo_digests)
            db.execute("DELETE FROM tags WHERE image_id=?", (img.id,))
            db.execute("DELETE FROM repo_digests WHERE image_id=?", (img.id,))
            if holders:
                # forced with users: docker keeps the image, only its names go
                return RemoveResult(tuple(untagged), ())
            db.execute("DELETE FROM images WHERE id=?", (img.id,))
        reclaimed = _sweep(ctx)
    return RemoveResult(tuple(untagged), (img.id,), reclaimed)


def _referenced(ctx: _Ctx) -> tuple[set[str], set[str]]:
    """The blobs and committed snapshots that images name, and the snapshots that
    containers' (and views') snapshots stand on."""
    with ctx.store.read() as db:
        rows = db.execute("SELECT manifest_digest, target_digest, chain_ids FROM images")
        keep_blobs: set[str] = set()
        keep_snaps: set[str] = set()
        for manifest_digest, target_digest, chains in rows:
            keep_snaps.update(json.loads(chains))
            for top in {manifest_digest, target_digest}:
                keep_blobs.add(top)
                if not ctx.content.exists(top):
                    continue
                doc = parse_manifest(ctx.content.read(top))
                if isinstance(doc, Index):
                    continue  # the platform manifest is kept through manifest_digest
                assert isinstance(doc, Manifest)
                keep_blobs.update(d.digest for d in (doc.config, *doc.layers))
    snaps = {s.key: s for s in ctx.snapshots.list()}
    for s in snaps.values():
        if s.kind != COMMITTED:  # a container's layer: its parents stay
            parent = s.parent
            while parent is not None and parent in snaps:
                keep_snaps.add(parent)
                parent = snaps[parent].parent
    return keep_blobs, keep_snaps


def _sweep(ctx: _Ctx) -> int:
    """Delete blobs and committed snapshots no image refers to, and what interrupted
    pulls, commits and loads left; return the bytes freed.  Caller holds the gc lock."""
    keep_blobs, keep_snaps = _referenced(ctx)
    reclaimed = 0
    for info in ctx.content.list():
        if info.digest not in keep_blobs:
            reclaimed += _du(ctx.content.path(info.digest))
            ctx.content.delete(info.digest)
    all_snaps = {s.key: s for s in ctx.snapshots.list()}
    snaps = [s for s in all_snaps.values() if s.kind == COMMITTED and s.key not in keep_snaps]
    depth: dict[str, int] = {}

    def d(key: str) -> int:
        if key not in depth:
            p = all_snaps[key].parent
            depth[key] = 0 if p is None else 1 + d(p)
        return depth[key]

    for s in sorted(snaps, key=lambda s: -d(s.key)):
        try:
            size = _du(ctx.snapshots.dirs / s.id)
            ctx.snapshots.remove(s.key)
            reclaimed += size
        except Conflict:
            pass  # still a parent of a container's snapshot or a kept layer
    reclaimed += ctx.snapshots.clean_orphans()
    reclaimed += ctx.content.collect_ingests()
    return reclaimed


def prune(cfg: EngineConfig, *, all_images: bool = False) -> RemoveResult:
    """``tomato image prune``: dangling images (or all unused with ``all_images``)."""
    ctx = _Ctx(cfg)
    deleted: list[str] = []
    untagged: list[str] = []
    with ctx.store.lock("gc"):
        with ctx.store.write() as db:
            for img in [_summary(db, r) for r in db.execute(f"SELECT {_COLS} FROM images")]:
                if _leases(db, img.id) or (img.repo_tags and not all_images):
                    continue
                untagged += list(img.repo_tags) + list(img.repo_digests)
                db.execute("DELETE FROM tags WHERE image_id=?", (img.id,))
                db.execute("DELETE FROM repo_digests WHERE image_id=?", (img.id,))
                db.execute("DELETE FROM images WHERE id=?", (img.id,))
                deleted.append(img.id)
        reclaimed = _sweep(ctx)
    return RemoveResult(tuple(untagged), tuple(deleted), reclaimed)


def disk_usage(cfg: EngineConfig) -> list[DfRow]:
    """``tomato system df``: the Images row and the Pull Cache row (containers and
    volumes come with the engine).

    The Pull Cache is what an interrupted pull, commit or load left: the bytes of
    downloads (the next pull resumes them), half-unpacked layers, and blobs and
    layers no image names.  Active: held by a live process, never collected; while
    a pull, commit or load runs, the blobs and layers it may be about to name count
    as active too (prune waits for it).
    """
    ctx = _Ctx(cfg)
    with ctx.store.read() as db:
        images = [_summary(db, r) for r in db.execute(f"SELECT {_COLS} FROM images")]
        leased = {r[0] for r in db.execute("SELECT DISTINCT image_id FROM image_leases")}
    sizes = {s.key: int(s.labels.get("tomato.size", "0")) for s in ctx.snapshots.list()
             if s.kind == COMMITTED}
    used_layers = {c for i in images if i.id in leased for c in i.chain_ids}
    all_layers = {c for i in images for c in i.chain_ids}
    size = sum(sizes.get(c, 0) for c in all_layers)
    reclaim = sum(sizes.get(c, 0) for c in all_layers - used_layers)
    rows = [DfRow("Images", len(images), len(leased & {i.id for i in images}), size, reclaim)]
    return [*rows, _pull_cache(ctx)]


def _pull_cache(ctx: _Ctx) -> DfRow:
    busy = _gc_busy(ctx)
    items: list[tuple[int, bool]] = []  # (bytes, live) of each thing left behind
    items += [(i.size, i.live) for i in ctx.content.ingests()]
    items += [(o.size, o.live) for o in ctx.snapshots.orphans()]
    keep_blobs, keep_snaps = _referenced(ctx)
    items += [(_du(ctx.content.path(b.digest)), busy) for b in ctx.content.list()
              if b.digest not in keep_blobs]
    items += [(_du(ctx.snapshots.dirs / s.id), busy) for s in ctx.snapshots.list()
              if s.kind == COMMITTED and s.key not in keep_snaps]
    return DfRow(PULL_CACHE, len(items), sum(live for _, live in items),
                 sum(n for n, _ in items), sum(n for n, live in items if not live))


def _gc_busy(ctx: _Ctx) -> bool:
    """Whether a pull, commit, load or import holds the gc lock now (a look, no wait)."""
    import fcntl

    fd = os.open(ctx.store.lock_dir / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# -- archives ------------------------------------------------------------------------------
def save(cfg: EngineConfig, names: list[str], output: Path, fmt: str = "docker-archive") -> None:
    from tomato.images import archive
    ctx = _Ctx(cfg)
    items = []
    with ctx.store.read() as db:
        for name in names:
            img = _find(db, name)
            full = tuple(r[0] for r in db.execute(
                "SELECT name FROM tags WHERE image_id=? ORDER BY name", (img.id,)))
            try:
                ref = parse(name)
                chosen = tuple(t for t in full if t == str(ref)) or full
            except InvalidArgument:
                chosen = full
            items.append(archive.SaveItem(img.manifest_digest, chosen,
                                          tuple(parse(t).familiar() for t in chosen)))
    archive.save(ctx.content, items, output, fmt)


def load(cfg: EngineConfig, source: Path | None, *, stream: Any = None) -> list[ImageSummary]:
    """``tomato load``: the images of an archive (a path, or a ``stream`` such as stdin)."""
    from tomato.images import archive
    from tomato.images.pull import unpack as _unpack
    ctx = _Ctx(cfg)
    out = []
    if stream is None and source is None:
        raise InvalidArgument("load needs an archive")
    what = "loading " + (str(source) if stream is None else "images")
    archive_in = stream if stream is not None else source
    assert archive_in is not None
    with _disk_space(cfg, what), ctx.store.lock("gc", shared=True):
        for item in archive.load(ctx.content, archive_in):
            chains, size = _unpack(item.manifest_digest, ctx.stores)
            manifest = load_manifest(ctx.content, item.manifest_digest)
            names = []
            for n in item.names:
                try:
                    names.append(parse(n))
                except InvalidArgument:
                    pass  # a bare OCI ref name like "latest" names no repository
            out.append(_record(ctx, None, image_id=manifest.config.digest,
                               manifest_digest=item.manifest_digest,
                               target_digest=item.manifest_digest, chain_ids=chains, size=size,
                               names=names))
    return out


def import_image(cfg: EngineConfig, source: Path | None, *, reference: str | None = None,
                 config: dict[str, Any] | None = None, message: str = "",
                 stream: Any = None) -> ImageSummary:
    """``tomato import``: a rootfs tarball (path, or ``stream``) becomes an image."""
    from tomato.images.importer import import_tarball
    from tomato.images.pull import unpack as _unpack
    ctx = _Ctx(cfg)
    ref = parse(reference) if reference else None
    with _disk_space(cfg, f"importing {source or '-'}"), ctx.store.lock("gc", shared=True):
        if stream is None:
            if source is None:
                raise InvalidArgument("import needs a tarball")
            try:
                src = open(source, "rb")
            except FileNotFoundError as err:
                raise NotFound(f"no such file: {source}") from err
        else:
            src = stream
        with src:
            digest = import_tarball(ctx.content, src, platform=cfg.platform or host_platform(),
                                    config=config, comment=message,
                                    source=str(source or "-"))
        chains, size = _unpack(digest, ctx.stores)
        manifest = load_manifest(ctx.content, digest)
        return _record(ctx, None, image_id=manifest.config.digest, manifest_digest=digest,
                       target_digest=digest, chain_ids=chains, size=size,
                       names=[ref] if ref else [])


__all__ = ["EngineConfig", "ImageSummary", "ImageDetail", "HistoryEntry", "RemoveResult",
           "DfRow", "pull", "push", "login", "logout", "list_images", "get_image", "inspect",
           "history", "tag", "remove", "prune", "disk_usage", "save", "load", "import_image",
           "prepare_rootfs", "rootfs_mounts", "release_rootfs", "is_local"]


def is_local(host: str) -> bool:
    from tomato.images.registry import is_local as _is_local

    return _is_local(host)
