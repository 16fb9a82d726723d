"""The API's connections: one thread waits on all of them, a bounded pool answers.

    accept -> [TLS handshake] -> a whole request head (+ a small body) -> a worker
                   ^                                                        |
                   '-------- keep-alive: the connection comes back ---------'

A connection that sends nothing, or half a head, costs a file descriptor and a
few hundred bytes here, never a thread (2000 of them once held 2000 threads,
870 MB and the server).  It is closed after ``idle`` seconds of silence between
requests, or ``head`` seconds after a head (or its small body) began and is
still not whole.  Past ``max_connections`` the longest-silent connection goes.
Workers are made on demand up to ``max_workers`` and end after ``worker_idle``
seconds without work, calling ``on_worker_exit`` (the engine's sqlite
connections are per thread).  A worker holds its connection for the whole
request: long streams (logs -f, events, attach, stats) are never timed out
here, only a connection waiting for its next request is.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import selectors
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tomato.api.conn import Conn
from tomato.api.wire import MAX_HEAD, HttpError, RequestHead, head_end, parse_head

#: a worker's job: answer the request on this connection; True if the connection may
#: serve another one (then it comes back to the loop)
Serve = Callable[[Conn, "RequestHead | HttpError"], bool]


@dataclass
class Limits:
    idle: float = 120.0  # silence between requests (docker's client drops idle ones at 90 s)
    head: float = 30.0  # from a head's first byte until it and a small body are here
    body: float = 60.0  # silence while a worker reads a body
    max_workers: int = 128
    max_connections: int = 2048  # each holds at most MAX_HEAD + preread bytes here
    worker_idle: float = 30.0
    preread: int = 16 << 10  # a body this small is read here, so no worker waits for it

    @classmethod
    def from_env(cls) -> Limits:
        """Defaults, or TOMATO_API_{IDLE,HEAD,BODY}_TIMEOUT / TOMATO_API_WORKERS (tests)."""
        limits = cls()
        for name, attr in (("IDLE_TIMEOUT", "idle"), ("HEAD_TIMEOUT", "head"),
                           ("BODY_TIMEOUT", "body"), ("WORKERS", "max_workers")):
            value = os.environ.get(f"TOMATO_API_{name}")
            if value:
                kind = type(getattr(limits, attr))
                setattr(limits, attr, kind(float(value)) if kind is int else float(value))
        try:
            import resource

            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            if soft != resource.RLIM_INFINITY:  # keep fds for workers, the engine, sqlite
                limits.max_connections = max(64, min(limits.max_connections, soft // 2))
        except (ImportError, ValueError, OSError):
            pass
        return limits


def listen_backlog() -> int:
    """At least the kernel's somaxconn (a burst of clients waits in the kernel)."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(int(f.read()), 128)
    except (OSError, ValueError):
        return 4096


class Pool:
    """Worker threads made on demand, at most ``limit``; jobs queue beyond it.
    (A SimpleQueue hands a job over in a third of a Condition's time.)"""

    def __init__(self, limit: int, idle: float, on_exit: Callable[[], None]) -> None:
        self.limit = limit
        self.idle_seconds = idle
        self.on_exit = on_exit
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.lock = threading.Lock()  # threads, idle, and every put
        self.threads = 0
        self.idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self.lock:  # put under the lock: a worker deciding to leave sees the job
            spawn = self.jobs.qsize() >= self.idle and self.threads < self.limit
            if spawn:
                self.threads += 1
            self.jobs.put(job)
        if spawn:
            try:
                threading.Thread(target=self._work, name="api-worker", daemon=True).start()
            except RuntimeError:  # no thread to be had now: the queue waits for a worker
                with self.lock:
                    self.threads -= 1

    def _work(self) -> None:
        try:
            while True:
                with self.lock:
                    self.idle += 1
                try:
                    job = self.jobs.get(timeout=self.idle_seconds)
                except queue.Empty:
                    with self.lock:
                        self.idle -= 1
                        if self.jobs.qsize() == 0:
                            self.threads -= 1
                            return
                    continue
                with self.lock:
                    self.idle -= 1
                if job is None:  # stop()
                    with self.lock:
                        self.threads -= 1
                    return
                try:
                    job()
                except BaseException as err:  # noqa: BLE001 — one request, not the worker
                    _log(f"worker: {type(err).__name__}: {err}")
        finally:
            self.on_exit()

    def stop(self) -> None:
        with self.lock:
            for _ in range(self.threads):
                self.jobs.put(None)


class Loop:
    def __init__(self, listener: socket.socket, serve: Serve, limits: Limits,
                 tls: ssl.SSLContext | None = None,
                 on_worker_exit: Callable[[], None] = lambda: None) -> None:
        self.listener = listener
        self.serve = serve
        self.limits = limits
        self.tls = tls
        self.pool = Pool(limits.max_workers, limits.worker_idle, on_worker_exit)
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}  # waiting here, oldest first
        self.back: collections.deque[Conn] = collections.deque()  # from workers
        self.back_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop = False

    # -- the thread --------------------------------------------------------------------
    def run(self) -> None:
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        next_sweep = time.monotonic() + 1.0
        while not self._stop:
            for key, events in self.sel.select(timeout=1.0):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                else:
                    self._ready(key.data, events)
            self._take_back()
            now = time.monotonic()
            if now >= next_sweep:
                self._sweep(now)
                next_sweep = now + 1.0
        self._close_all()

    def stop(self) -> None:
        """From any thread (a signal handler's too)."""
        self._stop = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def give_back(self, conn: Conn) -> None:
        """A worker is done with a keep-alive connection: wait for its next request."""
        with self.back_lock:
            self.back.append(conn)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # -- connections -------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # EMFILE and friends: shed the oldest, try later
                _log(f"accept: {err}")
                self._shed()
                return
            sock.setblocking(False)
            if len(self.conns) >= self.limits.max_connections:
                self._shed()
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
                except (ssl.SSLError, OSError):
                    sock.close()
                    continue
            conn = Conn(sock, self.tls is not None)
            conn.deadline = time.monotonic() + self.limits.head
            self._wait(conn)
            if conn.handshaking:
                self._handshake(conn)

    def _wait(self, conn: Conn, events: int = selectors.EVENT_READ) -> None:
        self.conns[conn.fd] = conn
        try:
            self.sel.register(conn.sock, events, conn)
        except KeyError:
            self.sel.modify(conn.sock, events, conn)

    def _forget(self, conn: Conn) -> None:
        self.conns.pop(conn.fd, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.sel.unregister(conn.sock)

    def _drop(self, conn: Conn) -> None:
        self._forget(conn)
        conn.close()

    def _handshake(self, conn: Conn) -> None:
        try:
            conn.sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self.sel.modify(conn.sock, selectors.EVENT_READ, conn)
            return
        except ssl.SSLWantWriteError:
            self.sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return
        except (ssl.SSLError, OSError):  # a plain-HTTP client, a wrong or no certificate
            self._drop(conn)
            return
        conn.handshaking = False
        self.sel.modify(conn.sock, selectors.EVENT_READ, conn)
        conn.deadline = time.monotonic() + self.limits.idle
        self._ready(conn, selectors.EVENT_READ)  # the handshake may have brought a request

    def _ready(self, conn: Conn, events: int) -> None:
        if conn.handshaking:
            self._handshake(conn)
            return
        if not conn.fill(MAX_HEAD + self.limits.preread):
            self._drop(conn)
            return
        self._advance(conn)

    def _advance(self, conn: Conn) -> None:
        """Hand the connection to a worker if a request is here, or wait for more."""
        now = time.monotonic()
        if conn.head is None:
            end = head_end(conn.buf)
            if end < 0:
                if len(conn.buf) > MAX_HEAD:
                    self._dispatch(conn, HttpError(431, "request header too large"))
                elif conn.buf and not conn.head_started:
                    conn.head_started = now
                    conn.deadline = now + self.limits.head
                return
            if end > MAX_HEAD:
                self._dispatch(conn, HttpError(431, "request header too large"))
                return
            raw = bytes(conn.buf[:end])
            del conn.buf[:end]
            try:
                head = parse_head(raw)
            except HttpError as err:
                self._dispatch(conn, err)
                return
            conn.head = head
            if not conn.head_started:
                conn.head_started = now
                conn.deadline = now + self.limits.head
        head = conn.head
        small = not head.chunked and 0 < head.length <= self.limits.preread
        if small and len(conn.buf) < head.length and not head.expects_continue:
            return  # a small body: waited for here, not by a worker
        self._dispatch(conn, head)

    def _dispatch(self, conn: Conn, what: RequestHead | HttpError) -> None:
        self._forget(conn)
        conn.head = None
        conn.head_started = 0.0
        try:
            conn.sock.settimeout(self.limits.body)
        except OSError:
            conn.close()
            return

        def job() -> None:
            keep = False
            try:
                keep = self.serve(conn, what)
            finally:
                if keep:
                    self.give_back(conn)
                else:
                    conn.close()

        self.pool.submit(job)

    def _take_back(self) -> None:
        while True:
            with self.back_lock:
                if not self.back:
                    return
                conn = self.back.popleft()
            try:
                conn.sock.setblocking(False)
            except OSError:
                conn.close()
                continue
            conn.deadline = time.monotonic() + self.limits.idle
            self._wait(conn)
            if conn.buf:  # a pipelined request, already read
                self._advance(conn)

    def _sweep(self, now: float) -> None:
        for conn in [c for c in self.conns.values() if c.deadline <= now]:
            if conn.head_started and not conn.handshaking:
                self._dispatch(conn, HttpError(408, "timed out waiting for the request"))
            else:
                self._drop(conn)

    def _shed(self) -> None:
        """Close the connection waiting longest for anything (make room for a new one)."""
        idle = [c for c in self.conns.values() if not c.head_started] or list(self.conns.values())
        if idle:
            self._drop(min(idle, key=lambda c: c.deadline))

    def _close_all(self) -> None:
        for conn in list(self.conns.values()):
            self._drop(conn)
        self.pool.stop()
        self.sel.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _log(message: str) -> None:
    sys.stderr.write(f"tomato serve: {message}\n")
    sys.stderr.flush()

