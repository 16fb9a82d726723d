"""The build cache: which image a Dockerfile step on a given parent made before.

A step's key is a hash of its parent image, its instruction as the build reads
it (variables expanded, build args in effect) and, for COPY and ADD, the contents
of what it copies (builder.cachekeys).  The value is the image the step made,
an ordinary untagged image record -- as Docker's classic builder keeps its
intermediate images -- so a hit is one lookup and the next step goes on from it.

The index is ``ROOT/builder/cache.db`` (sqlite, WAL).  An entry whose image is gone
(``rmi``, ``image prune -a``) is a miss.  ``prune`` (``tomato builder prune``,
``POST /build/prune``) forgets every entry and removes the images only the cache
kept (untagged, not used by a container), then collects their blobs and layers;
``usage`` is the "Build Cache" row of ``system df``.  The steps' images are not
listed by ``images`` unless ``-a`` (Docker's intermediate images).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tomato import sqlitedb as sqlite3
from tomato.engine.config import EngineConfig
from tomato.engine.images import DfRow, _Ctx, _leases, _sweep
from tomato.errors import Unavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    key      TEXT PRIMARY KEY,   -- sha256 of parent + instruction (+ files)
    image_id TEXT NOT NULL,      -- the image the step made
    parent   TEXT NOT NULL,      -- the image it was made on ("" for scratch)
    step     TEXT NOT NULL,      -- the instruction, for people
    created  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_image ON steps(image_id);
"""

ROW = "Build Cache"


@dataclass(frozen=True)
class Entry:
    key: str
    image_id: str
    parent: str
    step: str
    created: float


@dataclass(frozen=True)
class PruneResult:
    deleted: tuple[str, ...]  # images removed
    entries: int  # cache entries forgotten
    reclaimed: int  # bytes freed


def cache_path(root: Path) -> Path:
    return Path(root) / "builder" / "cache.db"


class BuildCache:
    """The index of one engine root; one connection, opened on first use."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = cache_path(root)
        self._db: sqlite3.Connection | None = None
        self._store: Any = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
            except sqlite3.OperationalError as err:
                raise Unavailable(f"the build cache ({self.path}): {err}") from err
            os.chmod(self.path, 0o600)
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def lookup(self, key: str) -> str | None:
        row = self._conn().execute("SELECT image_id FROM steps WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    def hit(self, key: str) -> tuple[str, int] | None:
        """The image step ``key`` made and how many layers it has, if it is still there
        (an entry whose image went, with rmi or image prune -a, is forgotten)."""
        image_id = self.lookup(key)
        if image_id is None:
            return None
        if self._store is None:
            from tomato.engine.store import Store

            self._store = Store(self.root)
        with self._store.read() as db:
            row = db.execute("SELECT chain_ids FROM images WHERE id=?", (image_id,)).fetchone()
        if row is None:
            self.forget(key)
            return None
        return image_id, len(json.loads(row[0]))

    def record(self, key: str, image_id: str, parent: str, step: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?)",
                       (key, image_id, parent, step, time.time()))

    def forget(self, key: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM steps WHERE key=?", (key,))

    def entries(self) -> list[Entry]:
        if not self.path.exists():
            return []
        rows = self._conn().execute("SELECT key, image_id, parent, step, created FROM steps "
                                    "ORDER BY created").fetchall()
        return [Entry(*r) for r in rows]

    def image_ids(self) -> set[str]:
        if not self.path.exists():
            return set()
        return {r[0] for r in self._conn().execute("SELECT DISTINCT image_id FROM steps")}


def cached_images(cfg: EngineConfig) -> set[str]:
    """The image ids the build cache names (``images`` hides the untagged ones)."""
    cache = BuildCache(cfg.root)
    try:
        return cache.image_ids()
    finally:
        cache.close()


def _cache_only(ctx: _Ctx, ids: set[str]) -> tuple[set[str], set[str]]:
    """Of ``ids``: the images the cache alone keeps (no name, no container), and the
    rest (tagged or in use)."""
    alone: set[str] = set()
    kept: set[str] = set()
    with ctx.store.read() as db:
        for image_id in ids:
            named = db.execute("SELECT 1 FROM tags WHERE image_id=? UNION ALL SELECT 1 FROM "
                               "repo_digests WHERE image_id=? LIMIT 1",
                               (image_id, image_id)).fetchone()
            exists = db.execute("SELECT 1 FROM images WHERE id=?", (image_id,)).fetchone()
            if not exists:
                continue
            (kept if named or _leases(db, image_id) else alone).add(image_id)
    return alone, kept


def prune(cfg: EngineConfig) -> PruneResult:
    """Forget the whole build cache and remove what only it kept."""
    from tomato.engine import leftovers

    leftovers.sweep(cfg)
    ctx = _Ctx(cfg)
    cache = BuildCache(cfg.root)
    try:
        with ctx.store.lock("gc"):
            entries = cache.entries()
            alone, _ = _cache_only(ctx, {e.image_id for e in entries})
            with ctx.store.write() as db:
                for image_id in alone:
                    if _leases(db, image_id):
                        continue
                    db.execute("DELETE FROM images WHERE id=?", (image_id,))
            with cache._write() as cdb:
                cdb.execute("DELETE FROM steps")
            reclaimed = _sweep(ctx)
        import shutil

        shutil.rmtree(cfg.root / "builder" / "digests", ignore_errors=True)  # file hashes
    finally:
        cache.close()
    return PruneResult(tuple(sorted(alone)), len(entries), reclaimed)


@dataclass(frozen=True)
class Record:
    """One cache entry as `system df` tells it (Docker's BuildCache records)."""

    id: str  # the entry's key, short
    step: str
    image_id: str
    size: int  # the bytes of the layer the step added, when only the cache holds it
    in_use: bool  # its image is named or used by a container
    shared: bool  # its layer is also an image's that the cache does not hold
    created: float


def records(cfg: EngineConfig) -> list[Record]:
    ctx = _Ctx(cfg)
    cache = BuildCache(cfg.root)
    try:
        entries = cache.entries()
    finally:
        cache.close()
    alone, kept = _cache_only(ctx, {e.image_id for e in entries})
    with ctx.store.read() as db:
        rows = db.execute("SELECT id, chain_ids FROM images").fetchall()
    chains = {image_id: json.loads(c) for image_id, c in rows}
    outside = {c for i, cs in chains.items() if i not in alone for c in cs}
    sizes = {s.key: int(s.labels.get("tomato.size", "0")) for s in ctx.snapshots.list()}
    out, counted = [], set()
    for e in entries:
        own = chains.get(e.image_id) or []
        parent = chains.get(e.parent) or []
        layer = own[-1] if len(own) > len(parent) else None
        shared = layer is not None and layer in outside
        size = sizes.get(layer, 0) if layer and not shared and layer not in counted else 0
        if layer:
            counted.add(layer)
        out.append(Record(e.key.removeprefix("sha256:")[:25], e.step, e.image_id, size,
                          e.image_id in kept, shared, e.created))
    return out


def usage(cfg: EngineConfig) -> DfRow:
    """The "Build Cache" row of ``system df``: entries, those whose image is in use or
    named, and the bytes of the layers only the cache holds."""
    found = records(cfg)
    size = sum(r.size for r in found)
    reclaimable = sum(r.size for r in found if not r.in_use)
    return DfRow(ROW, len(found), sum(r.in_use for r in found), size, reclaimable)


def visible(cfg: EngineConfig, images: list[Any]) -> list[Any]:
    """``images`` without the build's intermediate ones: untagged, and the parent of
    another step (``images`` shows them with ``-a``, as Docker does).  A build's
    untagged result has no child: it is listed, as Docker's ``<none>``."""
    cache = BuildCache(cfg.root)
    try:
        parents = {e.parent for e in cache.entries()}
    finally:
        cache.close()
    return [i for i in images if i.repo_tags or i.repo_digests or i.id not in parents]


__all__ = ["BuildCache", "Entry", "PruneResult", "Record", "cached_images", "prune", "records",
           "usage", "visible", "ROW"]
