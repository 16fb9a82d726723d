"""A content-addressed blob store: ``ROOT/blobs/sha256/<hex>``, fed through ingests.

Blobs are written into an *ingest* under ``ROOT/ingest`` while being hashed,
then verified (digest and size), fsynced and renamed into place, so every file
under ``blobs/`` matches its name.  As containerd's content store, an ingest
outlives the process that wrote it:

    ingest/<hex>/          a blob with a known digest (a layer being pulled)
        lock               flock(2)ed by the live writer; the kernel lets go when it dies
        data               the bytes written so far
    ingest/new-<random>/   a blob whose digest is known only at the end (commit, import),
                           or scratch space (an archive being unpacked by load)

- A writer of a known digest waits for the lock (another process may be writing the
  same blob: it then finds the blob stored), and with ``resume`` continues from the
  bytes a dead writer left: they are hashed again and the caller fetches the rest.
  The final digest is always checked before the blob becomes visible.
- An ingest whose lock nobody holds belongs to a dead process: ``ingests()`` shows
  it as reclaimable and ``collect_ingests()`` (the engine's GC) removes it; one that
  is locked is never touched.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from tomato.errors import InvalidArgument, NotFound
from tomato.records import record as dataclass

TYPE_CHECKING = False  # typing is imported where used: `tomato ps` reads no blob,
if TYPE_CHECKING:      # and a `run` of a local image writes none
    from typing import BinaryIO

_DIGEST_RE = re.compile(r"^sha256:([a-f0-9]{64})$")
_HEX_RE = re.compile(r"^[a-f0-9]{64}$")
UNNAMED = "new-"
_List = list  # ContentStore defines a list() method that shadows the builtin in annotations


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
        from tomato.hashing import sha256_hex

        return "sha256:" + sha256_hex(data)
    from hashlib import sha256  # OpenSSL's is faster on big data

    return "sha256:" + sha256(data).hexdigest()


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int


@dataclass(frozen=True)
class IngestInfo:
    """One ingest on disk: ``live`` while its writer's process holds the lock."""

    name: str
    #: the blob being written, when known
    expected: str | None
    #: bytes on disk
    size: int
    live: bool
    started: float


class DigestMismatch(InvalidArgument):
    """Content did not hash to the digest (or size) it was announced with."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_usage(path: str | os.PathLike[str]) -> int:
    """Bytes a file or tree takes on disk (each inode once; nothing followed).  Also
    measures a running container's snapshot: walked through fds (``_sys.fdtree``), so a
    directory it swaps for a symlink is never walked into."""
    from tomato._sys.fdtree import disk_usage as fd_disk_usage

    return fd_disk_usage(path)


def _rmtree(path: str | os.PathLike[str]) -> None:
    import shutil  # ~2 ms (with bz2, lzma): only when something goes

    shutil.rmtree(path, ignore_errors=True)


class Ingest:
    """A locked directory under ``ingest/``: a writer's, or scratch space (``path``)."""

    def __init__(self, store: ContentStore, name: str) -> None:
        self.store = store
        self.name = name
        self.path = store.ingest_dir / name
        self._lock = -1
        while True:  # bounded by the other writers: each pass follows one's removal
            try:
                os.mkdir(self.path, 0o700)
            except FileExistsError:
                # Another writer's (pathlib's exist_ok would check is_dir() again, and
                # fail if that writer removed it meanwhile: the open below sees that).
                pass
            try:
                fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                continue  # removed between our mkdir and open: make it again
            try:
                # Another live writer of the same blob: wait for it to finish or die.
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_nlink:
                    self._lock = fd
                    return
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # its writer committed (or a GC collected it) while we waited

    def remove(self) -> None:
        """Delete the directory, then let go of the lock (a waiter then starts afresh)."""
        if self._lock < 0:
            return
        for entry in os.scandir(self.path):
            if entry.name != "lock":
                if entry.is_dir(follow_symlinks=False):
                    _rmtree(entry.path)
                else:
                    os.unlink(entry.path)
        os.unlink(self.path / "lock")
        try:
            os.rmdir(self.path)
        except OSError:
            pass  # someone else's mkdir won the race: theirs now
        self.release()

    def release(self) -> None:
        """Let go of the lock and keep what is written (a later writer may resume it)."""
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class Writer:
    """One in-progress blob.  Use as a context manager: leaving without ``commit`` keeps
    the bytes of a resumable writer (``close``), and removes everything of others."""

    def __init__(self, store: ContentStore, expected: str | None, size: int | None,
                 resume: bool = False) -> None:
        self._store = store
        self.expected = expected
        self.expected_size = size
        self.resumable = resume and expected is not None
        name = check_digest(expected) if expected else UNNAMED + os.urandom(8).hex()
        self._ingest = Ingest(store, name)
        self.path = self._ingest.path / "data"
        import hashlib

        self._hash = hashlib.sha256()
        self._done = False
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self.offset = os.fstat(self._fd).st_size
            if not self.resumable or (size is not None and self.offset > size):
                os.ftruncate(self._fd, 0)
                self.offset = 0
            else:
                self._rehash()
            os.lseek(self._fd, self.offset, os.SEEK_SET)
        except BaseException:
            self._ingest.remove()
            raise
        #: where this writer started: bytes a dead writer left for it
        self.resumed_from = self.offset

    def _rehash(self) -> None:
        """Hash what a dead writer left (the page cache usually still holds it)."""
        left = self.offset
        while left:
            block = os.pread(self._fd, min(left, 1 << 20), self.offset - left)
            if not block:  # shrank under us: keep what was hashed
                self.offset -= left
                os.ftruncate(self._fd, self.offset)
                break
            self._hash.update(block)
            left -= len(block)

    def read_written(self) -> _Limited:
        """A reader of the bytes already written (to unpack a resumed blob from the start)."""
        return _Limited(open(self.path, "rb"), self.resumed_from)

    def write(self, data: bytes | memoryview) -> None:
        if self.expected_size is not None and self.offset + len(data) > self.expected_size:
            raise DigestMismatch(
                f"blob {self.expected or '(unnamed)'} is larger than its announced size "
                f"{self.expected_size}")
        view = memoryview(data)
        while view:  # a write may be short (a disk filling up); the next one says why
            n = os.write(self._fd, view)
            self._hash.update(view[:n])
            self.offset += n
            view = view[n:]

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
            os.fsync(self._fd)
            os.fchmod(self._fd, 0o644)
            target = self._store.path(digest)
            os.replace(self.path, target)
            _fsync_dir(target.parent)
        except BaseException:
            self.abort()
            raise
        self._finish(keep=False)
        return BlobInfo(digest, self.offset)

    def abort(self) -> None:
        """Forget the blob: its bytes are wrong or unwanted."""
        self._finish(keep=False)

    def close(self) -> None:
        """Stop writing; a resumable writer keeps its bytes for the next one (unless the
        blob got stored meanwhile), others remove theirs."""
        keep = self.resumable and self.offset > 0 and not (
            self.expected and self._store.exists(self.expected))
        self._finish(keep)

    def _finish(self, keep: bool) -> None:
        if self._done:
            return
        self._done = True
        try:
            os.close(self._fd)
        finally:
            if keep:
                self._ingest.release()
            else:
                self._ingest.remove()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Limited:
    """The first ``n`` bytes of a file."""

    def __init__(self, f: BinaryIO, n: int) -> None:
        self._f, self._left = f, n

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._f.read(n) if n else b""
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()


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

    def writer(self, expected: str | None = None, size: int | None = None, *,
               resume: bool = False) -> Writer:
        """A writer of one blob.  With ``resume`` (and ``expected``) it continues from the
        bytes a dead writer of the same blob left (``offset``); it may wait for a live one."""
        if expected is not None:
            check_digest(expected)
        return Writer(self, expected, size, resume)

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

    def scratch(self) -> Ingest:
        """A private directory under ``ingest/`` (``.path``), removed when done; a dead
        process's is collected like any ingest."""
        return Ingest(self, UNNAMED + os.urandom(8).hex())

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def list(self) -> Iterator[BlobInfo]:
        for entry in os.scandir(self.blob_dir):
            if _DIGEST_RE.match("sha256:" + entry.name):
                yield BlobInfo("sha256:" + entry.name, entry.stat().st_size)

    # -- what interrupted writers left --------------------------------------------------
    def _claim(self, path: str) -> int:
        """The ingest's lock if nobody holds it (its writer is dead), else -1."""
        try:
            fd = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return -2  # not a locked ingest (a file or directory older versions left)
        except NotADirectoryError:
            return -2
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return -1
            raise
        return fd

    def ingests(self) -> _List[IngestInfo]:
        """Every ingest on disk, live or left by a dead writer."""
        out = []
        for entry in os.scandir(self.ingest_dir):
            fd = self._claim(entry.path)
            if fd >= 0:
                os.close(fd)
            try:
                started = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            name = entry.name
            out.append(IngestInfo(name, "sha256:" + name if _HEX_RE.match(name) else None,
                                  disk_usage(entry.path), fd == -1, started))
        return out

    def collect_ingests(self, resumable: bool = True, grace: float = 0.0) -> int:
        """Remove the ingests no live writer holds; return the bytes freed.

        ``resumable=False`` keeps those a later writer of the same blob would resume.
        An entry without a lock file (an older tomato's temp file, or an ingest in the
        instant between its mkdir and its lock) goes only once ``grace`` seconds old:
        give one when live writers may exist (the engine's GC, under the exclusive gc
        lock, needs none)."""
        freed = 0
        now = time.time()
        for entry in os.scandir(self.ingest_dir):
            if not resumable and _HEX_RE.match(entry.name):
                continue
            fd = self._claim(entry.path)
            if fd == -1:
                continue  # a live writer's
            try:
                if fd == -2 and now - entry.stat(follow_symlinks=False).st_mtime < grace:
                    continue
                freed += disk_usage(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    _rmtree(entry.path)  # the lock file goes with it, still held by us
                else:
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass
            finally:
                if fd >= 0:
                    os.close(fd)
        return freed


__all__ = ["ContentStore", "Writer", "Ingest", "BlobInfo", "IngestInfo", "DigestMismatch",
           "check_digest", "digest_bytes", "disk_usage"]
