"""engine.store: migrations, transactions, locks (kept with the image tests it serves)."""

import multiprocessing
import sqlite3
import threading
import time

import pytest

from tomato.engine.store import MIGRATIONS, Store
from tomato.errors import InvalidArgument, Unavailable


def test_schema_and_wal(tmp_path):
    s = Store(tmp_path)
    with s.read() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"images", "tags", "repo_digests", "image_leases"} <= tables
    Store(tmp_path)  # reopening does not re-run migrations


def test_rollback_on_error(tmp_path):
    s = Store(tmp_path)
    with pytest.raises(RuntimeError):
        with s.write() as db:
            db.execute("INSERT INTO image_leases VALUES ('a','b')")
            raise RuntimeError
    with s.read() as db:
        assert db.execute("SELECT COUNT(*) FROM image_leases").fetchone()[0] == 0


def test_newer_schema_refused(tmp_path):
    Store(tmp_path)
    db = sqlite3.connect(tmp_path / "tomato.db")
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(Unavailable, match="newer"):
        Store(tmp_path)


def _writer(root, n):
    s = Store(root)
    for i in range(n):
        with s.write() as db:
            c = db.execute("SELECT COUNT(*) FROM image_leases").fetchone()[0]
            db.execute("INSERT INTO image_leases VALUES (?, ?)", (f"img{c}", str(i)))


def test_concurrent_writers_serialise(tmp_path):
    Store(tmp_path)
    procs = [multiprocessing.get_context("spawn").Process(target=_writer, args=(tmp_path, 25))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    with Store(tmp_path).read() as db:
        # read-count-then-insert inside BEGIN IMMEDIATE never loses an update
        assert db.execute("SELECT COUNT(DISTINCT image_id) FROM image_leases").fetchone()[0] == 100


def test_gc_lock_excludes_shared(tmp_path):
    s = Store(tmp_path)
    order = []
    with s.lock("gc", shared=True):
        with s.lock("gc", shared=True):  # shared holders coexist
            pass

        def gc():
            with s.lock("gc"):
                order.append("gc")
        t = threading.Thread(target=gc)
        t.start()
        time.sleep(0.2)
        order.append("pull-done")
    t.join()
    assert order == ["pull-done", "gc"]
    with pytest.raises(InvalidArgument):
        with s.lock("../x"):
            pass


def test_one_connection_per_process_and_thread(tmp_path):
    from tomato.engine import store as store_mod

    s = Store(tmp_path)
    with s.read() as first:
        pass
    with s.write() as second:
        second.execute("INSERT INTO image_leases VALUES ('x','y')")
    assert first is second  # reused, not reopened
    seen = []
    worker = threading.Thread(target=lambda: seen.append(s._open()))
    worker.start()
    worker.join()
    assert seen and seen[0] is not first  # another thread: a connection of its own
    with s.read() as outer:  # nested transactions still work (the inner gets its own)
        assert outer.execute("SELECT COUNT(*) FROM image_leases").fetchone()[0] == 1
        with s.write() as inner:
            assert inner is not outer
            inner.execute("INSERT INTO image_leases VALUES ('x','z')")
        assert outer.execute("SELECT COUNT(*) FROM image_leases").fetchone()[0] == 1  # snapshot
    with s.read() as db:
        assert db.execute("SELECT COUNT(*) FROM image_leases").fetchone()[0] == 2
    store_mod.forget_connections()
    with s.read() as fresh:
        assert fresh is not first


def test_a_replaced_database_file_gets_a_new_connection(tmp_path):
    s = Store(tmp_path)
    with s.write() as db:
        db.execute("INSERT INTO image_leases VALUES ('old','one')")
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"tomato.db{suffix}").unlink(missing_ok=True)
    s2 = Store(tmp_path)  # migrates a new, empty database at the same path
    with s2.read() as db:
        assert db.execute("SELECT COUNT(*) FROM image_leases").fetchone()[0] == 0
