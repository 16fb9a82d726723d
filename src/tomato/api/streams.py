"""Attach, wait, logs and resize: the API's streams of a container.

A container's monitor serves ``attach.sock`` (frames.py).  The server keeps
at most one connection to it per container, a *hub*, and fans its frames
out to every attached client and waiter.  Docker's clients attach and wait
*before* they start a container (``docker run``): the hub is then pending,
``POST /start`` starts the container with ``attach_wait`` (the monitor holds
the process until its first client connects) and connects the hub, so no
output and no exit code is missed — even of a ``--rm`` container that is
gone a millisecond later.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from tomato.api.http import ClientGone, Request
from tomato.engine import frames, service
from tomato.engine.containers import Containers
from tomato.engine.options import RunOptions
from tomato.errors import InvalidArgument, NotFound, TomatoError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.api.server import Api
    from tomato.engine.containers import Container

LIVE = ("running", "paused", "restarting")


class Sub:
    """A subscriber of a hub: gets output frames and the end (exit code or None)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.code: int | None = None

    def output(self, stream: int, data: bytes) -> None:
        pass

    def end(self, code: int | None) -> None:
        self.code = code
        self.done.set()


class AttachSub(Sub):
    def __init__(self, sock: socket.socket, tty: bool, stdout: bool, stderr: bool) -> None:
        super().__init__()
        self.sock = sock
        self.tty = tty
        self.want = {frames.STDOUT: stdout, frames.STDERR: stderr}

    def output(self, stream: int, data: bytes) -> None:
        if not self.want.get(stream) or self.done.is_set():
            return
        try:
            self.sock.sendall(data if self.tty else frames.frame(stream, data))
        except OSError:
            self.end(None)  # the client went away: it alone is dropped


class Hub:
    def __init__(self, hubs: Hubs, cid: str) -> None:
        self.hubs = hubs
        self.cid = cid
        self.subs: list[Sub] = []
        self.sock: socket.socket | None = None
        self.early: list[bytes] = []  # stdin sent before the container started
        self.lock = threading.Lock()
        self.connecting = False

    def connect(self) -> None:
        with self.lock:
            if self.sock is not None or self.connecting:
                return
            self.connecting = True
        from tomato.engine import attach

        path = Containers(self.hubs.api.cfg.root).path(self.cid) / "attach.sock"
        try:
            sock = attach.connect(path, timeout=3.0)
        except TomatoError:
            self._finish(None)
            return
        with self.lock:
            self.sock = sock
            for data in self.early:
                try:
                    sock.sendall(data)
                except OSError:
                    pass
            self.early.clear()
        threading.Thread(target=self._read, name=f"hub-{self.cid[:12]}", daemon=True).start()

    def send(self, data: bytes) -> None:
        with self.lock:
            if self.sock is None:
                self.early.append(data)
                return
            sock = self.sock
        try:
            sock.sendall(data)
        except OSError:
            pass

    def _read(self) -> None:
        assert self.sock is not None
        reader = frames.FrameReader()
        code: int | None = None
        while code is None:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            for kind, payload in reader.feed(data):
                if kind in (frames.STDOUT, frames.STDERR):
                    for sub in list(self.subs):
                        sub.output(kind, payload)
                elif kind == frames.CONTROL:
                    msg = frames.decode_control(payload)
                    if "exit" in msg:
                        code = int(msg["exit"])
        self._finish(code)

    def _finish(self, code: int | None) -> None:
        self.hubs.drop(self)
        if self.sock is not None:
            self.sock.close()
        for sub in list(self.subs):  # the monitor reported the die, remove_files the destroy
            sub.end(code)


class Hubs:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.map: dict[str, Hub] = {}
        self.lock = threading.Lock()

    def join(self, c: Container, sub: Sub) -> Hub:
        with self.lock:
            hub = self.map.get(c.id)
            if hub is None:
                hub = self.map[c.id] = Hub(self, c.id)
            hub.subs.append(sub)
        if c.state.status in LIVE:  # on a thread: a monitor on its way out may not answer
            threading.Thread(target=hub.connect, daemon=True).start()
        return hub

    def leave(self, hub: Hub, sub: Sub) -> None:
        with self.lock:
            if sub in hub.subs:
                hub.subs.remove(sub)

    def get(self, cid: str) -> Hub | None:
        with self.lock:
            return self.map.get(cid)

    def pending(self, cid: str) -> bool:
        hub = self.get(cid)
        return hub is not None and hub.sock is None

    def failed(self, cid: str) -> None:
        """The container could not start: the clients waiting on its hub are let go."""
        hub = self.get(cid)
        if hub is not None and hub.sock is None and not hub.connecting:
            hub._finish(None)

    def started(self, cid: str) -> None:
        hub = self.get(cid)
        if hub is not None:
            hub.connect()

    def drop(self, hub: Hub) -> None:
        with self.lock:
            if self.map.get(hub.cid) is hub:
                del self.map[hub.cid]


def stream_type(tty: bool) -> str:
    return "application/vnd.docker.raw-stream" if tty else \
        "application/vnd.docker.multiplexed-stream"


# -- attach -------------------------------------------------------------------------
def attach(api: Api, req: Request, id: str) -> None:  # noqa: A002 — Docker's name
    c = service.get(api.cfg, id)
    tty = bool(c.options.get("tty"))
    want_stdin = req.flag("stdin")
    stdout, stderr = req.flag("stdout"), req.flag("stderr")
    sock = req.hijack(stream_type(tty))
    if req.flag("logs"):
        from tomato.engine.logs import read_logs

        for entry in read_logs(str(Containers(api.cfg.root).log_path(c.id))):
            kind = frames.STDERR if entry.stream == "stderr" else frames.STDOUT
            if (kind == frames.STDOUT and stdout) or (kind == frames.STDERR and stderr):
                data = entry.text.encode()
                sock.sendall(data if tty else frames.frame(kind, data))
    if not req.flag("stream"):
        return
    sub = AttachSub(sock, tty, stdout, stderr)
    hub = api.hubs.join(c, sub)
    api.events.record("container", "attach", c.id, {"name": c.name, "image": c.image})
    if want_stdin:
        def pump() -> None:
            while not sub.done.is_set():
                data = req.read_raw()
                if not data:
                    hub.send(frames.control(close_stdin=True))
                    return
                hub.send(frames.frame(frames.STDIN, data))

        threading.Thread(target=pump, daemon=True).start()
    try:
        # Not req.client_gone(): the docker CLI half-closes its side when it has no
        # stdin to send, which reads exactly like a hang-up.  A client that is really
        # gone fails the next write (AttachSub.output ends it) or the container's exit.
        sub.done.wait()
    finally:
        api.hubs.leave(hub, sub)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# -- wait -----------------------------------------------------------------------------
def wait(api: Api, req: Request, id: str) -> None:  # noqa: A002
    condition = req.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidArgument(f"invalid condition: {condition!r}")
    c = service.get(api.cfg, id)
    t0 = time.time()
    if condition == "not-running" and c.state.status not in LIVE:
        req.json_response({"StatusCode": c.state.exit_code, "Error": None})
        return
    sub = Sub()
    hub = api.hubs.join(c, sub)
    req.start_stream()  # headers now: `docker run` starts the container after this
    code: int | None = None
    try:
        while True:
            if sub.done.is_set():
                if sub.code is not None:
                    code = sub.code
                    break
                time.sleep(0.02)  # the hub ended without an exit code: the record tells
            else:
                sub.done.wait(0.1)
                if sub.done.is_set():
                    continue
            try:
                last = service.get(api.cfg, c.id)
            except NotFound:
                break
            if last.state.status in LIVE and hub.sock is None and not hub.connecting:
                threading.Thread(target=hub.connect, daemon=True).start()  # started elsewhere
            if last.state.status not in LIVE and (condition == "not-running" or
                                                 last.state.finished_at >= t0):
                code = last.state.exit_code
                break
            if req.client_gone():
                return
        if code is None:
            code = 0  # removed before anyone saw it exit (Docker answers 0 as well)
        else:
            _settle(api, c.id)
        if condition == "removed":
            records = Containers(api.cfg.root)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    records.get(c.id)
                except NotFound:
                    break
                if req.client_gone():
                    return
                time.sleep(0.02)
        req.json_chunk({"StatusCode": code, "Error": None})
        req.end_stream()
    finally:
        api.hubs.leave(hub, sub)


def _settle(api: Api, cid: str, timeout: float = 10.0) -> None:
    """The monitor tells its clients the exit code a moment before the record says
    so; a client told "it exited" must find it exited (docker rm right after)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if service.get(api.cfg, cid).state.status not in LIVE:
                return
        except NotFound:
            return
        time.sleep(0.01)


# -- logs -----------------------------------------------------------------------------
def _since(text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        from tomato.engine.logs import parse_timestamp

        return parse_timestamp(text)
    return value if value else None


def logs(api: Api, req: Request, id: str) -> None:  # noqa: A002
    from tomato.engine import logs as logmod

    stdout, stderr = req.flag("stdout"), req.flag("stderr")
    if not (stdout or stderr):
        raise InvalidArgument("You must choose at least one stream")
    c, path = service.log_path(api.cfg, id)
    tty = bool(c.options.get("tty"))
    tail_text = req.arg("tail", "all")
    tail = None if tail_text in ("", "all") else int(tail_text) if tail_text.lstrip("-").isdigit() \
        else None
    if tail is not None and tail < 0:
        tail = None
    since, until = _since(req.arg("since")), _since(req.arg("until"))
    stamps = req.flag("timestamps")
    req.start_stream(stream_type(tty))

    def emit(entry: Any) -> None:
        kind = frames.STDERR if entry.stream == "stderr" else frames.STDOUT
        if (kind == frames.STDOUT and not stdout) or (kind == frames.STDERR and not stderr):
            return
        data = ((entry.time + " ") if stamps else "") + entry.text
        raw = data.encode()
        req.chunk(raw if tty else frames.frame(kind, raw))

    entries = logmod.read_logs(str(path), tail, since, until) if path.exists() else []
    position = path.stat().st_size if path.exists() else 0
    for entry in entries:
        emit(entry)
    if req.flag("follow") and (until is None or until > time.time()):
        def still() -> bool:
            return service.is_running(api.cfg, c.id) and not req.client_gone()

        if not path.exists():
            path.touch()
        for entry in logmod.follow(str(path), position, still):
            if until is not None and logmod.parse_timestamp(entry.time) > until:
                break
            emit(entry)
    req.end_stream()


# -- resize ---------------------------------------------------------------------------
def send_control(api: Api, cid: str, **message: Any) -> None:
    """A control message to a running container's monitor (through the hub if any)."""
    hub = api.hubs.get(cid)
    if hub is not None and hub.sock is not None:
        hub.send(frames.control(**message))
        return
    from tomato.engine import attach as attach_mod

    try:
        sock = attach_mod.connect(Containers(api.cfg.root).path(cid) / "attach.sock", 1.0)
    except TomatoError:
        return
    with sock:
        sock.sendall(frames.control(**message))


def resize(api: Api, req: Request, id: str) -> None:  # noqa: A002
    h, w = req.int_arg("h", 0) or 0, req.int_arg("w", 0) or 0
    c = service.get(api.cfg, id)
    if c.state.status not in LIVE:
        from tomato.errors import Conflict

        raise Conflict(f"Container {c.id} is not running")
    if h > 0 and w > 0 and RunOptions.from_dict(c.options).tty:
        send_control(api, c.id, resize=[h, w])
    req.send(200, b"", "text/plain")


ROUTES = [
    ("POST", "/containers/{id}/attach", attach),
    ("POST", "/containers/{id}/wait", wait),
    ("GET", "/containers/{id}/logs", logs),
    ("POST", "/containers/{id}/resize", resize),
]

_ = (os, ClientGone)
