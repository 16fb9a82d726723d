"""A thread's sqlite connection is closed when the thread says it is done."""

from __future__ import annotations

import threading
from pathlib import Path

from tomato.engine import store


def test_forget_thread_connections(tmp_path: Path) -> None:
    seen: list[object] = []

    def work(forget: bool) -> None:
        with store.Store(tmp_path).read() as db:
            db.execute("SELECT 1")
            seen.append(db)
        if forget:
            store.forget_thread_connections()

    mine = store.Store(tmp_path)
    with mine.read() as db:  # this thread's, which must stay open
        db.execute("SELECT 1")

    def ours() -> int:  # this test's connections (other tests' threads may hold theirs)
        return sum(1 for key in store._OPEN if key[2] == tmp_path / "tomato.db")  # noqa: SLF001

    before = ours()
    for forget in (True, False):
        t = threading.Thread(target=work, args=(forget,))
        t.start()
        t.join()
    assert ours() == before + 1  # only the thread that did not forget
    with mine.read() as db:
        assert db.execute("SELECT 1").fetchone() == (1,)
    try:
        seen[0].execute("SELECT 1")  # type: ignore[attr-defined]
    except Exception as err:  # noqa: BLE001 — sqlite's ProgrammingError: closed
        assert "closed" in str(err)
    else:
        raise AssertionError("the forgotten connection is still open")
    store.forget_connections()


def test_a_child_forked_with_its_parent_s_connections_refuses_the_store(tmp_path) -> None:
    """sqlite's lock bookkeeping is copied by fork() while its locks are not: a child that
    opened the store beside its parent's inherited connections could corrupt it.  The
    forking code must forget them first; a child that finds them refuses, loudly."""
    import os

    from tomato.engine.store import InheritedConnections, Store, forget_connections

    store = Store(tmp_path / "root")
    with store.read() as db:
        db.execute("SELECT 1")
    pid = os.fork()
    if pid == 0:  # pragma: no cover — the child
        try:
            with Store(tmp_path / "root").read():
                pass
        except InheritedConnections:
            os._exit(3)
        except BaseException:
            os._exit(4)
        os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 3
    forget_connections()
    pid = os.fork()
    if pid == 0:  # pragma: no cover — the child, after the parent forgot them
        try:
            with Store(tmp_path / "root").read() as db:
                db.execute("SELECT 1")
        except BaseException:
            os._exit(4)
        os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
