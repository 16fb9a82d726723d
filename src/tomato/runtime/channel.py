"""A message channel between the runtime and the container's init process.

A SOCK_SEQPACKET socketpair keeps message boundaries, so each JSON message
is one recv.  Either side seeing EOF knows the other died.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from tomato.errors import TomatoError

_MAX = 1 << 20


class ChannelClosed(TomatoError):
    pass


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def send(self, kind: str, **fields: Any) -> None:
        fields["type"] = kind
        self.sock.send(json.dumps(fields).encode())

    def recv(self) -> dict[str, Any]:
        data = self.sock.recv(_MAX)
        if not data:
            raise ChannelClosed("the other side closed the channel")
        msg: dict[str, Any] = json.loads(data)
        return msg

    def expect(self, kind: str) -> dict[str, Any]:
        msg = self.recv()
        if msg.get("type") == "error":
            raise TomatoError(msg.get("msg", "unknown error"))
        if msg.get("type") != kind:
            raise TomatoError(f"protocol error: expected {kind}, got {msg.get('type')}")
        return msg

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
