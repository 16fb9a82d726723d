"""HTTP/1.1 on the wire: request heads parsed strictly, bodies read to their end.

A head is parsed once, from bytes the connection loop (loop.py) gathered, so a
client that sends nothing, or half a head, never holds a worker thread.  What a
client sends is hostile: a malformed request line, a ``Content-Length`` that is
not a number, two lengths, a length beside ``Transfer-Encoding`` (the request
smuggling shapes), a bad chunk size, all answer 400 -- never a reset.

Bodies are read through a *source*: anything with ``recv(n) -> bytes`` (b"" at
the end), in practice the connection (conn.py), which serves its buffer first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_HEAD = 64 << 10  # Docker's clients send a few hundred bytes (X-Registry-Auth: a few KB)
MAX_HEADERS = 100
MAX_CHUNK_LINE = 4096

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(r"^HTTP/1\.[01]$")


class HttpError(Exception):
    """An answer with this status and Docker's {"message": ...} body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ClientGone(Exception):
    """The client closed its connection (or stopped sending) while we talked to it."""


@dataclass
class RequestHead:
    method: str
    target: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    length: int = 0  # of the body (0 when chunked)
    chunked: bool = False

    def get(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.get("connection").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    @property
    def expects_continue(self) -> bool:
        return self.get("expect").lower() == "100-continue"

    @property
    def upgrade(self) -> bool:
        return "upgrade" in self.get("connection").lower() or bool(self.get("upgrade"))

    @property
    def has_body(self) -> bool:
        return self.chunked or self.length > 0


def head_end(buf: bytes | bytearray) -> int:
    """Where the head in ``buf`` ends (just past its blank line), or -1."""
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    ends = [i + 4 for i in (crlf,) if i >= 0] + [i + 2 for i in (lf,) if i >= 0]
    return min(ends) if ends else -1


def parse_head(data: bytes) -> RequestHead:
    """The head (request line and header fields, up to the blank line) or HttpError."""
    try:
        text = data.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover — latin-1 decodes every byte
        raise HttpError(400, "malformed HTTP request") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise HttpError(400, "malformed HTTP request: empty request line")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]):
        raise HttpError(400, f"malformed HTTP request line {_show(lines[0])}")
    method, target, version = parts
    if not _VERSION.match(version):
        if version.startswith("HTTP/"):
            raise HttpError(505, f"unsupported HTTP version {_show(version)}")
        raise HttpError(400, f"malformed HTTP request line {_show(lines[0])}")
    if not target.startswith("/") or any(ord(c) < 0x21 or ord(c) == 0x7f for c in target):
        raise HttpError(400, f"malformed request target {_show(target)}")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, f"too many header fields (more than {MAX_HEADERS})")
    head = RequestHead(method, target, version)
    lengths: set[str] = set()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name):  # also obs-fold (a line starting with space)
            raise HttpError(400, f"malformed header field {_show(line)}")
        key, value = name.lower(), value.strip(" \t")
        if key == "content-length":
            lengths.add(value)
        elif key in head.headers:
            value = f"{head.headers[key]}, {value}"
        head.headers[key] = value
    coding = head.get("transfer-encoding").lower()
    if coding:
        if lengths:
            raise HttpError(400, "both Content-Length and Transfer-Encoding in one request")
        if coding != "chunked":
            raise HttpError(501, f"unsupported Transfer-Encoding {_show(coding)}")
        head.chunked = True
    if lengths:
        if len(lengths) > 1:
            raise HttpError(400, "conflicting Content-Length values")
        value = lengths.pop()
        if not value.isdigit() or not value.isascii() or len(value) > 18:
            raise HttpError(400, f"invalid Content-Length {_show(value)}")
        head.length = int(value)
    return head


def _show(text: str, limit: int = 60) -> str:
    """A client's bytes, quoted for a one-line message."""
    text = text if len(text) <= limit else text[:limit] + "..."
    return repr(text)


class LengthReader:
    """A body of a known length, read to its end whatever the client's writes."""

    def __init__(self, source: object, length: int) -> None:
        self.source = source
        self.left = length

    @property
    def done(self) -> bool:
        return self.left <= 0

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while self.left > 0 and (n < 0 or len(out) < n):
            want = self.left if n < 0 else min(self.left, n - len(out))
            data = self.source.recv(min(want, 1 << 20))  # type: ignore[attr-defined]
            if not data:
                raise ClientGone(f"the request body ended {self.left} bytes early")
            out += data
            self.left -= len(data)
        return bytes(out)


class ChunkedReader:
    """A chunked body (RFC 9112 7.1): sizes checked, extensions and trailers skipped.
    What it reads past a line's end goes back to the source (``unread``)."""

    def __init__(self, source: object) -> None:
        self.source = source
        self.left = 0
        self.done = False

    def _recv(self, n: int) -> bytes:
        data: bytes = self.source.recv(n)  # type: ignore[attr-defined]
        if not data:
            raise ClientGone("the chunked request body ended early")
        return data

    def _line(self) -> bytes:
        line = bytearray()
        while not line.endswith(b"\n"):
            if len(line) > MAX_CHUNK_LINE:
                raise HttpError(400, "invalid chunked body: line too long")
            data = self._recv(MAX_CHUNK_LINE)
            cut = data.find(b"\n")
            if cut >= 0:
                self.source.unread(data[cut + 1:])  # type: ignore[attr-defined]
                data = data[:cut + 1]
            line += data
        return bytes(line.rstrip(b"\r\n"))

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while not self.done and (n < 0 or len(out) < n):
            if self.left == 0:
                size = self._line().split(b";", 1)[0].strip(b" \t")
                if not size or len(size) > 15 or \
                        not all(c in b"0123456789abcdefABCDEF" for c in size):
                    raise HttpError(400, f"invalid chunk size {_show(size.decode('latin-1'))}")
                self.left = int(size, 16)
                if self.left == 0:
                    while self._line():
                        pass  # trailer fields, up to the blank line
                    self.done = True
                    break
            want = self.left if n < 0 else min(self.left, n - len(out))
            data = self._recv(min(want, 1 << 20))
            out += data
            self.left -= len(data)
            if self.left == 0 and self._line():
                raise HttpError(400, "invalid chunked body: no line end after a chunk")
        return bytes(out)


REASONS = {100: "Continue", 101: "UPGRADED", 200: "OK", 201: "Created", 204: "No Content",
           304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           409: "Conflict", 413: "Payload Too Large", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}


def response_head(status: int, headers: list[tuple[str, str]], reason: str = "") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason or REASONS.get(status, 'Unknown')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
