"""`tomato serve`: the Docker Engine API on a unix socket (or a loopback TCP port).

Threads answer requests (ThreadingMixIn); every operation that forks goes
to the zygote (zygote.py), forked before the first thread.  Handlers call
the engine's use cases; nothing here re-implements one.

Routes are ``(METHOD, pattern, handler)``; a pattern's ``{name}`` matches one
path segment, ``{name*}`` the rest (image names hold slashes).  A
``/v1.NN`` prefix picks the API version: 1.24 up to API_VERSION.
"""

from __future__ import annotations

import os
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tomato.api.http import (
    API_VERSION,
    MIN_API_VERSION,
    SERVER_VERSION,
    ClientGone,
    HttpError,
    Request,
    docker_message,
    status_of,
    version_tuple,
)
from tomato.errors import InvalidArgument

Handler = Callable[..., None]
_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


@dataclass
class Api:
    """What every handler gets: the engine config and the server's shared state."""

    cfg: Any
    zygote: Any
    hubs: Any = None
    execs: dict[str, Any] = field(default_factory=dict)
    events: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)


def compile_routes(routes: list[tuple[str, str, Handler]]) -> list[tuple[str, re.Pattern[str],
                                                                         Handler]]:
    out = []
    for method, pattern, handler in routes:
        rx = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
        rx = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", rx)
        out.append((method, re.compile("^" + rx + "$"), handler))
    return out


def all_routes() -> list[tuple[str, str, Handler]]:
    from tomato.api import containers, execs, images, objects, stats, streams, system

    routes: list[tuple[str, str, Handler]] = []
    for module in (system, streams, containers, stats, execs, images, objects):
        routes.extend(module.ROUTES)  # type: ignore[attr-defined]
    return routes


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    rbufsize = 0  # unbuffered: a hijacked connection's bytes are all still in the socket
    server_version = f"Docker/{SERVER_VERSION}"
    sys_version = "(linux)"
    server: _Server

    def version_string(self) -> str:
        return f"Docker/{SERVER_VERSION} (linux)"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # a unix socket has no client address; errors reach clients as JSON

    def address_string(self) -> str:
        return "unix"

    def _dispatch(self) -> None:
        path, _, query = self.path.partition("?")
        version = API_VERSION
        req = Request(self, self.command, path, query, version)
        try:
            m = _VERSIONED.match(path)
            if m:
                version = f"{int(m.group(1))}.{int(m.group(2))}"
                req.path = path = m.group(3)
                req.version = version
                if version_tuple(version) > version_tuple(API_VERSION):
                    raise HttpError(400, f"client version {version} is too new. Maximum "
                                         f"supported API version is {API_VERSION}")
                if version_tuple(version) < version_tuple(MIN_API_VERSION):
                    raise HttpError(400, f"client version {version} is too old. Minimum "
                                         f"supported API version is {MIN_API_VERSION}, please "
                                         "upgrade your client to a newer version")
            handler, params = self.server.route(self.command, path)
            t0 = time.monotonic()
            handler(self.server.api, req, **params)
            if self.server.trace:
                import sys

                sys.stderr.write(f"{time.time():.3f} {self.command} {path} "
                                 f"{(time.monotonic() - t0) * 1000:.1f} ms\n")
            if not req.answered:
                req.no_content()
            if not self.close_connection:
                req.drain()
        except ClientGone:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:  # noqa: BLE001 — every failure is a Docker-shaped answer
            self.close_connection = True
            status = status_of(err)
            if status >= 500 or req.answered:
                _log_failure(self.command, path, err)
            if req.answered:
                return  # mid-stream: nothing sane left to send
            try:
                _drain_some(req)  # a client still writing its body must read our answer
                message = docker_message(err)
                if status == 500 and not _is_tomato(err):
                    message = f"{type(err).__name__}: {err}"
                req.error(status, message)
            except (ClientGone, OSError):
                pass

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch


def _drain_some(req: Request, limit: int = 64 << 20) -> None:
    if req.h.command in ("GET", "HEAD", "DELETE") and req._body is None and \
            not req.h.headers.get("Content-Length") and \
            not req.h.headers.get("Transfer-Encoding"):
        return
    stream = req.body_stream()
    seen = 0
    req.h.connection.settimeout(5.0)
    try:
        while seen < limit:
            data = stream.read(1 << 20)
            if not data:
                break
            seen += len(data)
    except OSError:
        pass


def _log_failure(method: str, path: str, err: BaseException) -> None:
    """Server-side failures go to the server's stderr (the client got a one-line message)."""
    import sys
    import traceback

    sys.stderr.write(f"tomato serve: {method} {path}: {type(err).__name__}: {err}\n")
    if not _is_tomato(err):
        traceback.print_exception(err, file=sys.stderr)
    sys.stderr.flush()


def _is_tomato(err: BaseException) -> bool:
    from tomato.errors import TomatoError

    return isinstance(err, (TomatoError, HttpError))


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: Any, api: Api, family: int = socket.AF_UNIX) -> None:
        self.address_family = family
        self.api = api
        self.routes = compile_routes(all_routes())
        self.trace = bool(os.environ.get("TOMATO_API_TRACE"))  # per-request timings
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        err = sys.exc_info()[1]
        if isinstance(err, (ConnectionError, TimeoutError)):
            return  # a client that hung up between requests
        super().handle_error(request, client_address)

    def route(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        allowed = False
        for m, rx, handler in self.routes:
            hit = rx.match(path)
            if hit:
                if m == method or (m == "GET" and method == "HEAD" and path == "/_ping"):
                    return handler, hit.groupdict()
                allowed = True
        if allowed:
            raise HttpError(405, f"method {method} not allowed for {path}")
        raise HttpError(404, f"page not found: {method} {path}")


class _TCPServer(_Server):
    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        socketserver.TCPServer.server_bind(self)


def parse_host(host: str) -> tuple[str, Any]:
    """unix:///path or tcp://127.0.0.1:PORT (loopback only: the API is root on the host)."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        if not path.startswith("/"):
            raise InvalidArgument(f"unix socket path must be absolute: {host}")
        return "unix", path
    if host.startswith("tcp://"):
        addr, _, port = host[len("tcp://"):].rpartition(":")
        addr = addr.strip("[]")
        import ipaddress

        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            raise InvalidArgument(f"tcp host must be a loopback IP address: {host}") from None
        if not ip.is_loopback:
            raise InvalidArgument(f"refusing to serve the API on {addr}: only a loopback "
                                  "address may be used (the API is root on this host)")
        if not port.isdigit():
            raise InvalidArgument(f"bad port in {host}")
        return ("tcp6" if ip.version == 6 else "tcp"), (addr, int(port))
    raise InvalidArgument(f"unsupported host {host!r}: want unix:///path or tcp://127.0.0.1:PORT")


def make_server(cfg: Any, host: str, group: str | None = None,
                ready: Callable[[], None] | None = None) -> tuple[Any, Api]:
    """Fork the zygote (before any thread), then bind the API socket."""
    from tomato.api import events, ops, streams
    from tomato.api.zygote import Zygote

    kind, address = parse_host(host)
    rundir = Path(cfg.root) / "api"
    zygote = Zygote.start(rundir / f"zygote-{os.getpid()}", ops.make_ops(cfg))
    api = Api(cfg=cfg, zygote=zygote)
    api.hubs = streams.Hubs(api)
    api.events = events.EventLog(Path(cfg.root) / "events.jsonl")
    if kind == "unix":
        Path(address).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.unlink(address)
        except FileNotFoundError:
            pass
        old = os.umask(0o117)  # the socket is born 0660, never world-reachable
        try:
            server: _Server = _Server(address, api)
        finally:
            os.umask(old)
        gid = -1
        if group:
            import grp

            try:
                gid = grp.getgrnam(group).gr_gid if not group.isdigit() else int(group)
            except KeyError:
                zygote.stop()
                raise InvalidArgument(f"unknown group: {group}") from None
        os.chown(address, 0 if os.geteuid() == 0 else -1, gid)
        os.chmod(address, 0o660)
    else:
        server = _TCPServer(address, api,
                            socket.AF_INET6 if kind == "tcp6" else socket.AF_INET)
    return server, api


def serve(cfg: Any, host: str, group: str | None = None) -> None:
    import signal

    server, api = make_server(cfg, host, group)

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        api.zygote.stop()
        kind, address = parse_host(host)
        if kind == "unix":
            try:
                os.unlink(address)
            except FileNotFoundError:
                pass
