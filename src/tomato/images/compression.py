"""Streaming decompression of layer blobs: gzip, zstd or none, sniffed from the bytes.

gzip uses python-isal when installed (several times faster than zlib), else the
stdlib's zlib; zstd uses the ``zstandard`` package, imported only when a zstd
layer shows up.  Readers hash what they return so the caller gets the diffID
without a second pass, and refuse a stream that ends before its compressed
end marker (a truncated download must never look like a short layer).
"""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO, Protocol

from tomato.errors import InvalidArgument, Unavailable

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# Layer media types we accept, by the compression they announce.
LAYER_MEDIA_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
}


class CompressionError(InvalidArgument):
    """The compressed stream is corrupt or truncated."""


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def layer_compression(media_type: str) -> str:
    try:
        return LAYER_MEDIA_TYPES[media_type]
    except KeyError as err:
        raise InvalidArgument(f"unsupported layer media type {media_type!r}") from err


def sniff(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def _gzip_decompressobj() -> Any:
    try:
        from isal import isal_zlib
        return isal_zlib.decompressobj(31)
    except ImportError:
        import zlib
        return zlib.decompressobj(31)


def _zstd_decompressobj() -> Any:
    try:
        import zstandard
    except ImportError as err:
        raise Unavailable("zstd layers need the 'zstandard' python package") from err
    return zstandard.ZstdDecompressor().decompressobj()


def gzip_backend() -> str:
    try:
        import isal  # noqa: F401
        return "isal"
    except ImportError:
        return "zlib"


class DecompressReader:
    """A ``read(n)`` view of ``src`` decompressed; ``digest`` is the sha256 of the output.

    The kind is sniffed from the first bytes.  Multi-member gzip and multi-frame zstd
    are followed to the end of ``src``.
    """

    def __init__(self, src: Readable, chunk: int = 1 << 20) -> None:
        self._src = src
        self._chunk = chunk
        self._hash = hashlib.sha256()
        self._buf = b""
        self._pos = 0
        self.size = 0
        head = src.read(chunk)
        self.kind = sniff(head)
        self._pending = head
        self._obj: Any = self._new_obj()
        self._src_eof = False
        self._stream_done = self.kind == "none" and not head

    def _new_obj(self) -> Any:
        if self.kind == "gzip":
            return _gzip_decompressobj()
        if self.kind == "zstd":
            return _zstd_decompressobj()
        return None

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def _feed(self) -> bytes:
        """Produce the next block of output, or b'' at the verified end."""
        while True:
            if self._pending:
                data, self._pending = self._pending, b""
            elif self._src_eof:
                data = b""
            else:
                data = self._src.read(self._chunk)
                if not data:
                    self._src_eof = True
            if self._obj is None:
                return data
            if not data:
                if not self._obj.eof:
                    raise CompressionError(f"truncated {self.kind} stream")
                return b""
            if self._obj.eof:
                # Another gzip member / zstd frame follows.
                self._obj = self._new_obj()
            try:
                out: bytes = self._obj.decompress(data)
            except Exception as err:  # isal/zlib.error, zstandard.ZstdError
                raise CompressionError(f"corrupt {self.kind} stream: {err}") from err
            rest = getattr(self._obj, "unused_data", b"")
            if self._obj.eof and rest:
                self._pending = rest
            if out:
                return out

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._pos:]]
            self._buf, self._pos = b"", 0
            while True:
                block = self._next()
                if not block:
                    break
                parts.append(block)
            return b"".join(parts)
        while len(self._buf) - self._pos < n:
            block = self._next()
            if not block:
                break
            self._buf = self._buf[self._pos:] + block
            self._pos = 0
        out = self._buf[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def _next(self) -> bytes:
        if self._stream_done:
            return b""
        block = self._feed()
        if not block:
            self._stream_done = True
            return b""
        self._hash.update(block)
        self.size += len(block)
        return block

    def drain(self) -> None:
        """Read to the end so ``digest`` covers the whole stream (tar padding included)."""
        self._buf, self._pos = b"", 0
        while self._next():
            pass


class Prefetch:
    """Runs a DecompressReader in a thread so download, hashing and inflating (which drop
    the GIL) overlap with tar extraction in the caller's thread.

    ``read(n)`` may return fewer than ``n`` bytes (never zero before the end).  Errors
    of the producer are raised in the consumer.  Always ``close()`` it.
    """

    def __init__(self, reader: DecompressReader, depth: int = 8) -> None:
        import queue
        import threading
        self.reader = reader
        self._q: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._stop = threading.Event()
        self._block = b""
        self._off = 0
        self._done = False
        self._thread = threading.Thread(target=self._run, name="tomato-inflate", daemon=True)
        self._thread.start()

    def _put(self, item: bytes | BaseException) -> bool:
        import queue
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while True:
                block = self.reader._next()
                if not self._put(block) or not block:
                    return
        except BaseException as err:  # handed to the consumer, re-raised there
            self._put(err)

    def read(self, n: int = -1) -> bytes:
        if self._off >= len(self._block):
            if self._done:
                return b""
            item = self._q.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if not item:
                self._done = True
                return b""
            self._block, self._off = item, 0
        if n is None or n < 0:
            n = len(self._block)
        out = self._block[self._off:self._off + n]
        self._off += len(out)
        return out

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class TeeReader:
    """Reads from ``src`` and hands every block to ``sink(block)`` too."""

    def __init__(self, src: BinaryIO | Readable, sink: Any) -> None:
        self._src = src
        self._sink = sink

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        if data:
            self._sink(data)
        return data

    def close(self) -> None:
        close = getattr(self._src, "close", None)
        if close is not None:
            close()


__all__ = ["DecompressReader", "Prefetch", "TeeReader", "CompressionError", "layer_compression",
           "sniff", "gzip_backend", "LAYER_MEDIA_TYPES"]
