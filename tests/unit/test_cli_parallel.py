"""cli/parallel.py's pure logic: argument order whatever finishes first, at most
PARALLEL at once, refs to one container never side by side, docker's error lines."""

from __future__ import annotations

import threading

import pytest

from tomato.cli import parallel
from tomato.errors import NotFound


def test_reports_in_argument_order_whoever_finishes_first() -> None:
    first_may_finish = threading.Event()
    finished: list[str] = []

    def act(ref: str) -> None:
        if ref == "r0":  # the first waits until every other one is done
            assert first_may_finish.wait(10)
        finished.append(ref)
        if len(finished) == 4:
            first_may_finish.set()

    reported: list[int] = []
    refs = [f"r{i}" for i in range(5)]
    outcome = parallel.run(refs, act, report=lambda i, err: reported.append(i))
    assert finished[-1] == "r0" and reported == [0, 1, 2, 3, 4]
    assert outcome == [None] * 5


def test_at_most_parallel_at_once() -> None:
    lock = threading.Lock()
    active = peak = 0
    full = threading.Event()

    def act(ref: str) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            if active == parallel.PARALLEL:
                full.set()
        full.wait(10)  # the first wave holds until the pool is full
        with lock:
            active -= 1

    parallel.run([str(i) for i in range(parallel.PARALLEL * 2 + 3)], act)
    assert full.is_set() and peak == parallel.PARALLEL


def test_refs_to_one_container_run_one_after_another() -> None:
    lock = threading.Lock()
    busy: set[str] = set()
    clashes: list[str] = []
    order: list[str] = []

    def act(ref: str) -> None:
        key = ref.lower()
        with lock:
            if key in busy:
                clashes.append(ref)
            busy.add(key)
            order.append(ref)
        threading.Event().wait(0.01)  # room for a clash, were there one
        with lock:
            busy.discard(key)

    refs = ["a", "b", "A", "c", "a", "B"]
    parallel.run(refs, act, same=str.lower)
    assert clashes == []
    assert [r for r in order if r.lower() == "a"] == ["a", "A", "a"]


def test_each_prints_docker_shaped_lines(capsys: pytest.CaptureFixture[str]) -> None:
    def act(ref: str) -> None:
        if ref.startswith("missing"):
            raise NotFound(f"No such container: {ref}")
        if ref == "disk":
            raise OSError(28, "No space left on device", "/root/tomato.db")

    code = parallel.each(["one", "missing1", "two", "disk", "missing2"], act)
    out, err = capsys.readouterr()
    assert code == 1 and out.split() == ["one", "two"]
    assert err.splitlines() == ["tomato: No such container: missing1",
                                "tomato: No space left on device: /root/tomato.db",
                                "tomato: No such container: missing2"]
    assert parallel.each(["one", "two"], act) == 0


def test_a_bug_is_raised_once_the_others_are_done(capsys: pytest.CaptureFixture[str]) -> None:
    done: list[str] = []

    def act(ref: str) -> None:
        if ref == "bug":
            raise KeyError(ref)
        done.append(ref)

    with pytest.raises(KeyError):
        parallel.each(["x", "bug", "y", "z"], act)
    assert sorted(done) == ["x", "y", "z"]
    assert capsys.readouterr().out.split() == ["x", "y", "z"]
