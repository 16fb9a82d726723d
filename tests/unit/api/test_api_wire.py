"""HTTP/1.1 heads and bodies as the API server reads them: strict, and hostile
input answered with a status (never a reset or a Python exception)."""

from __future__ import annotations

import pytest

from tomato.api.body import Fields
from tomato.api.http import parse_json
from tomato.api.wire import (
    ChunkedReader,
    ClientGone,
    HttpError,
    LengthReader,
    head_end,
    parse_head,
)
from tomato.errors import InvalidArgument


class Source:
    """A connection's reading side: recv(n) in small pieces, unread() puts back."""

    def __init__(self, data: bytes, piece: int = 3) -> None:
        self.data = bytearray(data)
        self.piece = piece

    def recv(self, n: int) -> bytes:
        out = bytes(self.data[:min(n, self.piece)])
        del self.data[:len(out)]
        return out

    def unread(self, data: bytes) -> None:
        self.data[:0] = data


def test_chunked_reader() -> None:
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT"
    for piece in (1, 3, 4096):
        src = Source(body, piece)
        r = ChunkedReader(src)
        assert r.read(3) == b"hel"
        assert r.read() == b"lo world"
        assert r.read() == b"" and r.done
        assert bytes(src.data) == b"NEXT"  # the next request is left alone


def test_a_docker_cli_head() -> None:
    raw = (b"POST /v1.43/containers/create?name=web HTTP/1.1\r\nHost: api.moby.localhost\r\n"
           b"User-Agent: Docker-Client/24.0.7 (linux)\r\nContent-Length: 1234\r\n"
           b"Content-Type: application/json\r\n\r\n")
    assert head_end(raw + b"{...") == len(raw)
    head = parse_head(raw)
    assert (head.method, head.target, head.version) == \
        ("POST", "/v1.43/containers/create?name=web", "HTTP/1.1")
    assert head.length == 1234 and not head.chunked and head.keep_alive
    assert head.get("content-type") == "application/json"
    assert head.get("CONTENT-TYPE") == "application/json"


def test_keep_alive_upgrade_continue() -> None:
    assert not parse_head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive
    assert not parse_head(b"GET / HTTP/1.0\r\n\r\n").keep_alive
    assert parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive
    up = parse_head(b"POST /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    assert up.upgrade
    assert parse_head(b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\n"
                      b"Content-Length: 5\r\n\r\n").expects_continue
    assert head_end(b"GET / HTTP/1.1\nHost: x\n\n") == len(b"GET / HTTP/1.1\nHost: x\n\n")
    assert head_end(b"GET / HTTP/1.1\r\nHost: x\r\n") == -1


@pytest.mark.parametrize("raw,status,words", [
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "malformed"),
    (b"GARBAGE\r\n\r\n", 400, "malformed HTTP request line"),
    (b"GET /\r\n\r\n", 400, "malformed"),
    (b"GET / HTTP/2.0\r\n\r\n", 505, "unsupported HTTP version"),
    (b"GET noslash HTTP/1.1\r\n\r\n", 400, "request target"),
    (b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, "invalid Content-Length 'abc'"),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "invalid Content-Length"),
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "conflicting"),
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Transfer-Encoding"),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400, "malformed header"),
    (b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, "malformed header"),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431, "too many"),
])
def test_bad_heads(raw: bytes, status: int, words: str) -> None:
    with pytest.raises(HttpError) as info:
        parse_head(raw)
    assert info.value.status == status and words in str(info.value)
    assert "\n" not in str(info.value)


def test_length_reader_across_writes() -> None:
    body = b"x" * 300_000
    src = Source(body + b"NEXT", piece=7919)
    r = LengthReader(src, len(body))
    assert r.read() == body and r.done and r.read() == b""
    assert bytes(src.data) == b"NEXT"
    with pytest.raises(ClientGone):
        LengthReader(Source(b"short"), 10).read()


@pytest.mark.parametrize("body", [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n",
                                  b"-5\r\nhello\r\n0\r\n\r\n", b"1" * 5000 + b"\r\n"])
def test_bad_chunks(body: bytes) -> None:
    with pytest.raises(HttpError) as info:
        ChunkedReader(Source(body, 4096)).read()
    assert info.value.status == 400


def test_json_bodies() -> None:
    assert parse_json(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    for bad, words in [(b"{not json", "invalid JSON"), (b"\xff\xfe", "not UTF-8"),
                       (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
                       (b'{"a": NaN}', "NaN is not a JSON number"),
                       (b'{"a": 1' + b"0" * 5000 + b"}", "invalid JSON")]:
        with pytest.raises(InvalidArgument) as info:
            parse_json(bad)
        assert words in str(info.value) and "\n" not in str(info.value)
        assert "Error" not in str(info.value)  # never a Python exception's name


def test_fields() -> None:
    f = Fields({"Name": "n", "N": 3.0, "B": True, "L": ["a"], "S": "one", "M": {"k": "v"},
                "O": {"X": 1}, "Null": None})
    assert f.text("Name") == "n" and f.integer("N") == 3 and f.boolean("B")
    assert f.texts("L") == ["a"] and f.texts("S", lone=True) == ["one"]
    assert f.text_map("M") == {"k": "v"} and f.obj("O").integer("X") == 1
    assert f.text("Null", "d") == "d" and f.integer("Missing", 7) == 7
    assert f.obj("Missing").data == {} and f.objs("Null") == []
    with pytest.raises(InvalidArgument, match="field O.X of type string"):
        f.obj("O").text("X")
    with pytest.raises(InvalidArgument, match="bool into field B of type int64"):
        f.integer("B")
    with pytest.raises(InvalidArgument, match="string into field S of type \\[\\]string"):
        f.texts("S")
