"""The client side of a container's attach socket: what `run`, `start -a` and
`attach` use to stream a container's output and feed its input."""

from __future__ import annotations

import os
import select
import signal
import socket
import termios
from pathlib import Path

from tomato.engine import frames
from tomato.errors import Unavailable

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any


def short_path(path: Path) -> tuple[str, int]:
    """A unix socket path under 108 bytes however deep ``path`` is: through an
    O_PATH fd of its directory (close the fd when done)."""
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{path.name}", fd


def connect(path: Path, timeout: float = 5.0) -> socket.socket:
    import time

    deadline = time.monotonic() + timeout
    short, dir_fd = short_path(path)
    try:
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(short)
                return sock
            except OSError as err:
                sock.close()
                if time.monotonic() > deadline:
                    raise Unavailable(f"cannot attach: {err.strerror}") from err
                time.sleep(0.01)
    finally:
        os.close(dir_fd)


def _winsize() -> tuple[int, int] | None:
    from tomato.runtime.console import get_size

    return get_size(0) if os.isatty(0) else None


#: what stream() returns when the user typed the detach keys (the container runs on)
DETACHED = -1
#: docker's default detach keys: ctrl-p ctrl-q
DETACH_KEYS = b"\x10\x11"


class EscapeProxy:
    """Watches what the user types for the detach keys: bytes that may begin them are
    held back until they do (detach) or do not (sent on), as docker's term.EscapeProxy."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(what to send to the container, whether the keys were typed)."""
        out = bytearray()
        for byte in data:
            if byte != self.keys[len(self.held)]:
                out += self.held
                self.held = b""
                if byte != self.keys[0]:
                    out.append(byte)
                    continue
            self.held += bytes([byte])
            if len(self.held) == len(self.keys):
                return bytes(out), True
        return bytes(out), False


def stream(sock: socket.socket, *, stdin: bool, tty: bool,
           proxy_signals: bool = True, until_closed: bool = False,
           outputs: frozenset[str] = frozenset(("stdout", "stderr")),
           detach_keys: bytes | None = DETACH_KEYS) -> int | None:
    """Copy frames to our stdout/stderr (and our stdin to the container) until the
    container exits; return its exit code, or None if the monitor went away, or
    DETACHED when the user typed ``detach_keys`` (on a tty; None: never).
    ``until_closed``: then wait (bounded) for the monitor to hang up, which it does
    once it has removed an --rm container.  ``outputs``: the streams -a asked for."""
    saved = None
    if tty and os.isatty(0):
        saved = termios.tcgetattr(0)
        mode = termios.tcgetattr(0)
        mode[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK | termios.ISTRIP |
                     termios.IXON)
        mode[2] = (mode[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
        mode[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(0, termios.TCSAFLUSH, mode)

    def send(data: bytes) -> None:
        try:
            sock.sendall(data)
        except OSError:
            pass

    if tty:
        size = _winsize()
        if size:
            send(frames.control(resize=list(size)))
        signal.signal(signal.SIGWINCH,
                      lambda *_: send(frames.control(resize=list(_winsize() or (24, 80)))))
    if proxy_signals and not tty:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, lambda num, _f: send(frames.control(signal=num)))
    reader = frames.FrameReader()
    watch: list[Any] = [sock] + ([0] if stdin else [])
    escape = EscapeProxy(detach_keys) if tty and stdin and detach_keys else None
    code: int | None = None
    try:
        while code is None:
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if 0 in ready:
                data = os.read(0, 65536)
                if data and escape is not None:
                    data, detached = escape.feed(data)
                    if data:
                        send(frames.frame(frames.STDIN, data))
                    if detached:
                        return DETACHED
                elif data:
                    send(frames.frame(frames.STDIN, data))
                else:
                    watch.remove(0)
                    if not tty:
                        send(frames.control(close_stdin=True))
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    return None
                for kind, payload in reader.feed(data):
                    if kind == frames.STDOUT and "stdout" in outputs:
                        os.write(1, payload)
                    elif kind == frames.STDERR and "stderr" in outputs:
                        os.write(2, payload)
                    elif kind == frames.CONTROL:
                        msg = frames.decode_control(payload)
                        if "exit" in msg:
                            code = int(msg["exit"])
        if until_closed:
            sock.settimeout(30)
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSAFLUSH, saved)
        sock.close()
    return code
