"""HTTP plumbing for the Engine API: requests, Docker's JSON errors, chunked
streams and hijacked connections, on top of http.server."""

from __future__ import annotations

import json
import select
import socket
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tomato.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)

API_VERSION = "1.43"
MIN_API_VERSION = "1.24"
SERVER_VERSION = "24.0.0-tomato"


class ClientGone(Exception):
    """The client closed its connection while we were streaming to it."""


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def status_of(err: BaseException) -> int:
    if isinstance(err, HttpError):
        return err.status
    if isinstance(err, NotFound):
        return 404
    if isinstance(err, (AlreadyExists, Conflict)):
        return 409
    if isinstance(err, InvalidArgument):
        return 400
    if isinstance(err, PermissionDenied):
        return 403
    if isinstance(err, Unavailable):
        return 503
    return 500


def docker_message(err: BaseException) -> str:
    """The engine's messages, with Docker's wording where clients parse it."""
    msg = str(err) or type(err).__name__
    if msg.startswith("no such image: "):
        msg = "No such image: " + msg[len("no such image: "):]
    return msg


def version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


class ChunkedReader:
    """A file-like reader of a chunked request body."""

    def __init__(self, rfile: Any) -> None:
        self.rfile = rfile
        self.left = 0
        self.done = False

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while not self.done and (n < 0 or len(out) < n):
            if self.left == 0:
                line = self.rfile.readline(1024)
                if not line:
                    self.done = True
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self.done = True
                    break
                self.left = size
            want = self.left if n < 0 else min(self.left, n - len(out))
            data = self.rfile.read(want)
            if not data:
                self.done = True
                break
            out += data
            self.left -= len(data)
            if self.left == 0:
                self.rfile.readline(16)
        return bytes(out)


class LimitedReader:
    def __init__(self, rfile: Any, length: int) -> None:
        self.rfile = rfile
        self.left = length

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n < 0 else min(n, self.left)
        data: bytes = self.rfile.read(n)
        self.left -= len(data)
        return data


class Request:
    """One request: what the handler reads, and the ways it can answer."""

    def __init__(self, handler: BaseHTTPRequestHandler, method: str, path: str, query: str,
                 version: str) -> None:
        self.h = handler
        self.method = method
        self.path = path
        self.query = parse_qs(query, keep_blank_values=True)
        self.version = version
        self.answered = False
        self._body: Any = None

    # -- input -------------------------------------------------------------------------
    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.arg(name, "")
        if value == "":
            return default if name not in self.query else True
        return value.lower() in ("1", "true", "yes")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name, "")
        if value == "":
            return default
        try:
            return int(float(value))
        except ValueError:
            raise InvalidArgument(f"invalid value for {name}: {value!r}") from None

    def filters(self) -> dict[str, list[str]]:
        raw = self.arg("filters", "")
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise InvalidArgument(f"invalid filter: {err}") from err
        if not isinstance(data, dict):
            raise InvalidArgument("invalid filter: not a JSON object")
        out: dict[str, list[str]] = {}
        for key, value in data.items():
            # {"label": ["a=b"]} (new) or {"label": {"a=b": true}} (API < 1.22 style)
            out[key] = list(value) if isinstance(value, (list, dict)) else [str(value)]
        return out

    def body_stream(self) -> Any:
        if self._body is None:
            if "chunked" in (self.h.headers.get("Transfer-Encoding") or "").lower():
                self._body = ChunkedReader(self.h.rfile)
            else:
                self._body = LimitedReader(self.h.rfile,
                                           int(self.h.headers.get("Content-Length") or 0))
        return self._body

    def body(self) -> bytes:
        data: bytes = self.body_stream().read()
        return data

    def json(self, default: Any = None) -> Any:
        data = self.body()
        if not data.strip():
            return default
        try:
            return json.loads(data)
        except ValueError as err:
            raise InvalidArgument(f"invalid JSON: {err}") from err

    def drain(self) -> None:
        """Read what the handler left of the body, so the connection can be reused."""
        stream = self.body_stream()
        while stream.read(65536):
            pass

    # -- output ------------------------------------------------------------------------
    def _head(self, status: int, headers: dict[str, str], reason: str | None = None) -> None:
        self.answered = True
        self.h.send_response(status, reason)
        self.h.send_header("Api-Version", API_VERSION)
        self.h.send_header("Docker-Experimental", "false")
        self.h.send_header("Ostype", "linux")
        for k, v in headers.items():
            self.h.send_header(k, v)
        self.h.end_headers()

    def send(self, status: int, body: bytes = b"", content_type: str = "application/json",
             headers: dict[str, str] | None = None) -> None:
        hdrs = {"Content-Type": content_type, "Content-Length": str(len(body)),
                **(headers or {})}
        if status == 204 or status == 304:
            hdrs.pop("Content-Type")
        self._head(status, hdrs)
        if body and self.method != "HEAD":
            self._write(body)

    def json_response(self, obj: Any, status: int = 200) -> None:
        self.send(status, (json.dumps(obj) + "\n").encode())

    def no_content(self) -> None:
        self.send(204)

    def error(self, status: int, message: str) -> None:
        """Docker's JSON error; the connection closes after it (the request body may be
        unread), and says so, or a client would reuse it."""
        self.h.close_connection = True
        self.send(status, (json.dumps({"message": message}) + "\n").encode(),
                  headers={"Connection": "close"})

    def _write(self, data: bytes) -> None:
        try:
            self.h.wfile.write(data)
        except OSError as err:
            raise ClientGone() from err

    # chunked streams (logs -f, events, stats, pull progress)
    def start_stream(self, content_type: str = "application/json",
                     headers: dict[str, str] | None = None) -> None:
        self._head(200, {"Content-Type": content_type, "Transfer-Encoding": "chunked",
                         **(headers or {})})

    def chunk(self, data: bytes) -> None:
        if data:
            self._write(b"%x\r\n%b\r\n" % (len(data), data))

    def json_chunk(self, obj: Any) -> None:
        self.chunk((json.dumps(obj) + "\n").encode())

    def end_stream(self) -> None:
        self._write(b"0\r\n\r\n")

    # hijacked connections (attach, exec start)
    def hijack(self, content_type: str) -> socket.socket:
        """Answer 101 UPGRADED (or 200 for an old client) and hand over the raw socket."""
        upgrade = "upgrade" in (self.h.headers.get("Connection") or "").lower() or \
            bool(self.h.headers.get("Upgrade"))
        if upgrade:
            self._head(101, {"Content-Type": content_type, "Connection": "Upgrade",
                             "Upgrade": "tcp"}, "UPGRADED")
        else:
            self._head(200, {"Content-Type": content_type})
        self.h.close_connection = True
        sock: socket.socket = self.h.connection
        return sock

    def read_raw(self, n: int = 65536) -> bytes:
        """Bytes the client sends on a hijacked connection (b"" at EOF/half-close).
        The handler's rfile is unbuffered, so nothing hides in a buffer."""
        try:
            data: bytes = self.h.connection.recv(n)
            return data
        except OSError:
            return b""

    def client_gone(self) -> bool:
        """Has the client closed its side (checked while a stream is idle)?"""
        sock = self.h.connection
        try:
            ready, _, _ = select.select([sock], [], [], 0)
            if not ready:
                return False
            return sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True
