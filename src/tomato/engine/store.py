"""The engine's metadata store: one sqlite database, ``ROOT/tomato.db``.

Discipline, so any number of ``tomato`` processes can share it:

- WAL mode (readers never block the writer) and a generous busy timeout.
- Every change is one short ``BEGIN IMMEDIATE`` transaction taken through
  ``Store.write()``; reads use ``Store.read()``.  No transaction spans network
  I/O or unpacking: do the slow work first, then record it in one transaction.
- Long operations that must not interleave with garbage collection take
  ``Store.lock("gc", shared=True)`` (pull, load, import, build) while
  ``image prune`` / GC take it exclusively.  These are flock(2) locks on
  ``ROOT/locks/NAME.lock``: released by the kernel if the process dies.
- The schema is versioned with ``PRAGMA user_version``; engine modules add
  their tables by appending to ``MIGRATIONS`` (never edit a released step).
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from tomato import sqlitedb as sqlite3
from tomato.errors import InvalidArgument, NoSpace, TomatoError, Unavailable
from tomato.files import keep_reserve, make_private

MIGRATIONS: list[str] = [
    # 1: images and their names
    """
    CREATE TABLE images (
        id              TEXT PRIMARY KEY,        -- config digest (the image ID)
        manifest_digest TEXT NOT NULL,           -- the platform's image manifest
        target_digest   TEXT NOT NULL,           -- what a name resolved to (index or manifest)
        chain_ids       TEXT NOT NULL,           -- json list, bottom layer first
        size            INTEGER NOT NULL,        -- unpacked bytes
        created         TEXT,                    -- from the image config
        added           REAL NOT NULL            -- when this engine got it
    );
    CREATE TABLE tags (
        name     TEXT PRIMARY KEY,               -- docker.io/library/busybox:latest
        image_id TEXT NOT NULL REFERENCES images(id)
    );
    CREATE INDEX tags_image ON tags(image_id);
    CREATE TABLE repo_digests (
        name     TEXT PRIMARY KEY,               -- docker.io/library/busybox@sha256:...
        image_id TEXT NOT NULL REFERENCES images(id)
    );
    CREATE INDEX repo_digests_image ON repo_digests(image_id);
    -- who uses an image (a container id, a build): rmi refuses while any holder exists
    CREATE TABLE image_leases (
        image_id TEXT NOT NULL,
        holder   TEXT NOT NULL,
        PRIMARY KEY (image_id, holder)
    );
    """,
    # 2: containers (engine/containers.py); IF NOT EXISTS: older roots made it on open
    """
    CREATE TABLE IF NOT EXISTS containers (
        id       TEXT PRIMARY KEY,
        name     TEXT NOT NULL UNIQUE,
        image    TEXT NOT NULL,           -- what the user typed
        image_id TEXT NOT NULL,
        created  REAL NOT NULL,
        options  TEXT NOT NULL,           -- json: the run options
        spec     TEXT NOT NULL,           -- json: the OCI config.json
        state    TEXT NOT NULL            -- json: State
    );
    """,
    # 3: networks, their endpoints (IP leases) and published ports (engine/networks.py);
    # ipam_cursor: the last address handed out per network, so a freed one is not reused
    # at once (the dying netns of its last owner may still hold it for a moment)
    """
    CREATE TABLE IF NOT EXISTS networks (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, subnet TEXT NOT NULL,
        gateway TEXT NOT NULL, internal INTEGER NOT NULL, bridge TEXT NOT NULL UNIQUE,
        created REAL NOT NULL, labels TEXT NOT NULL, builtin INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS endpoints (
        network_id TEXT NOT NULL, container_id TEXT NOT NULL, ip TEXT NOT NULL,
        ipnum INTEGER NOT NULL, mac TEXT NOT NULL, ifname TEXT NOT NULL, veth TEXT NOT NULL,
        aliases TEXT NOT NULL, PRIMARY KEY (network_id, container_id),
        UNIQUE (network_id, ipnum));
    CREATE TABLE IF NOT EXISTS ports (
        container_id TEXT NOT NULL, proto TEXT NOT NULL, host_ip TEXT NOT NULL,
        host_port INTEGER NOT NULL, container_ip TEXT NOT NULL,
        container_port INTEGER NOT NULL, UNIQUE (proto, host_ip, host_port));
    CREATE TABLE IF NOT EXISTS ipam_cursor (
        network_id TEXT PRIMARY KEY, last INTEGER NOT NULL);
    """,
    # 4: no table: the step at which a root made by an older tomato is closed to other
    # users (see _close_older_root), since its files were made readable
    """
    -- private state (the root 0710, config.json and monitor.json 0600)
    """,
    # 5: IPv6 (issue 19): a network's second subnet and gateway (`network create --ipv6`),
    # a container's IPv6 address on it, the IPv6 address a published port goes to
    """
    ALTER TABLE networks ADD COLUMN subnet6 TEXT NOT NULL DEFAULT '';
    ALTER TABLE networks ADD COLUMN gateway6 TEXT NOT NULL DEFAULT '';
    ALTER TABLE endpoints ADD COLUMN ip6 TEXT NOT NULL DEFAULT '';
    ALTER TABLE ports ADD COLUMN container_ip6 TEXT NOT NULL DEFAULT '';
    """,
]
#: the migration after which an older root is made private
PRIVATE_FROM = 4

_LOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


#: open connections, one per (process, thread, database file): a `tomato run` makes two
#: dozen transactions, and opening a connection for each -- and, closing the last one,
#: checkpointing and deleting the WAL -- cost more than the transactions.  A process
#: cache, as sys.modules is.  Never carried across fork() into a child that uses the
#: store (sqlite's lock bookkeeping is copied with it, while its locks are not): the
#: forking code calls ``forget_connections`` first, and a child that finds connections
#: of its parent's here refuses to open one of its own (``_check_not_inherited``).
_OPEN: dict[tuple[int, int, Path], tuple[sqlite3.Connection, tuple[int, int]]] = {}


class InheritedConnections(RuntimeError):
    """A fork carried the parent's sqlite connections into a child that uses the store."""


def _check_not_inherited(pid: int) -> None:
    inherited = [key for key in _OPEN if key[0] != pid]
    if inherited:
        raise InheritedConnections(
            f"process {pid} was forked with {len(inherited)} open sqlite connection(s) of "
            f"process {inherited[0][0]}: its code must call store.forget_connections() "
            "before fork()")


def forget_connections() -> None:
    """Close this process's connections: call before fork() when the child will use
    the store (sqlite's locks and WAL index do not survive a fork)."""
    pid = os.getpid()
    for key in [k for k in _OPEN if k[0] == pid]:
        db, _ = _OPEN.pop(key)
        db.close()


def forget_thread_connections() -> None:
    """Close this thread's connections: call as a thread ends (the API server's
    workers), or they stay open for good -- and a later thread given the same ident
    would pick them up."""
    import _thread

    me = (os.getpid(), _thread.get_ident())
    for key in [k for k in _OPEN if k[:2] == me]:
        db, _ = _OPEN.pop(key)
        db.close()


#: The engine root's mode, as Docker's /var/lib/docker: other users may not even look
#: in (containers' configs, logs and layers are below it); the group may traverse.
ROOT_MODE = 0o710


def _make_root(root: Path) -> None:
    """A new root is made 0710: other users may not even look in.  An existing directory
    is left as it is -- one of the user's that `--root` names (or `/`, which an empty
    TOMATO_ROOT with a cwd of / once reached) is never chmod'ed; an older tomato's
    root is closed once, by its schema migration (_close_older_root)."""
    if os.path.realpath(root) == "/":
        raise InvalidArgument("the engine's root cannot be /")
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(root, ROOT_MODE)
    except FileExistsError:
        return
    os.chmod(root, ROOT_MODE)  # whatever the umask


def _close_older_root(root: Path) -> None:
    """A root an older tomato made readable: the root 0710 and the containers' files
    that hold their environments 0600 (every later one is made so)."""
    if os.stat(root).st_uid == os.geteuid():
        os.chmod(root, ROOT_MODE)
    try:
        ids = os.listdir(root / "containers")
    except FileNotFoundError:
        return
    for cid in ids:
        for name in ("bundle/config.json", "monitor.json"):
            try:
                os.chmod(root / "containers" / cid / name, 0o600)
            except OSError:
                continue


class Store:
    """Transactions on a per-process, per-thread connection (see ``_OPEN``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(root))
        self.path = self.root / "tomato.db"
        self.lock_dir = self.root / "locks"
        try:
            _make_root(self.root)
            self.lock_dir.mkdir(exist_ok=True, mode=0o700)
            # The records hold containers' environments: 0600, and sqlite gives the
            # -wal and -shm files the database's own mode.
            make_private(self.path)
            keep_reserve(self.root)  # space for recording removals on a full disk
        except PermissionError as err:
            raise Unavailable(f"cannot create the tomato root {self.root}: {err}") from err
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread off: _OPEN keys connections by thread already, and
        # forget_connections closes other threads' too (before a fork)
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _open(self) -> tuple[sqlite3.Connection, bool]:
        """This process's and thread's connection, made again if the file was replaced;
        and whether it is kept (False: a frozen look for one transaction on a full
        disk, see sqlitedb.frozen_reader)."""
        import _thread

        st = os.stat(self.path)
        identity = (st.st_dev, st.st_ino)
        pid = os.getpid()
        key = (pid, _thread.get_ident(), self.path)
        found = _OPEN.get(key)
        if found is not None:
            if found[1] == identity:
                return found[0], True
            found[0].close()
        _check_not_inherited(pid)  # (a new connection only: the common case never gets here)
        try:
            db = self._connect()
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1")  # opens the -wal and -shm
        except sqlite3.OperationalError:
            frozen = sqlite3.frozen_reader(self.path)  # a full disk: see there
            if frozen is None:
                raise
            return frozen, False
        _OPEN[key] = (db, identity)
        return db, True

    def _migrate(self) -> None:
        # Up to date: a read of user_version, not a write transaction (any number of
        # tomato processes at once would otherwise queue for the write lock just to
        # find nothing to do).  Read every time: a newer tomato may have migrated it.
        if self._version() == len(MIGRATIONS):
            return
        try:
            db = self._connect()
        except sqlite3.OperationalError as err:
            raise self._failure(err, writing=True) from err
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                db.execute("ROLLBACK")
                raise Unavailable(f"{self.path} was written by a newer tomato "
                                  f"(schema {version})")
            for i in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[i].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version={len(MIGRATIONS)}")
            db.execute("COMMIT")
            if 0 < version < PRIVATE_FROM:
                _close_older_root(self.root)
        except sqlite3.OperationalError as err:
            raise self._failure(err, writing=True) from err
        finally:
            db.close()
        # The connection _version opened on the new, empty file predates WAL mode
        import _thread

        stale = _OPEN.pop((os.getpid(), _thread.get_ident(), self.path), None)
        if stale is not None:
            stale[0].close()

    def _version(self) -> int:
        try:
            db, kept = self._open()
        except FileNotFoundError:
            return -1
        except sqlite3.OperationalError as err:
            raise self._failure(err, writing=False) from err
        try:
            return int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            if not kept:
                db.close()

    @contextmanager
    def _tx(self, begin: str) -> Iterator[sqlite3.Connection]:
        writer = begin == "BEGIN IMMEDIATE"
        queue = -1
        if writer:
            # Writers queue on an flock first: sqlite's own busy handler sleeps in
            # growing steps (up to 100 ms), which turned 50 concurrent `run -d` into
            # seconds of sleeping; the kernel wakes the next flock waiter at once.
            queue = os.open(self.lock_dir / "db-write.lock",
                            os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(queue, fcntl.LOCK_EX)
        own = None
        try:
            db, kept = self._open()
            if not kept:
                own = db  # a frozen look: closed with the transaction
            elif db.in_transaction:  # nested in another of ours: a connection of its own
                db = own = self._connect()
            db.execute(begin)
            try:
                yield db
            except BaseException:
                if db.in_transaction:  # (sqlite may have rolled back already: disk full)
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.OperationalError:
                        pass
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as err:
            raise self._failure(err, writer) from err
        finally:
            if own is not None:
                own.close()
            if queue >= 0:
                os.close(queue)

    def _failure(self, err: Exception, writing: bool) -> TomatoError:
        """sqlite's error as one typed line: NoSpace on a full disk (sqlite says
        "database or disk is full", or "disk I/O error" when it cannot grow its -wal
        or -shm), Unavailable otherwise."""
        if "full" in str(err) or sqlite3.disk_full(self.root):
            return NoSpace(f"no space left on device while "
                           f"{'writing' if writing else 'reading'} the engine's records "
                           f"({self.path})")
        return Unavailable(f"the engine's records ({self.path}): {err}")

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: the write lock is taken up front)."""
        return self._tx("BEGIN IMMEDIATE")

    def read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A read transaction: a consistent snapshot of the database."""
        return self._tx("BEGIN")

    @contextmanager
    def lock(self, name: str, shared: bool = False) -> Iterator[None]:
        """An flock on ``locks/NAME.lock``, exclusive unless ``shared``."""
        if not _LOCK_NAME.match(name):
            raise InvalidArgument(f"bad lock name {name!r}")
        fd = os.open(self.lock_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


__all__ = ["Store", "MIGRATIONS", "forget_connections", "forget_thread_connections"]
