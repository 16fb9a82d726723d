"""`tomato serve`: the Docker Engine API on a unix socket (or a loopback TCP port).

One thread waits on every connection and a bounded pool of workers answers
whole requests (loop.py; HTTP in wire.py, http.py and conn.py); every
operation that forks goes to the zygote (zygote.py), forked before the first
thread.  Handlers call the engine's use cases; nothing here re-implements one.
The socket is 0660 with a group (``--group``, else ``tomato`` if it exists),
as Docker's; a TCP port needs mutual TLS or ``--insecure-tcp`` (tls.py).

Routes are ``(METHOD, pattern, handler)``; a pattern's ``{name}`` matches one
path segment, ``{name*}`` the rest (image names hold slashes).  A
``/v1.NN`` prefix picks the API version: 1.24 up to API_VERSION.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tomato.api import tls
from tomato.api.conn import Conn
from tomato.api.http import (
    API_VERSION,
    MIN_API_VERSION,
    ClientGone,
    HttpError,
    Request,
    docker_message,
    status_of,
    version_tuple,
)
from tomato.api.loop import Limits, Loop, listen_backlog
from tomato.api.tls import TransportOptions
from tomato.api.wire import RequestHead, response_head
from tomato.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.api.events import EventLog
    from tomato.api.streams import Hubs
    from tomato.api.zygote import Zygote
    from tomato.engine.config import EngineConfig

Handler = Callable[..., None]
_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
DEFAULT_GROUP = "tomato"  # as Docker's "docker": the group that may use the socket


@dataclass
class Api:
    """What every handler gets: the engine config and the server's shared state."""

    cfg: EngineConfig
    zygote: Zygote
    hubs: Hubs = None  # type: ignore[assignment]  # set by make_server before any request
    execs: dict[str, Any] = field(default_factory=dict)
    events: EventLog = None  # type: ignore[assignment]  # likewise
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
    from tomato.api import build, containers, execs, images, objects, stats, streams, system

    routes: list[tuple[str, str, Handler]] = []
    for module in (system, streams, containers, stats, execs, images, objects, build):
        routes.extend(module.ROUTES)
    return routes


class Server:
    """The routes, the listening socket and the connection loop (loop.py)."""

    def __init__(self, api: Api, listener: socket.socket, limits: Limits,
                 tls: ssl.SSLContext | None = None) -> None:
        self.api = api
        self.listener = listener
        self.routes = compile_routes(all_routes())
        self.trace = bool(os.environ.get("TOMATO_API_TRACE"))  # per-request timings
        self.loop = Loop(listener, self.answer, limits, tls, _forget_thread_db)

    def serve_forever(self) -> None:
        self.loop.run()

    def shutdown(self) -> None:
        self.loop.stop()

    def server_close(self) -> None:
        self.listener.close()

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

    def answer(self, conn: Conn, what: RequestHead | HttpError) -> bool:
        """Answer one request (on a worker); True if the connection may serve another."""
        if isinstance(what, HttpError):  # not even a request: say why, and hang up
            _refuse(conn, what)
            return False
        path, _, query = what.target.partition("?")
        req = Request(conn, what, path, query, API_VERSION)
        try:
            self._dispatch(req)
            if req.hijacked:
                return False
            return req.keep_alive and req.drain()
        except (ClientGone, BrokenPipeError, ConnectionResetError):
            return False
        except Exception as err:  # noqa: BLE001 — every failure is a Docker-shaped answer
            self._fail(req, err)
            return False
        finally:
            req.close()

    def _dispatch(self, req: Request) -> None:
        m = _VERSIONED.match(req.path)
        if m:
            version = f"{int(m.group(1))}.{int(m.group(2))}"
            req.path, req.version = m.group(3), version
            if version_tuple(version) > version_tuple(API_VERSION):
                raise HttpError(400, f"client version {version} is too new. Maximum "
                                     f"supported API version is {API_VERSION}")
            if version_tuple(version) < version_tuple(MIN_API_VERSION):
                raise HttpError(400, f"client version {version} is too old. Minimum "
                                     f"supported API version is {MIN_API_VERSION}, please "
                                     "upgrade your client to a newer version")
        handler, params = self.route(req.method, req.path)
        t0 = time.monotonic()
        handler(self.api, req, **params)
        if self.trace:
            sys.stderr.write(f"{time.time():.3f} {req.method} {req.path} "
                             f"{(time.monotonic() - t0) * 1000:.1f} ms\n")
        if not req.answered:
            req.no_content()

    def _fail(self, req: Request, err: Exception) -> None:
        if isinstance(err, TimeoutError):
            err = HttpError(408, "timed out reading the request body")
        status = status_of(err)
        if status >= 500 or req.answered:
            _log_failure(req.method, req.path, err)
        if req.answered:
            return  # mid-stream: nothing sane left to send
        message = docker_message(err)
        if status == 500 and not _is_tomato(err):  # a bug of ours: the details are logged
            message = f"internal error in {req.method} {req.path} (see the server's log)"
        try:
            if status not in (408, 413):  # not waiting again for a slow or huge body
                req.discard_body()
            req.error(status, message)
        except ClientGone:
            return
        req.linger()


def _refuse(conn: Conn, err: HttpError) -> None:
    """Docker's JSON error for bytes that were not a request we could parse."""
    body = (json.dumps({"message": str(err)}) + "\n").encode()
    try:
        conn.send(response_head(err.status, [
            ("Api-Version", API_VERSION), ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))), ("Connection", "close")]) + body)
        conn.sock.shutdown(socket.SHUT_WR)
        conn.sock.settimeout(1.0)
        while conn.sock.recv(65536):  # read a little, so closing does not reset it
            pass
    except (ClientGone, OSError, ValueError):
        pass


def _forget_thread_db() -> None:
    from tomato.engine.store import forget_thread_connections

    forget_thread_connections()


def _log_failure(method: str, path: str, err: BaseException) -> None:
    """Server-side failures go to the server's stderr (the client got a one-line message)."""
    import traceback

    sys.stderr.write(f"tomato serve: {method} {path}: {type(err).__name__}: {err}\n")
    if not _is_tomato(err):
        traceback.print_exception(err, file=sys.stderr)
    sys.stderr.flush()


def _is_tomato(err: BaseException) -> bool:
    from tomato.errors import TomatoError

    return isinstance(err, (TomatoError, HttpError))


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


def _group_id(group: str | None) -> int:
    """The socket's group: --group, else `tomato` if that group exists, else root's."""
    import grp

    if group is None:
        try:
            return grp.getgrnam(DEFAULT_GROUP).gr_gid
        except KeyError:
            return -1
    if group == "":
        return -1
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise InvalidArgument(f"unknown group: {group}") from None


def _listen(kind: str, address: Any, group: str | None) -> socket.socket:
    if kind == "unix":
        from tomato._sys import userns

        rootless = userns.rootless()
        if rootless and group:
            raise InvalidArgument("--group: a rootless engine's socket is its user's alone "
                                  "(mode 0600)")
        gid = -1 if rootless else _group_id(group)
        Path(address).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.unlink(address)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Bound under a temporary name, given its group, then renamed into place: the
        # socket appears whole, with its final mode and group (connect finds it by inode)
        tmp = f"{address}.{os.getpid()}.tmp"
        old = os.umask(0o177 if rootless else 0o117)  # born 0600 or 0660, never for all
        try:
            sock.bind(tmp)
        finally:
            os.umask(old)
        try:
            if not rootless:
                os.chown(tmp, 0 if os.geteuid() == 0 else -1, gid)
            os.chmod(tmp, 0o600 if rootless else 0o660)
            os.rename(tmp, address)
        except BaseException:
            sock.close()
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    else:
        sock = socket.socket(socket.AF_INET6 if kind == "tcp6" else socket.AF_INET,
                             socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as err:
            sock.close()
            raise InvalidArgument(f"cannot listen on {address[0]}:{address[1]}: "
                                  f"{err.strerror}") from None
    sock.listen(listen_backlog())
    sock.set_inheritable(False)
    return sock


def make_server(cfg: EngineConfig, host: str, group: str | None = None,
                transport: TransportOptions | None = None,
                warn: Callable[[str], None] = lambda line: None) -> tuple[Server, Api]:
    """Check the transport (``warn``: each line of a warning, before anyone can connect),
    fork the zygote (before any thread), then listen."""
    from tomato.api import events, ops, streams
    from tomato.api.zygote import Zygote

    transport = transport or TransportOptions()
    kind, address = parse_host(host)
    for line in tls.check(host, kind, transport):
        warn(line)
    context = tls.server_context(transport) if transport.wants_tls else None
    if kind == "unix":
        _group_id(group)  # an unknown group is refused before anything starts
    rundir = Path(cfg.root) / "api"
    zygote = Zygote.start(rundir / f"zygote-{os.getpid()}", ops.make_ops(cfg))
    try:
        listener = _listen(kind, address, group)
    except BaseException:
        zygote.stop()
        raise
    api = Api(cfg=cfg, zygote=zygote)
    api.hubs = streams.Hubs(api)
    api.events = events.EventLog(Path(cfg.root) / "events.jsonl")
    return Server(api, listener, Limits.from_env(), context), api


def serve(cfg: EngineConfig, host: str, group: str | None = None,
          transport: TransportOptions | None = None) -> None:
    import signal

    def warn(line: str) -> None:
        sys.stderr.write(f"tomato: WARNING: {line}\n")
        sys.stderr.flush()

    # SIGTERM is a clean stop from the first moment (not only once we listen): a stop
    # during start-up used to kill us with the socket left behind.
    running: list[Server] = []
    stopping: list[int] = []

    def stop(*_: Any) -> None:
        stopping.append(1)
        for server in running:
            server.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # The engine's supervisor (restart policies, dead monitors) beside the API, as
    # dockerd is both: a child forked before any thread (it forks monitors), one per
    # root -- if `tomato daemon` already supervises this root, the child leaves.
    from tomato.engine import supervise

    Path(cfg.root).mkdir(parents=True, exist_ok=True)
    supervisor = supervise.spawn(cfg, Path(cfg.root) / "supervisor.log")
    try:
        server, api = make_server(cfg, host, group, transport, warn)
    except BaseException:
        _stop_child(supervisor)
        raise
    running.append(server)
    try:
        if not stopping:
            server.serve_forever()
    finally:
        server.server_close()
        kind, address = parse_host(host)
        if kind == "unix":
            try:
                os.unlink(address)
            except FileNotFoundError:
                pass
        api.zygote.stop()
        _stop_child(supervisor)


def _stop_child(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
