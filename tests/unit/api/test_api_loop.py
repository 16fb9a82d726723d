"""The API server's worker pool: bounded, made on demand, gone when idle (and says so,
so a worker's sqlite connections close with it)."""

from __future__ import annotations

import threading
import time

from tomato.api.loop import Limits, Pool, listen_backlog


def test_pool_is_bounded_and_ends_idle_workers() -> None:
    exits: list[str] = []
    pool = Pool(limit=3, idle=0.2, on_exit=lambda: exits.append(threading.current_thread().name))
    gate = threading.Event()
    done: list[int] = []
    lock = threading.Lock()

    def job(n: int) -> None:
        gate.wait(10)
        with lock:
            done.append(n)

    for n in range(10):
        pool.submit(lambda n=n: job(n))  # type: ignore[misc]
    time.sleep(0.1)
    assert pool.threads == 3 and not done  # the rest queue for a worker
    gate.set()
    deadline = time.monotonic() + 10
    while (len(done) < 10 or pool.threads) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(done) == list(range(10))
    assert pool.threads == 0 and len(exits) == 3


def test_a_failing_job_keeps_its_worker() -> None:
    pool = Pool(limit=1, idle=5, on_exit=lambda: None)
    ran = threading.Event()

    def boom() -> None:
        raise RuntimeError("one request's bug")

    pool.submit(boom)
    pool.submit(ran.set)
    assert ran.wait(5) and pool.threads == 1
    pool.stop()


def test_limits() -> None:
    assert listen_backlog() >= 128
    limits = Limits.from_env()
    assert limits.max_workers > 0 and 64 <= limits.max_connections
