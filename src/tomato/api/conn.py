"""One client connection: its socket (plain or TLS) and the bytes read from it
that no request has used yet.

The loop (loop.py) reads a connection without blocking until a whole request
head is here; a worker then reads the body through ``recv`` (the buffer
first, then the socket, with a timeout) and answers through ``send``.  A
hijacked connection (attach, exec) becomes a plain stream socket: the real one
when nothing stands between (no TLS, nothing buffered), else one end of a
socketpair that a relay thread copies to and from the client.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from typing import Any

from tomato.api.wire import ClientGone, RequestHead

RELAY_BUFFER = 1 << 20  # per direction: a side that does not read stops the other


class Conn:
    def __init__(self, sock: socket.socket, tls: bool) -> None:
        self.sock = sock
        self.tls = tls
        self.fd = sock.fileno()
        self.buf = bytearray()
        # the loop's bookkeeping
        self.handshaking = tls
        self.deadline = 0.0
        self.head: RequestHead | None = None  # parsed; waiting for its (small) body
        self.head_started = 0.0

    # -- a worker's side (blocking, with a timeout) -------------------------------------
    def recv(self, n: int) -> bytes:
        """Up to ``n`` bytes: buffered ones first; b"" when the client ends its side."""
        if self.buf:
            data = bytes(self.buf[:n])
            del self.buf[:n]
            return data
        try:
            return self.sock.recv(n)
        except TimeoutError:
            raise
        except (ssl.SSLError, OSError) as err:
            raise ClientGone(str(err)) from err

    def unread(self, data: bytes) -> None:
        self.buf[:0] = data

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (ssl.SSLError, OSError) as err:
            raise ClientGone(str(err)) from err

    def client_gone(self) -> bool:
        """Has the client hung up?  Checked while a stream is idle.  Whatever it sent
        meanwhile is kept for later (pipelined), up to a limit."""
        if self.tls and self.sock.pending():  # type: ignore[attr-defined]
            ready = True
        else:
            try:
                ready = bool(select.select([self.sock], [], [], 0)[0])
            except (OSError, ValueError):
                return True
        if not ready:
            return False
        timeout = self.sock.gettimeout()
        try:
            self.sock.setblocking(False)
            data = self.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False  # half a TLS record
        except (ssl.SSLError, OSError, ValueError):
            return True
        finally:
            with contextlib.suppress(OSError, ValueError):
                self.sock.settimeout(timeout)
        if not data:
            return True
        self.buf += data
        return len(self.buf) > 1 << 20  # talking over its own answer: not a client we know

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- the loop's side (non-blocking) ------------------------------------------------
    def fill(self, limit: int) -> bool:
        """Read what is there (a TLS record may hold more than select shows); False
        once the client has closed or failed."""
        while len(self.buf) <= limit:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError):
                return True
            except (ssl.SSLError, OSError):
                return False
            if not data:
                return False
            self.buf += data
            if not self.tls:
                return True  # the next select shows the rest
        return True

    # -- hijacking ---------------------------------------------------------------------
    def hijack(self) -> socket.socket:
        """A plain, blocking stream socket for a hijacked connection (see the module)."""
        if not self.tls and not self.buf:
            self.sock.settimeout(None)
            return self.sock
        inner, outer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        first, self.buf = bytes(self.buf), bytearray()
        threading.Thread(target=_relay, args=(self.sock, outer, first, self.tls),
                         name="api-relay", daemon=True).start()
        self.sock = inner  # what the request closes when it is done
        return inner


def _relay(client: Any, inner: socket.socket, first: bytes, tls: bool) -> None:
    """Copy between the client (maybe TLS) and the handler's socketpair end until the
    handler is done and its output delivered, or the client is gone.  One thread, both
    ways: an SSL object is not safe to read and write from two threads at once."""
    client.setblocking(False)
    inner.setblocking(False)
    to_inner, to_client = bytearray(first), bytearray()
    client_open = inner_open = True  # we may still read from it
    inner_shut = False
    try:
        while inner_open or to_client:
            if not client_open and not to_inner and not inner_shut:
                with contextlib.suppress(OSError):
                    inner.shutdown(socket.SHUT_WR)  # the client's half-close, passed on
                inner_shut = True
            reads = [s for s, ok in ((client, client_open and len(to_inner) < RELAY_BUFFER),
                                     (inner, inner_open and len(to_client) < RELAY_BUFFER))
                     if ok]
            writes = [s for s, buf in ((inner, to_inner), (client, to_client)) if buf]
            pending = client_open and tls and client.pending() > 0
            if not pending:
                try:
                    readable, writable, _ = select.select(reads, writes, [])
                except InterruptedError:
                    continue
            else:
                readable, writable = [client], []
            if client in readable:
                client_open = _pull(client, to_inner)
            if inner in readable:
                inner_open = _pull(inner, to_client)
            if inner in writable:
                try:
                    del to_inner[:inner.send(to_inner)]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    to_inner.clear()
                    client_open = False  # the handler stopped reading: nothing more for it
            if client in writable:
                try:
                    del to_client[:client.send(to_client)]
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                        ssl.SSLWantWriteError):
                    pass
                except (ssl.SSLError, OSError):
                    return  # the client is gone
    finally:
        with contextlib.suppress(OSError):
            inner.close()
        with contextlib.suppress(OSError):
            client.close()


def _pull(sock: Any, into: bytearray) -> bool:
    """Read what ``sock`` has into ``into``; False at its end."""
    while len(into) < RELAY_BUFFER:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True
        except (ssl.SSLError, OSError):
            return False
        if not data:
            return False
        into += data
    return True

