"""The attach stream: Docker's multiplexed framing, plus a control channel.

Each frame is an 8-byte header — stream id, three zero bytes, a big-endian
32-bit length — then the payload.  Streams 0/1/2 are stdin/stdout/stderr
(exactly Docker's attach format); stream 3 carries small JSON control
messages between `tomato` and a container's monitor: {"exit": N},
{"resize": [rows, cols]}, {"signal": N}, {"close_stdin": true}, {"start": true}.
"""

from __future__ import annotations

import json
import struct

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

STDIN, STDOUT, STDERR, CONTROL = 0, 1, 2, 3
_HEADER = struct.Struct(">BxxxI")


def frame(stream: int, payload: bytes) -> bytes:
    return _HEADER.pack(stream, len(payload)) + payload


def control(**message: Any) -> bytes:
    return frame(CONTROL, json.dumps(message).encode())


class FrameReader:
    """Accumulates bytes and yields complete (stream, payload) frames."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= _HEADER.size:
            stream, size = _HEADER.unpack_from(self.buf)
            if len(self.buf) < _HEADER.size + size:
                break
            out.append((stream, self.buf[_HEADER.size:_HEADER.size + size]))
            self.buf = self.buf[_HEADER.size + size:]
        return out


def decode_control(payload: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(payload)
    except ValueError:
        return {}
    return msg if isinstance(msg, dict) else {}
