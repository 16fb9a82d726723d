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
    before = len(store._OPEN)  # noqa: SLF001
    for forget in (True, False):
        t = threading.Thread(target=work, args=(forget,))
        t.start()
        t.join()
    assert len(store._OPEN) == before + 1  # only the thread that did not forget
    with mine.read() as db:
        assert db.execute("SELECT 1").fetchone() == (1,)
    try:
        seen[0].execute("SELECT 1")  # type: ignore[attr-defined]
    except Exception as err:  # noqa: BLE001 — sqlite's ProgrammingError: closed
        assert "closed" in str(err)
    else:
        raise AssertionError("the forgotten connection is still open")
    store.forget_connections()
