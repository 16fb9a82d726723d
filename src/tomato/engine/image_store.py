"""The engine's image records and what holds an image: the ``images``, ``tags`` and
``repo_digests`` tables (names resolved the way docker resolves them), and the
leases a container's writable snapshot takes on its image (``image_leases``).

images.py's use cases (pull, rmi, prune...) and the container's side (create,
start, rm, leftovers) both stand on this; it imports neither.
"""

from __future__ import annotations

import json
import time

from tomato import sqlitedb as sqlite3
from tomato.errors import InvalidArgument, NotFound
from tomato.images.content import ContentStore
from tomato.images.manifest import Platform, load_config, load_manifest
from tomato.images.reference import Reference, is_image_id, parse
from tomato.images.snapshots import Mount, Snapshotter
from tomato.records import record as dataclass

from .config import EngineConfig
from .store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from tomato.images.pull import PulledImage, Stores


@dataclass(frozen=True)
class ImageSummary:
    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    manifest_digest: str
    target_digest: str
    chain_ids: tuple[str, ...]
    size: int
    created: str | None
    added: float

    @property
    def top_layer(self) -> str | None:
        """The chain ID a container's writable snapshot goes on top of."""
        return self.chain_ids[-1] if self.chain_ids else None


@dataclass(frozen=True)
class ImageDetail:
    summary: ImageSummary
    config: dict[str, Any]
    platform: Platform
    diff_ids: tuple[str, ...]
    history: tuple[dict[str, Any], ...]
    manifest_media_type: str

    def to_docker(self) -> dict[str, Any]:
        s = self.summary
        return {
            "Id": s.id, "RepoTags": list(s.repo_tags), "RepoDigests": list(s.repo_digests),
            "Created": s.created or "", "Size": s.size,
            "Architecture": self.platform.architecture, "Os": self.platform.os,
            **({"Variant": self.platform.variant} if self.platform.variant else {}),
            "Config": self.config,
            "RootFS": {"Type": "layers", "Layers": list(self.diff_ids)},
            "Metadata": {"LastTagTime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                      time.gmtime(s.added))},
            "Descriptor": {"mediaType": self.manifest_media_type,
                           "digest": s.manifest_digest},
        }


@dataclass(frozen=True)
class HistoryEntry:
    id: str
    created: str
    created_by: str
    size: int
    comment: str
    empty_layer: bool


@dataclass(frozen=True)
class RemoveResult:
    untagged: tuple[str, ...]
    deleted: tuple[str, ...]
    reclaimed: int = 0


@dataclass(frozen=True)
class DfRow:
    type: str
    total: int
    active: int
    size: int
    reclaimable: int


#: the ``system df`` row of what interrupted pulls (commits, loads) left
PULL_CACHE = "Pull Cache"


class ImageContext:
    """The stores an image use case works on: records, content, snapshots."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self.store = Store(cfg.root)
        self.content = ContentStore(cfg.root / "content")
        self.snapshots = Snapshotter(cfg.root / "snapshots")

    @property
    def stores(self) -> Stores:
        from tomato.images.pull import Stores

        remap = self.cfg.userns_remap
        shift = None if remap is None else (remap.uid_start, remap.uid_count,
                                            remap.gid_start, remap.gid_count)
        return Stores(self.content, self.snapshots, shift)


IMAGE_COLUMNS = "id, manifest_digest, target_digest, chain_ids, size, created, added"


def summary_of(db: sqlite3.Connection, row: tuple[Any, ...]) -> ImageSummary:
    tags = tuple(r[0] for r in db.execute(
        "SELECT name FROM tags WHERE image_id=? ORDER BY name", (row[0],)))
    digests = tuple(r[0] for r in db.execute(
        "SELECT name FROM repo_digests WHERE image_id=? ORDER BY name", (row[0],)))
    fam = tuple(parse(t).familiar() for t in tags)
    famd = tuple(parse(d).familiar() for d in digests)
    return ImageSummary(row[0], fam, famd, row[1], row[2], tuple(json.loads(row[3])),
                        row[4], row[5], row[6])


def find_image(db: sqlite3.Connection, name: str) -> ImageSummary:
    """Resolve a name, a name@digest or a (short) image ID the way docker does."""
    row = None
    try:
        ref: Reference | None = parse(name)
    except InvalidArgument:
        ref = None
    if ref is not None and ref.digest:
        hit = db.execute("SELECT image_id FROM repo_digests WHERE name=?",
                         (f"{ref.repository}@{ref.digest}",)).fetchone()
        if hit:
            row = db.execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE id=?", hit).fetchone()
    elif ref is not None:
        hit = db.execute("SELECT image_id FROM tags WHERE name=?", (str(ref),)).fetchone()
        if hit:
            row = db.execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE id=?", hit).fetchone()
    if row is None and is_image_id(name):
        prefix = name if name.startswith("sha256:") else "sha256:" + name
        rows = db.execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE id LIKE ?",
                          (prefix + "%",)).fetchall()
        if len(rows) > 1:
            raise InvalidArgument(f"image id prefix {name} is ambiguous")
        row = rows[0] if rows else None
    if row is None:
        raise NotFound(f"no such image: {name}")
    return summary_of(db, row)


def record_image(ctx: ImageContext, image: PulledImage | None, *, image_id: str,
                 manifest_digest: str, target_digest: str, chain_ids: tuple[str, ...],
                 size: int, names: list[Reference]) -> ImageSummary:
    """Insert or refresh an image's row and its names; the summary as recorded."""
    created = load_config(ctx.content, load_manifest(ctx.content, manifest_digest)).created
    with ctx.store.write() as db:
        db.execute(f"INSERT INTO images ({IMAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?) "
                   "ON CONFLICT(id) DO UPDATE SET manifest_digest=excluded.manifest_digest, "
                   "target_digest=excluded.target_digest, added=excluded.added",
                   (image_id, manifest_digest, target_digest, json.dumps(chain_ids), size,
                    created, time.time()))
        for ref in names:
            if ref.tag:
                db.execute("INSERT OR REPLACE INTO tags VALUES (?,?)",
                           (str(ref.with_tag(ref.tag)), image_id))
        if image is not None and image.reference is not None:
            db.execute("INSERT OR REPLACE INTO repo_digests VALUES (?,?)",
                       (f"{image.reference.repository}@{target_digest}", image_id))
        return find_image(db, image_id)


# -- a container's rootfs: a snapshot over the image's layers, and a lease on it -----
def prepare_rootfs(cfg: EngineConfig, image: str, key: str) -> list[Mount]:
    """A writable snapshot ``key`` over ``image``'s layers; the image is leased to ``key``.

    Returns the mounts: one overlay with lowerdir/upperdir/workdir options (or a bind
    mount for an image with no layers).
    """
    ctx = ImageContext(cfg)
    # shared gc lock: a concurrent sweep must not take the new snapshot dir for an orphan
    with ctx.store.lock("gc", shared=True):
        with ctx.store.write() as db:
            img = find_image(db, image)
            db.execute("INSERT OR IGNORE INTO image_leases VALUES (?,?)", (img.id, key))
        try:
            return ctx.snapshots.prepare(key, img.top_layer, {"tomato.image": img.id})
        except BaseException:
            with ctx.store.write() as db:
                db.execute("DELETE FROM image_leases WHERE holder=?", (key,))
            raise


def rootfs_mounts(cfg: EngineConfig, key: str) -> list[Mount]:
    return ImageContext(cfg).snapshots.mounts(key)


def release_rootfs(cfg: EngineConfig, key: str) -> None:
    """Remove the container's snapshot (unmount it first) and its lease on the image."""
    ctx = ImageContext(cfg)
    try:
        ctx.snapshots.remove(key)
    except NotFound:
        pass
    with ctx.store.write() as db:
        db.execute("DELETE FROM image_leases WHERE holder=?", (key,))
