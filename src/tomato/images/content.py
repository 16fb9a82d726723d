"""A content-addressed blob store: ``ROOT/blobs/sha256/<hex>``.

Blobs are streamed into a private temp file under ``ROOT/ingest`` while being
hashed, then verified (digest and size), fsynced and renamed into place.  A
blob that fails verification is deleted and never becomes visible, so every
file under ``blobs/`` matches its name.  Concurrent writers of the same blob
each use their own temp file; the rename is atomic and idempotent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from tomato.errors import InvalidArgument, NotFound
from tomato.records import record as dataclass

TYPE_CHECKING = False  # typing and tempfile are imported where used: `tomato ps` reads
if TYPE_CHECKING:      # no blob, and a `run` of a local image writes none
    from typing import BinaryIO

_DIGEST_RE = re.compile(r"^sha256:([a-f0-9]{64})$")


def check_digest(digest: str) -> str:
    """Return the hex part of a sha256 digest; refuse anything else."""
    m = _DIGEST_RE.match(digest)
    if not m:
        raise InvalidArgument(f"unsupported or malformed digest: {digest!r}")
    return m.group(1)


def digest_bytes(data: bytes) -> str:
    if len(data) < 1 << 20:
        # The small blobs every `run` reads (manifest, config): CPython's own
        # sha256 loads in ~1 ms, hashlib's OpenSSL in ~3.5 ms.
        try:
            from _sha256 import sha256
        except ImportError:
            from hashlib import sha256
    else:
        from hashlib import sha256  # OpenSSL's is faster on big data
    return "sha256:" + sha256(data).hexdigest()


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int


class DigestMismatch(InvalidArgument):
    """Content did not hash to the digest (or size) it was announced with."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Writer:
    """One in-progress blob.  Use as a context manager; leaving without commit aborts."""

    def __init__(self, store: ContentStore, expected: str | None, size: int | None) -> None:
        self._store = store
        self.expected = expected
        self.expected_size = size
        import tempfile

        fd, name = tempfile.mkstemp(prefix="blob-", dir=store.ingest_dir)
        self.path = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb", buffering=0)
        import hashlib

        self._hash = hashlib.sha256()
        self.offset = 0
        self._done = False

    def write(self, data: bytes | memoryview) -> None:
        if self.expected_size is not None and self.offset + len(data) > self.expected_size:
            raise DigestMismatch(
                f"blob {self.expected or '(unnamed)'} is larger than its announced size "
                f"{self.expected_size}")
        self._file.write(data)
        self._hash.update(data)
        self.offset += len(data)

    def commit(self) -> BlobInfo:
        """Verify, fsync and rename into place; return the blob's info."""
        digest = "sha256:" + self._hash.hexdigest()
        try:
            if self.expected_size is not None and self.offset != self.expected_size:
                raise DigestMismatch(
                    f"blob {self.expected or digest} has size {self.offset}, "
                    f"expected {self.expected_size}")
            if self.expected is not None and digest != self.expected:
                raise DigestMismatch(
                    f"blob content has digest {digest}, expected {self.expected}")
            os.fsync(self._file.fileno())
            self._file.close()
            target = self._store.path(digest)
            os.chmod(self.path, 0o644)
            os.replace(self.path, target)
            _fsync_dir(target.parent)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return BlobInfo(digest, self.offset)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._file.close()
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class ContentStore:
    """Blobs by sha256 digest under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.blob_dir / check_digest(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def info(self, digest: str) -> BlobInfo:
        try:
            return BlobInfo(digest, self.path(digest).stat().st_size)
        except FileNotFoundError as err:
            raise NotFound(f"blob {digest} not found in the content store") from err

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError as err:
            raise NotFound(f"blob {digest} not found in the content store") from err

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            data = f.read()
        # Small blobs (manifests, configs) are re-verified on every read: cheap and
        # it turns silent disk corruption into a clear error.
        if digest_bytes(data) != digest:
            raise DigestMismatch(f"stored blob {digest} is corrupt")
        return data

    def writer(self, expected: str | None = None, size: int | None = None) -> Writer:
        if expected is not None:
            check_digest(expected)
        return Writer(self, expected, size)

    def write(self, data: bytes, expected: str | None = None) -> BlobInfo:
        """Store a small blob in one call."""
        with self.writer(expected, None if expected is None else len(data)) as w:
            w.write(data)
            return w.commit()

    def ingest(self, stream: BinaryIO, expected: str | None = None,
               size: int | None = None, chunk: int = 1 << 20) -> BlobInfo:
        with self.writer(expected, size) as w:
            while True:
                data = stream.read(chunk)
                if not data:
                    break
                w.write(data)
            return w.commit()

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def list(self) -> Iterator[BlobInfo]:
        for entry in os.scandir(self.blob_dir):
            if _DIGEST_RE.match("sha256:" + entry.name):
                yield BlobInfo("sha256:" + entry.name, entry.stat().st_size)

    def clean_ingest(self) -> None:
        """Remove temp files left by writers that died (only safe with no pull running)."""
        import shutil
        for entry in os.scandir(self.ingest_dir):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)


__all__ = ["ContentStore", "Writer", "BlobInfo", "DigestMismatch", "check_digest",
           "digest_bytes"]
