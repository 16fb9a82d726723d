"""An overlayfs snapshotter in containerd's shape.

Snapshots are directories ``ROOT/snapshots/<id>/fs`` (+ ``work`` for active ones)
with metadata in ``ROOT/metadata.db`` (sqlite, WAL, every write one
``BEGIN IMMEDIATE`` transaction, so several tomato processes may share it).

    committed   read-only, named (image layers are named by their chain ID), may be a parent
    active      writable upper over a committed parent (a container's rootfs)
    view        read-only stack of a committed parent

``prepare``/``view`` return the mounts to perform; the snapshotter itself never
mounts.  Image layers are unpacked into a *staging* directory (no parent needed,
so layers of one image unpack in parallel) and committed by chain ID; if the
chain ID already exists the staging copy is dropped and the existing one is
shared.

A snapshot directory is flock(2)ed by the process making it until its record is
written (a staging directory: until it is committed or discarded), so a directory
with no record is either being made by a live process (locked) or was left by a
dead one (``orphans``, removed by ``clean_orphans``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tomato import sqlitedb as sqlite3
from tomato.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NoSpace,
    NotFound,
    Unavailable,
)
from tomato.records import field
from tomato.records import record as dataclass

COMMITTED, ACTIVE, VIEW = "committed", "active", "view"
_List = list  # the class defines a list() method that shadows the builtin in annotations

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    key     TEXT PRIMARY KEY,
    id      TEXT NOT NULL UNIQUE,
    kind    TEXT NOT NULL,
    parent  TEXT REFERENCES snapshots(key),
    created REAL NOT NULL,
    labels  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);
"""


def _rmtree(path: str | os.PathLike[str], ignore_errors: bool = True) -> None:
    import shutil  # ~2 ms (with bz2, lzma): only when a snapshot goes

    shutil.rmtree(path, ignore_errors=ignore_errors)


@dataclass(frozen=True)
class Mount:
    """One mount(2) to perform: ``mount -t TYPE -o OPTIONS SOURCE TARGET``."""

    type: str
    source: str
    options: tuple[str, ...] = ()

    def option(self, name: str) -> str | None:
        """The value of ``name=value`` in options (``lowerdir``, ``upperdir``, ``workdir``)."""
        prefix = name + "="
        for opt in self.options:
            if opt.startswith(prefix):
                return opt[len(prefix):]
        return None

    @property
    def lowerdirs(self) -> _List[str]:
        value = self.option("lowerdir")
        return value.split(":") if value else []


@dataclass(frozen=True)
class Info:
    key: str
    id: str
    kind: str
    parent: str | None
    created: float
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Staging:
    """A directory to unpack one layer into before ``commit_staged``; ``lock`` is the
    descriptor holding its flock, closed by ``commit_staged`` or ``discard``."""

    id: str
    path: Path
    lock: int = -1


@dataclass(frozen=True)
class Orphan:
    """A snapshot directory with no record: ``live`` while its maker still holds it."""

    id: str
    size: int
    live: bool


def _lock_dir(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _unlock(fd: int) -> None:
    if fd >= 0:
        os.close(fd)


def _failure(err: Exception, root: Path) -> Exception:
    if "full" in str(err) or sqlite3.disk_full(root):
        return NoSpace(f"no space left on device while writing the snapshots' records "
                       f"({root / 'metadata.db'})")
    return Unavailable(f"the snapshots' records ({root / 'metadata.db'}): {err}")


class Snapshotter:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.dirs = self.root / "snapshots"
        self.dirs.mkdir(parents=True, exist_ok=True)
        self._db_path = self.root / "metadata.db"
        try:
            db = sqlite3.connect(self._db_path, timeout=60)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
            finally:
                db.close()
        except sqlite3.OperationalError as err:
            # A full disk: reads still work on the file as it stands (see _db), and
            # removals free space before they write.
            if not (self._db_path.exists() and sqlite3.disk_full(self.root)):
                raise _failure(err, self.root) from err

    # -- metadata -----------------------------------------------------------
    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self._db_path, timeout=60, isolation_level=None)
        try:
            try:
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                if not write:
                    db.execute("SELECT 1 FROM sqlite_master LIMIT 1")  # opens -wal, -shm
            except sqlite3.OperationalError as err:
                frozen = None if write else sqlite3.frozen_reader(self._db_path)
                if frozen is None:
                    raise _failure(err, self.root) from err
                db.close()
                db = frozen
                db.execute("BEGIN")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as err:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.OperationalError:
                        pass  # (a full disk: sqlite has rolled back already)
                if isinstance(err, sqlite3.OperationalError):
                    raise _failure(err, self.root) from err
                raise
        finally:
            db.close()

    @staticmethod
    def _row(row: tuple) -> Info:  # type: ignore[type-arg]
        return Info(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))

    def _get(self, db: sqlite3.Connection, key: str) -> Info:
        row = db.execute("SELECT key,id,kind,parent,created,labels FROM snapshots WHERE key=?",
                         (key,)).fetchone()
        if row is None:
            raise NotFound(f"snapshot {key} not found")
        return self._row(row)

    def _chain(self, db: sqlite3.Connection, key: str | None) -> _List[Info]:
        out = []
        while key is not None:
            info = self._get(db, key)
            out.append(info)
            key = info.parent
        return out

    def fs_path(self, info: Info) -> Path:
        return self.dirs / info.id / "fs"

    # -- queries ------------------------------------------------------------
    def stat(self, key: str) -> Info:
        with self._db() as db:
            return self._get(db, key)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
            return True
        except NotFound:
            return False

    def list(self) -> _List[Info]:
        with self._db() as db:
            rows = db.execute("SELECT key,id,kind,parent,created,labels FROM snapshots").fetchall()
        return [self._row(r) for r in rows]

    def usage(self, key: str) -> int:
        """Bytes used by this snapshot's own directory (not its parents)."""
        from tomato._sys.fdtree import disk_usage

        # through fds: an active snapshot's upper directory is the container's to change
        return disk_usage(self.fs_path(self.stat(key)))

    def mounts(self, key: str) -> _List[Mount]:
        with self._db() as db:
            chain = self._chain(db, key)
        info = chain[0]
        lowers = [str(self.fs_path(i)) for i in chain[1:]]
        if info.kind == ACTIVE:
            if not lowers:
                return [Mount("bind", str(self.fs_path(info)), ("rbind", "rw"))]
            return [Mount("overlay", "overlay", (
                "lowerdir=" + ":".join(lowers),
                "upperdir=" + str(self.fs_path(info)),
                "workdir=" + str(self.dirs / info.id / "work"),
            ))]
        # view or committed: read-only stack of the whole chain
        lowers = [str(self.fs_path(i)) for i in (chain if info.kind == COMMITTED else chain[1:])]
        if len(lowers) == 1:
            return [Mount("bind", lowers[0], ("rbind", "ro"))]
        if not lowers:
            raise InvalidArgument(f"view {key} has no parent to show")
        return [Mount("overlay", "overlay", ("lowerdir=" + ":".join(lowers),))]

    # -- changes ------------------------------------------------------------
    def _new_dir(self, active: bool) -> tuple[str, Path, int]:
        """A new snapshot directory, locked (the descriptor is returned) until recorded.

        Between mkdir and flock a sweeper (``clean_orphans``) may take the empty
        directory for a dead process's: then it is gone, and we make another.
        """
        while True:
            sid = os.urandom(6).hex()
            path = self.dirs / sid
            path.mkdir()
            try:
                lock = _lock_dir(path)
            except FileNotFoundError:
                continue
            if os.fstat(lock).st_nlink:
                break
            _unlock(lock)  # removed while we waited for the lock
        try:
            (path / "fs").mkdir(mode=0o755)
            if active:
                (path / "work").mkdir(mode=0o700)
        except BaseException:
            _rmtree(path)
            _unlock(lock)
            raise
        return sid, path, lock

    def _create(self, kind: str, key: str, parent: str | None,
                labels: dict[str, str] | None) -> _List[Mount]:
        sid, path, lock = self._new_dir(kind == ACTIVE)
        try:
            with self._db(write=True) as db:
                if parent is not None:
                    p = self._get(db, parent)
                    if p.kind != COMMITTED:
                        raise InvalidArgument(f"parent {parent} is not a committed snapshot")
                try:
                    db.execute("INSERT INTO snapshots VALUES (?,?,?,?,?,?)",
                               (key, sid, kind, parent, time.time(), json.dumps(labels or {})))
                except sqlite3.IntegrityError as err:
                    raise AlreadyExists(f"snapshot {key} already exists") from err
        except BaseException:
            _rmtree(path, ignore_errors=True)
            raise
        finally:
            _unlock(lock)
        return self.mounts(key)

    def prepare(self, key: str, parent: str | None = None,
                labels: dict[str, str] | None = None) -> _List[Mount]:
        """A new writable snapshot over ``parent``; returns the mounts for its rootfs."""
        return self._create(ACTIVE, key, parent, labels)

    def view(self, key: str, parent: str, labels: dict[str, str] | None = None) -> _List[Mount]:
        """A read-only snapshot of ``parent``."""
        return self._create(VIEW, key, parent, labels)

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> Info:
        """Turn active snapshot ``key`` into committed snapshot ``name`` (read-only from now)."""
        with self._db(write=True) as db:
            info = self._get(db, key)
            if info.kind != ACTIVE:
                raise InvalidArgument(f"snapshot {key} is not active")
            if db.execute("SELECT 1 FROM snapshots WHERE key=?", (name,)).fetchone():
                raise AlreadyExists(f"snapshot {name} already exists")
            merged = {**info.labels, **(labels or {})}
            db.execute("UPDATE snapshots SET key=?, kind=?, labels=? WHERE key=?",
                       (name, COMMITTED, json.dumps(merged), key))
        _rmtree(self.dirs / info.id / "work", ignore_errors=True)
        return self.stat(name)

    def stage(self) -> Staging:
        sid, path, lock = self._new_dir(active=False)
        return Staging(sid, path / "fs", lock)

    def discard(self, staging: Staging) -> None:
        _rmtree(staging.path.parent, ignore_errors=True)
        _unlock(staging.lock)

    def commit_staged(self, staging: Staging, name: str, parent: str | None,
                      labels: dict[str, str] | None = None) -> Info:
        """Commit an unpacked layer as ``name``; if it already exists, share that one."""
        with self._db(write=True) as db:
            row = db.execute("SELECT key,id,kind,parent,created,labels FROM snapshots "
                             "WHERE key=?", (name,)).fetchone()
            if row is None:
                if parent is not None and self._get(db, parent).kind != COMMITTED:
                    raise InvalidArgument(f"parent {parent} is not a committed snapshot")
                created = time.time()
                db.execute("INSERT INTO snapshots VALUES (?,?,?,?,?,?)",
                           (name, staging.id, COMMITTED, parent, created,
                            json.dumps(labels or {})))
        if row is None:
            _unlock(staging.lock)  # recorded: an ordinary committed snapshot from now on
            return self._row((name, staging.id, COMMITTED, parent, created,
                              json.dumps(labels or {})))
        self.discard(staging)
        return self._row(row)

    def remove(self, key: str) -> None:
        """Remove a snapshot that no other snapshot uses as parent (its mounts must be gone).

        Its files go first, its record after: on a full disk the space freed is what
        lets the record be written (a record left behind by a crash in between names
        an empty directory, and removing it again finishes the job)."""
        with self._db() as db:
            info = self._get(db, key)
            child = db.execute("SELECT key FROM snapshots WHERE parent=? LIMIT 1",
                               (key,)).fetchone()
        if child:
            raise Conflict(f"snapshot {key} is the parent of {child[0]}")
        _rmtree(self.dirs / info.id, ignore_errors=True)
        with self._db(write=True) as db:
            db.execute("DELETE FROM snapshots WHERE key=?", (key,))

    # -- what interrupted makers left ------------------------------------------------
    def _unrecorded(self) -> Iterator[tuple[str, str]]:
        with self._db() as db:
            ids = {r[0] for r in db.execute("SELECT id FROM snapshots")}
        for entry in os.scandir(self.dirs):
            if entry.name not in ids:
                yield entry.name, entry.path

    @staticmethod
    def _claim(path: str) -> int:
        """The directory's lock if nobody holds it (its maker is dead), else -1."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return -2
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return -1
            raise
        return fd

    def orphans(self) -> _List[Orphan]:
        """Snapshot directories without a record: being made (live) or left by the dead."""
        from .content import disk_usage

        out = []
        for sid, path in self._unrecorded():
            fd = self._claim(path)
            _unlock(fd)
            out.append(Orphan(sid, disk_usage(path), fd == -1))
        return out

    def clean_orphans(self, count: bool = True) -> int:
        """Delete the snapshot directories no record points at and no live process is
        making (an interrupted pull's or commit's extraction); return the bytes freed
        (0 unless ``count``).  Safe beside live makers: a directory is taken only with
        its lock, and only if it is still unrecorded then (a maker records, then unlocks)."""
        from .content import disk_usage

        freed = 0
        for sid, path in self._unrecorded():
            fd = self._claim(path)
            if fd < 0:
                continue  # a live maker's (or gone)
            try:
                with self._db() as db:
                    if db.execute("SELECT 1 FROM snapshots WHERE id=?", (sid,)).fetchone():
                        continue  # recorded since we looked: a snapshot now
                if count:
                    freed += disk_usage(path)
                _rmtree(path, ignore_errors=True)
            finally:
                _unlock(fd)
        return freed


__all__ = ["Snapshotter", "Mount", "Info", "Staging", "Orphan", "COMMITTED", "ACTIVE", "VIEW"]
