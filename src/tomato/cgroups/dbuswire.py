"""The D-Bus wire format (the specification's "Message Protocol"): signatures,
marshalling of every type but unix fds (``h``), and whole messages.

Values: the basic types as Python ints, floats, bools and strs; arrays as lists
(a ``dict`` for ``a{..}``); structs as tuples or lists; a variant to send as a
:class:`Variant`, a received one as a ``(signature, value)`` pair.  Messages are
written little-endian and read in either byte order.  Pure: no I/O.
"""

from __future__ import annotations

import struct

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
# Header field codes and the type of their values.
FIELD_PATH, FIELD_INTERFACE, FIELD_MEMBER, FIELD_ERROR_NAME = 1, 2, 3, 4
FIELD_REPLY_SERIAL, FIELD_DESTINATION, FIELD_SENDER, FIELD_SIGNATURE = 5, 6, 7, 8
_FIELD_TYPE = {FIELD_PATH: "o", FIELD_INTERFACE: "s", FIELD_MEMBER: "s", FIELD_ERROR_NAME: "s",
               FIELD_REPLY_SERIAL: "u", FIELD_DESTINATION: "s", FIELD_SENDER: "s",
               FIELD_SIGNATURE: "g"}

#: The specification's limits: a message of at most 128 MiB, arrays of 64 MiB,
#: nesting 32 deep. A peer that sends more is not one we talk to.
MAX_MESSAGE = 128 << 20
MAX_ARRAY = 64 << 20
MAX_DEPTH = 64

_FIXED = {"y": "B", "b": "I", "n": "h", "q": "H", "i": "i", "u": "I", "x": "q",
          "t": "Q", "d": "d", "h": "I"}
_ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "h": 4,
          "s": 4, "o": 4, "g": 1, "v": 1, "a": 4, "(": 8, "{": 8}


class Variant:
    """A value to be marshalled with its own signature (``v``)."""

    __slots__ = ("signature", "value")

    def __init__(self, signature: str, value: object) -> None:
        self.signature = signature
        self.value = value

    def __repr__(self) -> str:
        return f"Variant({self.signature!r}, {self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Variant) and (self.signature, self.value) == \
            (other.signature, other.value)


# ---- signatures ----------------------------------------------------------------

def split_signature(sig: str) -> list[str]:
    """"a(sv)su" → ["a(sv)", "s", "u"]; ValueError for a malformed signature."""
    out, i = [], 0
    while i < len(sig):
        end = _complete_type_end(sig, i, 0)
        out.append(sig[i:end])
        i = end
    return out


def _complete_type_end(sig: str, i: int, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise ValueError(f"signature {sig!r} nests too deeply")
    if i >= len(sig):
        raise ValueError(f"signature {sig!r} ends inside a type")
    c = sig[i]
    if c in _FIXED or c in "sogv":
        return i + 1
    if c == "a":
        if i + 1 < len(sig) and sig[i + 1] == "{":
            key_end = _complete_type_end(sig, i + 2, depth + 1)
            if sig[i + 2] not in _FIXED and sig[i + 2] not in "sog":
                raise ValueError(f"signature {sig!r}: a dict key must be a basic type")
            value_end = _complete_type_end(sig, key_end, depth + 1)
            if value_end >= len(sig) or sig[value_end] != "}":
                raise ValueError(f"signature {sig!r}: a dict entry holds two types")
            return value_end + 1
        return _complete_type_end(sig, i + 1, depth + 1)
    if c == "(":
        j = i + 1
        if j < len(sig) and sig[j] == ")":
            raise ValueError(f"signature {sig!r}: an empty struct")
        while j < len(sig) and sig[j] != ")":
            j = _complete_type_end(sig, j, depth + 1)
        if j >= len(sig):
            raise ValueError(f"signature {sig!r}: an unclosed struct")
        return j + 1
    raise ValueError(f"signature {sig!r}: unknown type code {c!r}")


# ---- marshalling ----------------------------------------------------------------

class _Writer:
    def __init__(self, endian: str = "<") -> None:
        self.buf = bytearray()
        self.endian = endian

    def pad(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def fixed(self, code: str, value: object) -> None:
        self.pad(_ALIGN[code])
        if code == "b":
            value = 1 if value else 0
        self.buf += struct.pack(self.endian + _FIXED[code], value)

    def string(self, code: str, value: str) -> None:
        data = value.encode()
        if b"\0" in data:
            raise ValueError(f"a D-Bus string cannot hold a NUL byte: {value!r}")
        if code == "g":
            self.buf.append(len(data))
        else:
            self.fixed("u", len(data))
        self.buf += data + b"\0"

    def value(self, sig: str, v: object) -> None:
        c = sig[0]
        if c in _FIXED:
            self.fixed(c, v)
        elif c in "sog":
            self.string(c, v)  # type: ignore[arg-type]
        elif c == "v":
            if not isinstance(v, Variant):
                raise TypeError(f"a variant needs a Variant, got {v!r}")
            split_signature(v.signature)
            self.string("g", v.signature)
            self.value(v.signature, v.value)
        elif c == "(":
            self.pad(8)
            fields = split_signature(sig[1:-1])
            items = list(v)  # type: ignore[call-overload]
            if len(items) != len(fields):
                raise ValueError(f"struct {sig} needs {len(fields)} fields, got {len(items)}")
            for f, item in zip(fields, items, strict=True):
                self.value(f, item)
        elif c == "a":
            self.pad(4)
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            elem = sig[1:]
            self.pad(_ALIGN[elem[0]])
            start = len(self.buf)
            if elem[0] == "{":
                key, val = split_signature(elem[1:-1])
                for k, item in v.items():  # type: ignore[attr-defined]
                    self.pad(8)
                    self.value(key, k)
                    self.value(val, item)
            else:
                for item in v:  # type: ignore[attr-defined]
                    self.value(elem, item)
            length = len(self.buf) - start
            if length > MAX_ARRAY:
                raise ValueError("a D-Bus array is limited to 64 MiB")
            struct.pack_into(self.endian + "I", self.buf, at, length)
        else:
            raise ValueError(f"cannot marshal type {sig!r}")


def marshal(signature: str, values: list[object] | tuple[object, ...]) -> bytes:
    """The body for ``signature`` (aligned as if it started at offset 0, as bodies do)."""
    w = _Writer()
    types = split_signature(signature)
    if len(types) != len(values):
        raise ValueError(f"signature {signature!r} needs {len(types)} values, got {len(values)}")
    for t, v in zip(types, values, strict=True):
        w.value(t, v)
    return bytes(w.buf)


class _Reader:
    def __init__(self, data: bytes, endian: str, pos: int = 0) -> None:
        self.data = data
        self.endian = endian
        self.pos = pos

    def align(self, n: int) -> None:
        self.pos += -self.pos % n

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("a D-Bus message ends inside a value")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def fixed(self, code: str) -> object:
        self.align(_ALIGN[code])
        fmt = _FIXED[code]
        (value,) = struct.unpack(self.endian + fmt, self.take(struct.calcsize(fmt)))
        return bool(value) if code == "b" else value

    def value(self, sig: str, depth: int = 0) -> object:
        if depth > MAX_DEPTH:
            raise ValueError("a D-Bus value nests too deeply")
        c = sig[0]
        if c in _FIXED:
            return self.fixed(c)
        if c in "so":
            size: int = self.fixed("u")  # type: ignore[assignment]
            return self.take(size + 1)[:-1].decode(errors="replace")
        if c == "g":
            glen = self.take(1)[0]
            return self.take(glen + 1)[:-1].decode("ascii", errors="replace")
        if c == "v":
            inner = self.value("g")
            types = split_signature(inner)  # type: ignore[arg-type]
            if len(types) != 1:
                raise ValueError(f"a variant holds one type, not {inner!r}")
            return (inner, self.value(types[0], depth + 1))
        if c == "(":
            self.align(8)
            return tuple(self.value(f, depth + 1) for f in split_signature(sig[1:-1]))
        if c == "a":
            alen: int = self.fixed("u")  # type: ignore[assignment]
            if alen > MAX_ARRAY:
                raise ValueError("a D-Bus array over 64 MiB")
            elem = sig[1:]
            self.align(_ALIGN[elem[0]])
            end = self.pos + alen
            if end > len(self.data):
                raise ValueError("a D-Bus array runs past its message")
            if elem[0] == "{":
                key, val = split_signature(elem[1:-1])
                d = {}
                while self.pos < end:
                    self.align(8)
                    k = self.value(key, depth + 1)
                    d[k] = self.value(val, depth + 1)
                return d
            items = []
            while self.pos < end:
                items.append(self.value(elem, depth + 1))
            return items
        raise ValueError(f"cannot unmarshal type {sig!r}")


def unmarshal(signature: str, data: bytes, endian: str = "<") -> list[object]:
    r = _Reader(data, endian)
    return [r.value(t) for t in split_signature(signature)]


class Message:
    """One message: its type, serial, header fields (by code) and decoded body."""

    __slots__ = ("type", "serial", "fields", "body")

    def __init__(self, type_: int, serial: int, fields: dict[int, object],
                 body: list[object]) -> None:
        self.type = type_
        self.serial = serial
        self.fields = fields
        self.body = body

    @property
    def member(self) -> object:
        return self.fields.get(FIELD_MEMBER)

    @property
    def interface(self) -> object:
        return self.fields.get(FIELD_INTERFACE)


def encode_message(type_: int, serial: int, fields: dict[int, object], signature: str = "",
                   body: list[object] | tuple[object, ...] = (), flags: int = 0) -> bytes:
    payload = marshal(signature, body) if signature else b""
    header_fields = [(code, Variant(_FIELD_TYPE[code], value))
                     for code, value in sorted(fields.items())]
    if signature:
        header_fields.append((FIELD_SIGNATURE, Variant("g", signature)))
    w = _Writer()
    w.buf += struct.pack("<cBBBII", b"l", type_, flags, 1, len(payload), serial)
    w.value("a(yv)", header_fields)
    w.pad(8)
    return bytes(w.buf) + payload


def decode_message(data: bytes) -> Message:
    """A whole message (as framed by :func:`message_length`)."""
    endian = {b"l"[0]: "<", b"B"[0]: ">"}.get(data[0])
    if endian is None:
        raise ValueError(f"unknown D-Bus byte order {data[:1]!r}")
    type_, _flags, _version, body_len, serial = struct.unpack(endian + "BBBII", data[1:12])
    r = _Reader(data, endian, 12)
    raw_fields: list = r.value("a(yv)")  # type: ignore[assignment]
    fields = {code: value for code, (_sig, value) in raw_fields}
    r.align(8)
    body_data = data[r.pos:r.pos + body_len]
    sig = fields.get(FIELD_SIGNATURE, "")
    body = unmarshal(sig, body_data, endian) if sig else []  # type: ignore[arg-type]
    return Message(type_, serial, fields, body)


def message_length(head: bytes) -> int:
    """The whole length of a message from its first 16 bytes."""
    endian = {b"l": "<", b"B": ">"}.get(head[:1])
    if endian is None:
        raise ValueError(f"unknown D-Bus byte order {head[:1]!r}")
    body_len, _serial, fields_len = struct.unpack(endian + "III", head[4:16])
    header = 16 + fields_len
    total = header + (-header % 8) + body_len
    if total > MAX_MESSAGE:
        raise ValueError(f"a D-Bus message of {total} bytes is over the 128 MiB limit")
    return total
