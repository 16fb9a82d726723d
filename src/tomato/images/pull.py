"""Pull: registry → verified blobs in the content store → layers unpacked into snapshots.

Each layer is streamed once: the download is teed into the content store's
writer (sha256 + size checked at the end) and, in the same pass, decompressed
and untarred into a fresh staging directory (its diffID checked at the end).
Layers are independent directories in overlay format, so they download and
unpack in parallel; they are committed by chain ID, in order, only once both
checks pass.  A failed pull discards every staging directory and leaves no
snapshot, blob or record that was not fully verified.

A download that stops (a dropped registry, a full disk, kill -9) leaves its
bytes in the content store's ingest: the next pull of the blob hashes them
again, unpacks them and asks the registry for the rest with ``Range`` (a
registry without Range support sends it all and the kept part is skipped).
Bytes that fail verification after a resume are dropped and the blob is
downloaded once more from the start.  What cannot be resumed (a half-unpacked
layer, a commit's unnamed ingest) is removed by the next pull, commit or load
once no live process holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from dataclasses import replace as dataclass_replace
from typing import Any

from tomato.errors import InvalidArgument

from .compression import DecompressReader, Prefetch, TeeReader, layer_compression
from .content import ContentStore, DigestMismatch, Writer
from .manifest import (  # noqa: F401 — re-exported
    ImageConfig,
    Index,
    Manifest,
    Platform,
    chain_ids,
    load_config,
    load_manifest,
    parse_config,
    parse_manifest,
    select_manifest,
)
from .reference import Reference
from .registry import RegistryClient
from .snapshots import Snapshotter, Staging
from .unpack import UnpackOptions, apply_layer


@dataclass(frozen=True)
class Progress:
    """One progress event: status is waiting, downloading, done, exists, retrying."""

    layer: str
    status: str
    current: int = 0
    total: int = 0


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class PulledImage:
    reference: Reference | None
    #: what the reference resolved to (index or manifest): Docker's RepoDigest
    target_digest: str
    target_media_type: str
    #: the platform's image manifest
    manifest_digest: str
    #: the config blob's digest, which is the image ID
    config_digest: str
    chain_ids: tuple[str, ...]
    #: compressed size of config + layers
    size: int
    #: bytes of regular-file content in the unpacked layers
    unpacked_size: int = 0


SIZE_LABEL = "tomato.size"


@dataclass(frozen=True)
class Stores:
    content: ContentStore
    snapshots: Snapshotter
    #: a remapped engine's owner shift for every layer unpacked (UnpackOptions.shift)
    shift: tuple[int, int, int, int] | None = None


class _BadResume(Exception):
    """The bytes a resumed download started from did not verify (the cause is chained)."""


class _Chain:
    """One reader over several, in turn (a resumed blob: its kept bytes, then the rest)."""

    def __init__(self, *parts: Any) -> None:
        self._parts = list(parts)
        self._all = list(parts)

    def read(self, n: int = -1) -> bytes:
        while self._parts:
            data = self._parts[0].read(n)
            if data:
                return bytes(data)
            self._parts.pop(0)
        return b""

    def close(self) -> None:
        for part in self._all:
            if hasattr(part, "close"):
                part.close()


class _Pipeline:
    """Fetches (if needed) and unpacks layers in parallel, commits them in order."""

    def __init__(self, stores: Stores, manifest: Manifest, config: ImageConfig,
                 open_remote: Callable[[str, int, int], Any] | None,
                 progress: ProgressFn | None,
                 options: UnpackOptions, workers: int) -> None:
        self.s = stores
        self.layers = manifest.layers
        self.diff_ids = config.diff_ids
        self.chains = chain_ids(config.diff_ids)
        self.open_remote = open_remote
        self.progress = progress or (lambda p: None)
        self.options = options if stores.shift is None else \
            dataclass_replace(options, shift=stores.shift)
        self.workers = workers

    def _layer(self, i: int) -> tuple[Staging, int] | None:
        desc = self.layers[i]
        layer_compression(desc.media_type)  # refuse non-layer artifacts early
        content, snaps = self.s.content, self.s.snapshots
        have_blob, have_snap = content.exists(desc.digest), snaps.exists(self.chains[i])
        if have_blob and have_snap:
            self.progress(Progress(desc.digest, "exists", desc.size, desc.size))
            return None
        try:
            result = self._fetch(i, have_snap, resume=True)
        except _BadResume:
            # What an interrupted pull left did not verify (a disk that lost a page, a
            # registry that changed the blob): it is gone; download the whole blob once.
            result = self._fetch(i, have_snap, resume=False)
        self.progress(Progress(desc.digest, "done", desc.size, desc.size))
        return result

    def _fetch(self, i: int, have_snap: bool, resume: bool) -> tuple[Staging, int] | None:
        """Download (resuming what an interrupted pull left) and unpack layer ``i``."""
        desc, diff = self.layers[i], self.diff_ids[i]
        content, snaps = self.s.content, self.s.snapshots
        writer = None
        if content.exists(desc.digest):
            src: Any = content.open(desc.digest)
        else:
            if self.open_remote is None:
                raise InvalidArgument(f"layer {desc.digest} is missing from the content store")
            # waits while another pull writes this blob; then it may be stored already
            writer = content.writer(desc.digest, desc.size, resume=resume)
            if content.exists(desc.digest):
                writer.close()
                writer = None
                src = content.open(desc.digest)
            else:
                try:
                    src = self._download(writer, desc.digest, desc.size)
                except BaseException:
                    writer.close()
                    raise
        staging = None
        try:
            if have_snap:  # only the blob is missing (e.g. it was loaded uncompressed before)
                while src.read(1 << 20):
                    pass
                stats = None
            else:
                staging = snaps.stage()
                reader = DecompressReader(src)
                prefetch = Prefetch(reader)
                try:
                    stats = apply_layer(prefetch, staging.path, self.options)
                    prefetch.drain()
                finally:
                    prefetch.close()
                if reader.digest != diff:
                    raise DigestMismatch(
                        f"layer {desc.digest} unpacks to diffID {reader.digest}, "
                        f"but the image config says {diff}")
            if writer is not None:
                writer.commit()
        except BaseException as err:
            if staging is not None:
                snaps.discard(staging)
            if writer is not None:
                if isinstance(err, InvalidArgument):
                    writer.abort()  # wrong or hostile bytes: never resume from them
                    if writer.resumed_from:
                        raise _BadResume() from err
                else:
                    writer.close()  # a dropped registry, a full disk, an interrupt: kept
            raise
        finally:
            src.close()
        return None if staging is None or stats is None else (staging, stats.bytes_written)

    def _download(self, writer: Writer, digest: str, size: int) -> Any:
        """The blob from its first byte: what the writer has, then the registry's rest
        (teed into the writer)."""
        assert self.open_remote is not None
        done = [writer.offset]

        def sink(block: bytes) -> None:
            writer.write(block)
            done[0] += len(block)
            self.progress(Progress(digest, "downloading", done[0], size))

        self.progress(Progress(digest, "downloading", done[0], size))
        remote = TeeReader(self.open_remote(digest, size, writer.offset), sink)
        if not writer.resumed_from:
            return remote
        return _Chain(writer.read_written(), remote)

    def run(self) -> None:
        # What dead pulls, commits and loads left that nobody can resume (half-unpacked
        # layers, unnamed ingests) goes now, so interrupted pulls do not pile up; each
        # is taken only with its lock, never from a live process.
        self.s.snapshots.clean_orphans(count=False)
        self.s.content.collect_ingests(resumable=False, grace=60)
        n = len(self.layers)
        for d in self.layers:
            self.progress(Progress(d.digest, "waiting", 0, d.size))
        ready: dict[int, tuple[Staging, int] | None] = {}
        committed = 0
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, n or 1)),
                                thread_name_prefix="tomato-pull") as pool:
            futures: dict[Future[tuple[Staging, int] | None], int] = {
                pool.submit(self._layer, i): i for i in range(n)}
            pending = set(futures)
            error: BaseException | None = None
            while pending and error is None:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    exc = fut.exception()
                    if exc is not None:
                        error = error or exc
                        continue
                    ready[futures[fut]] = fut.result()
                # commit, in chain order, every layer whose parents are committed
                while error is None and committed in ready:
                    item = ready.pop(committed)
                    if item is not None:
                        staging, size = item
                        parent = self.chains[committed - 1] if committed else None
                        try:
                            self.s.snapshots.commit_staged(staging, self.chains[committed],
                                                           parent, {SIZE_LABEL: str(size)})
                        except BaseException as exc:
                            self.s.snapshots.discard(staging)
                            error = exc
                            break
                    committed += 1
            if error is not None:
                for fut in pending:
                    fut.cancel()
                wait(pending)
                for fut in pending:
                    res = None if fut.cancelled() or fut.exception() else fut.result()
                    if res is not None:
                        self.s.snapshots.discard(res[0])
                for item in ready.values():
                    if item is not None:
                        self.s.snapshots.discard(item[0])
                raise error

    def unpacked_size(self) -> int:
        total = 0
        for chain in self.chains:
            total += int(self.s.snapshots.stat(chain).labels.get(SIZE_LABEL, "0"))
        return total


def pull(ref: Reference, client: RegistryClient, stores: Stores, *, platform: Platform,
         progress: ProgressFn | None = None, options: UnpackOptions | None = None,
         workers: int = 4) -> PulledImage:
    repo = ref.path
    top = client.get_manifest(repo, ref.reference)
    parsed = parse_manifest(top.data, top.media_type)
    stores.content.write(top.data, top.digest)
    if isinstance(parsed, Index):
        desc = select_manifest(parsed, platform)
        fetched = client.get_manifest(repo, desc.digest)
        manifest_any = parse_manifest(fetched.data, fetched.media_type)
        if not isinstance(manifest_any, Manifest):
            raise InvalidArgument(f"index entry {desc.digest} is not an image manifest")
        stores.content.write(fetched.data, fetched.digest)
        manifest, manifest_digest = manifest_any, fetched.digest
    else:
        manifest, manifest_digest = parsed, top.digest
    if not stores.content.exists(manifest.config.digest):
        data = client.get_blob_bytes(repo, manifest.config.digest, manifest.config.size)
        stores.content.write(data, manifest.config.digest)
    config = load_config(stores.content, manifest)

    def open_remote(digest: str, size: int, offset: int) -> Any:
        stream = client.open_blob(repo, digest, size, offset)
        if progress:
            stream.on_retry = lambda off, err: progress(Progress(digest, "retrying", off, size))
        return stream

    pipe = _Pipeline(stores, manifest, config, open_remote, progress,
                     options or UnpackOptions(), workers)
    pipe.run()
    return PulledImage(ref, top.digest, parsed.media_type, manifest_digest,
                       manifest.config.digest, tuple(chain_ids(config.diff_ids)),
                       manifest.config.size + sum(d.size for d in manifest.layers),
                       pipe.unpacked_size())


def unpack(manifest_digest: str, stores: Stores, *, progress: ProgressFn | None = None,
           options: UnpackOptions | None = None, workers: int = 2) -> tuple[tuple[str, ...], int]:
    """Unpack an image whose blobs are all in the content store (after load/import).

    Returns its chain IDs and unpacked size.
    """
    manifest = load_manifest(stores.content, manifest_digest)
    config = load_config(stores.content, manifest)
    pipe = _Pipeline(stores, manifest, config, None, progress, options or UnpackOptions(),
                     workers)
    pipe.run()
    return tuple(chain_ids(config.diff_ids)), pipe.unpacked_size()


__all__ = ["pull", "unpack", "PulledImage", "Progress", "Stores", "load_manifest",
           "load_config"]
