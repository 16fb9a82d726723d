"""Requests and answers of the Engine API: Docker's JSON errors, bodies read whole
(wire.py), chunked streams and hijacked connections, over a Conn (conn.py).

Bodies are streamed to the handlers that take big ones (image load writes a file
under the engine root, import and archive extract as they read); a JSON body is
parsed in memory and refused past MAX_JSON_BODY.
"""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from tomato.api.wire import (
    ChunkedReader,
    ClientGone,
    HttpError,
    LengthReader,
    RequestHead,
    response_head,
)
from tomato.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)

if TYPE_CHECKING:
    from tomato.api.body import Fields

API_VERSION = "1.43"
MIN_API_VERSION = "1.24"
SERVER_VERSION = "24.0.0-tomato"

MAX_JSON_BODY = 32 << 20  # a JSON body is parsed in memory: past this it is refused (413)
DRAIN_LIMIT = 256 << 10  # what is read of an unread body to keep the connection (as Go's)

__all__ = ["API_VERSION", "MIN_API_VERSION", "SERVER_VERSION", "ClientGone", "HttpError",
           "Request", "docker_message", "status_of", "version_tuple", "ChunkedReader",
           "LengthReader"]


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
    """The engine's messages, with Docker's wording where clients parse it; one line."""
    msg = str(err) or "internal error"
    if msg.startswith("no such image: "):
        msg = "No such image: " + msg[len("no such image: "):]
    return " ".join(msg.split("\n")).strip()


def version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(data: bytes) -> Any:
    """A request body's JSON, or InvalidArgument with a one-line reason."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("invalid JSON: the body is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:  # the C scanner's guard: arrays in arrays thousands deep
        raise InvalidArgument("invalid JSON: nested too deeply") from None
    except ValueError as err:
        raise InvalidArgument(f"invalid JSON: {' '.join(str(err).split())}") from None


class Request:
    """One request: what the handler reads, and the ways it can answer."""

    def __init__(self, conn: Any, head: RequestHead, path: str, query: str,
                 version: str) -> None:
        self.conn = conn
        self.head = head
        self.method = head.method
        self.path = path
        self.query = parse_qs(query, keep_blank_values=True)
        self.version = version
        self.answered = False
        self.hijacked = False
        self.keep_alive = head.keep_alive
        self._body: Any = None
        self._raw: socket.socket | None = None  # the hijacked stream

    # -- input -------------------------------------------------------------------------
    def header(self, name: str, default: str = "") -> str:
        return self.head.get(name, default)

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
            number = float(value)
            if number != number or abs(number) > 2**63:
                raise ValueError(value)
            return int(number)
        except ValueError:
            raise InvalidArgument(f"invalid value for {name}: {value!r}") from None

    def filters(self) -> dict[str, list[str]]:
        raw = self.arg("filters", "")
        if not raw:
            return {}
        try:
            data = parse_json(raw.encode())
        except InvalidArgument as err:
            raise InvalidArgument(f"invalid filter: {err}") from None
        if not isinstance(data, dict):
            raise InvalidArgument("invalid filter: not a JSON object")
        out: dict[str, list[str]] = {}
        for key, value in data.items():
            # {"label": ["a=b"]} (new) or {"label": {"a=b": true}} (API < 1.22 style)
            out[key] = [str(v) for v in value] if isinstance(value, (list, dict)) \
                else [str(value)]
        return out

    def body_stream(self) -> Any:
        """The body as a reader (``read(n)``), read to its end whatever the client's
        writes; a client that waits for "100 Continue" gets it now."""
        if self._body is None:
            if self.head.expects_continue and self.head.has_body and not self.answered:
                self.conn.send(response_head(100, []))
            self._body = ChunkedReader(self.conn) if self.head.chunked else \
                LengthReader(self.conn, self.head.length)
        return self._body

    def body(self, limit: int = MAX_JSON_BODY) -> bytes:
        """The whole body, in memory (refused past ``limit``: spool() for big ones)."""
        stream = self.body_stream()
        if not self.head.chunked and self.head.length > limit:
            raise HttpError(413, f"request body too large ({self.head.length} bytes; "
                                 f"at most {limit})")
        out = bytearray()
        while data := stream.read(1 << 20):
            out += data
            if len(out) > limit:
                raise HttpError(413, f"request body too large (more than {limit} bytes)")
        return bytes(out)

    def json(self, default: Any = None) -> Any:
        data = self.body()
        if not data.strip():
            return default
        return parse_json(data)

    def fields(self) -> Fields:
        """The body as a JSON object read field by field with their types (body.py);
        an empty body is an empty object."""
        from tomato.api.body import Fields

        return Fields(self.json(None))

    @property
    def body_done(self) -> bool:
        if not self.head.has_body:
            return True
        return self._body is not None and bool(self._body.done)

    def drain(self, limit: int = DRAIN_LIMIT) -> bool:
        """Read what the handler left of the body (up to ``limit``), so the connection
        can serve the next request; False when it cannot."""
        if self.body_done:
            return True
        if self._body is None and self.head.expects_continue:
            return False  # the client waits for a "100 Continue" it will not get
        stream = self.body_stream()
        seen = 0
        while seen <= limit:
            data = stream.read(65536)
            if not data:
                return True
            seen += len(data)
        return False

    def discard_body(self, seconds: float = 5.0, limit: int = 64 << 20) -> None:
        """Before an error answer: read (a bounded part of) what the client is still
        sending, so it is done writing when it reads why (docker build's context)."""
        if self.body_done or self.hijacked or \
                (self._body is None and self.head.expects_continue):
            return
        deadline = time.monotonic() + seconds
        seen = 0
        try:
            self.conn.sock.settimeout(seconds)
            stream = self.body_stream()
            while seen < limit and time.monotonic() < deadline:
                data = stream.read(1 << 20)
                if not data:
                    return
                seen += len(data)
        except (ClientGone, HttpError, OSError, ValueError):
            pass

    def linger(self, seconds: float = 2.0, limit: int = 4 << 20) -> None:
        """After an error answer to a client still sending its body: stop writing and
        read a little, so closing does not reset the connection before it read us."""
        if self.body_done or self.hijacked or \
                (self._body is None and self.head.expects_continue):
            return
        sock = self.conn.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(seconds)
            deadline = time.monotonic() + seconds
            seen = 0
            while seen < limit and time.monotonic() < deadline:
                data = sock.recv(65536)
                if not data:
                    break
                seen += len(data)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        """The request is over (answered, or failed)."""

    # -- output ------------------------------------------------------------------------
    def _head(self, status: int, headers: dict[str, str], reason: str = "") -> None:
        self.answered = True
        fields = [("Api-Version", API_VERSION), ("Docker-Experimental", "false"),
                  ("Ostype", "linux"), ("Server", f"Docker/{SERVER_VERSION} (linux)"),
                  ("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))]
        fields += list(headers.items())
        if not self.keep_alive and status != 101 and "Connection" not in headers:
            fields.append(("Connection", "close"))
        self.conn.send(response_head(status, fields, reason))

    def send(self, status: int, body: bytes = b"", content_type: str = "application/json",
             headers: dict[str, str] | None = None) -> None:
        hdrs = {"Content-Type": content_type, "Content-Length": str(len(body)),
                **(headers or {})}
        if status == 204 or status == 304:
            hdrs.pop("Content-Type")
            hdrs.pop("Content-Length")
        self._head(status, hdrs)
        if body and self.method != "HEAD":
            self._write(body)

    def json_response(self, obj: Any, status: int = 200) -> None:
        self.send(status, (json.dumps(obj) + "\n").encode())

    def no_content(self) -> None:
        self.send(204)

    def error(self, status: int, message: str) -> None:
        """Docker's JSON error; the connection closes after it (the body may be unread)."""
        self.keep_alive = False
        self.send(status, (json.dumps({"message": message}) + "\n").encode(),
                  headers={"Connection": "close"})

    def _write(self, data: bytes) -> None:
        self.conn.send(data)

    # chunked streams (logs -f, events, stats, pull progress)
    def start_stream(self, content_type: str = "application/json",
                     headers: dict[str, str] | None = None) -> None:
        """A streamed answer: no timeout from here on (logs -f may wait for hours)."""
        self._head(200, {"Content-Type": content_type, "Transfer-Encoding": "chunked",
                         **(headers or {})})
        self.conn.sock.settimeout(None)

    def chunk(self, data: bytes) -> None:
        if data:
            self._write(b"%x\r\n%b\r\n" % (len(data), data))

    def json_chunk(self, obj: Any) -> None:
        self.chunk((json.dumps(obj) + "\n").encode())

    def end_stream(self) -> None:
        self._write(b"0\r\n\r\n")

    # hijacked connections (attach, exec start)
    def hijack(self, content_type: str) -> socket.socket:
        """Answer 101 UPGRADED (or 200 for an old client) and hand over a plain stream
        socket to the client (conn.Conn.hijack)."""
        self.keep_alive = False
        if self.head.upgrade:
            self._head(101, {"Content-Type": content_type, "Connection": "Upgrade",
                             "Upgrade": "tcp"}, "UPGRADED")
        else:
            self._head(200, {"Content-Type": content_type})
        self.hijacked = True
        self._raw = self.conn.hijack()
        return self._raw

    def read_raw(self, n: int = 65536) -> bytes:
        """Bytes the client sends on a hijacked connection (b"" at EOF/half-close)."""
        assert self._raw is not None
        try:
            return self._raw.recv(n)
        except OSError:
            return b""

    def client_gone(self) -> bool:
        """Has the client closed its side (checked while a stream is idle)?"""
        return bool(self.conn.client_gone())
