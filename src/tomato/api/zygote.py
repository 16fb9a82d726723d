"""A single-threaded fork server for the engine operations that fork.

The API server answers requests on threads, but creating, starting and
exec'ing containers forks (the monitor, the runtime's init, setns into a
pid namespace), and forking from a threaded process is unsafe: only the
calling thread survives in the child, with whatever locks the others held
(the import lock, a logging lock, malloc's arenas).

So before ``tomato serve`` starts any thread it forks this *zygote*: a
process that never starts a thread.  It accepts one connection per job on a
unix socket in a private (0700) directory and forks a fresh child for each;
the child (single-threaded, every engine module already imported, no
interpreter start-up) runs one operation and reports on the connection:

    request   one JSON line  {"op": NAME, "args": {...}}  (+ optional fd, SCM_RIGHTS)
    replies   JSON lines     {"event": ...}*  then {"ok": RESULT} or {"error": {...}}

The zygote is the subreaper of everything its children leave behind (the
container monitors are double-forked from them) and ignores SIGCHLD, so
the kernel reaps them: nobody is left a zombie of a pid 1 that does not reap.
"""

from __future__ import annotations

import array
import json
import os
import select
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tomato.errors import TomatoError

#: an operation run in a forked child: (args, job) -> JSON-able result
Op = Callable[[dict[str, Any], "Job"], Any]

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


class Job:
    """The child's side of one job: its connection, the passed fd, events out."""

    def __init__(self, conn: socket.socket, fd: int | None) -> None:
        self.conn = conn
        self.fd = fd

    def send(self, **message: Any) -> None:
        try:
            self.conn.sendall((json.dumps(message) + "\n").encode())
        except OSError:
            pass


def _prctl(option: int, arg: int) -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)


def _recv_request(conn: socket.socket) -> tuple[dict[str, Any], int | None]:
    data = b""
    fd: int | None = None
    while b"\n" not in data:
        fds = array.array("i")
        msg, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
                fd = fds[0]
        if not msg:
            raise EOFError("request cut short")
        data += msg
    return json.loads(data.split(b"\n", 1)[0]), fd


def _child(conn: socket.socket, ops: dict[str, Op]) -> None:  # pragma: no cover — forked
    job = Job(conn, None)
    try:
        request, job.fd = _recv_request(conn)
        result = ops[request["op"]](request.get("args") or {}, job)
        job.send(ok=result)
    except TomatoError as err:
        job.send(error={"kind": type(err).__name__, "message": str(err)})
    except BaseException as err:  # noqa: BLE001 — reported to the API as a 500
        job.send(error={"kind": "Exception", "message": str(err) or type(err).__name__})


def _serve(listener: socket.socket, parent_r: int, ops: dict[str, Op]) -> None:  # pragma: no cover
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps children and orphans
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    watch: list[Any] = [listener, parent_r]
    while True:
        try:
            ready, _, _ = select.select(watch, [], [])
        except InterruptedError:
            continue
        if parent_r in ready:
            return  # the server is gone
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # waitpid must work again
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                listener.close()
                os.close(parent_r)
                os.setsid()  # a job's processes are not signalled with the zygote's group
                _child(conn, ops)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        conn.close()


class Zygote:
    """The server's handle on the fork server."""

    def __init__(self, path: str, pid: int, keepalive: int) -> None:
        self.path = path
        self.pid = pid
        self._keepalive = keepalive

    @classmethod
    def start(cls, sockdir: Path, ops: dict[str, Op]) -> Zygote:
        """Fork the zygote now: call this before the process starts any thread."""
        sockdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(sockdir, 0o700)
        path = str(sockdir / "zygote.sock")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(128)
        parent_r, parent_w = os.pipe2(os.O_CLOEXEC)
        from tomato.engine.store import forget_connections

        forget_connections()  # sqlite connections never cross a fork
        pid = os.fork()
        if pid == 0:  # pragma: no cover
            code = 0
            try:
                os.close(parent_w)
                _serve(listener, parent_r, ops)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        os.close(parent_r)
        listener.close()
        return cls(path, pid, parent_w)

    def open(self, op: str, args: dict[str, Any], fd: int | None = None) -> socket.socket:
        """Start a job; the returned connection yields its JSON lines."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.path)
        data = (json.dumps({"op": op, "args": args}) + "\n").encode()
        if fd is None:
            conn.sendall(data)
        else:
            conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                   array.array("i", [fd]).tobytes())])
        return conn

    def call(self, op: str, args: dict[str, Any], fd: int | None = None,
             on_event: Callable[[dict[str, Any]], None] | None = None) -> Any:
        """Run a job to its end; its result, or the TomatoError it raised."""
        with self.open(op, args, fd) as conn:
            return result_of(conn, on_event)

    def stop(self) -> None:
        try:
            os.close(self._keepalive)
        except OSError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def result_of(conn: socket.socket,
              on_event: Callable[[dict[str, Any]], None] | None = None) -> Any:
    reader = conn.makefile("rb")
    for line in reader:
        msg = json.loads(line)
        if "ok" in msg:
            return msg["ok"]
        if "error" in msg:
            raise rebuild_error(msg["error"])
        if on_event is not None:
            on_event(msg)
    raise TomatoError("the engine's worker process died")


def rebuild_error(info: dict[str, Any]) -> TomatoError:
    from tomato import errors

    kind = getattr(errors, str(info.get("kind")), None)
    if not (isinstance(kind, type) and issubclass(kind, TomatoError)):
        kind = TomatoError
    return kind(str(info.get("message", "")))
