"""The fork server: jobs run in fresh single-threaded processes even while the
server runs threads; errors come back typed; an fd passes by SCM_RIGHTS."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from tomato.api.zygote import Job, Zygote
from tomato.errors import Conflict, TomatoError


def _threads() -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


def _probe(args: dict[str, Any], job: Job) -> Any:
    job.send(progress=1)
    return {"pid": os.getpid(), "threads": _threads(), "ppid": os.getppid()}


def _fail(args: dict[str, Any], job: Job) -> Any:
    raise Conflict("busy: " + args["what"])


def _crash(args: dict[str, Any], job: Job) -> Any:
    raise ZeroDivisionError("boom")


def _echo_fd(args: dict[str, Any], job: Job) -> Any:
    assert job.fd is not None
    with socket.socket(fileno=job.fd) as s:
        s.sendall(s.recv(100).upper())
    return True


@pytest.fixture
def zygote(workdir: Path) -> Any:
    z = Zygote.start(workdir / "z", {"probe": _probe, "fail": _fail, "crash": _crash,
                                      "echo": _echo_fd})
    yield z
    z.stop()


def test_jobs_run_single_threaded_while_the_server_has_threads(zygote: Any) -> None:
    stop = threading.Event()
    workers = [threading.Thread(target=stop.wait) for _ in range(4)]
    for t in workers:
        t.start()
    try:
        assert _threads() >= 5
        events: list[dict[str, Any]] = []
        results = [zygote.call("probe", {}, on_event=events.append) for _ in range(3)]
    finally:
        stop.set()
        for t in workers:
            t.join()
    assert events == [{"progress": 1}] * 3
    assert all(r["threads"] == 1 for r in results)  # safe to fork containers from
    assert len({r["pid"] for r in results}) == 3  # a fresh process per job
    assert all(r["ppid"] == zygote.pid for r in results)
    assert os.getpid() not in {r["pid"] for r in results}


def test_errors_come_back_typed(zygote: Any) -> None:
    with pytest.raises(Conflict, match="busy: x"):
        zygote.call("fail", {"what": "x"})
    with pytest.raises(TomatoError, match="boom"):
        zygote.call("crash", {})
    assert zygote.call("probe", {})["threads"] == 1  # still serving


def test_fd_passing(zygote: Any) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        conn = zygote.open("echo", {}, fd=theirs.fileno())
        ours.sendall(b"hijacked")
        assert ours.recv(100) == b"HIJACKED"
        conn.close()


def test_stops_with_the_server(workdir: Path) -> None:
    z = Zygote.start(workdir / "z2", {"probe": _probe})
    pid = z.pid
    z.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
