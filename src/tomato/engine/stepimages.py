"""Images made one step at a time: what a Dockerfile step leaves is a child image.

A step either changes the config alone (ENV, LABEL, CMD... an ``empty_layer`` in
the history, as Docker writes them) or adds a layer:

- a container's upper directory (RUN): stored as a blob by the images layer's
  commit machinery (``images.commit``), as `commit` does, and unpacked again into
  a snapshot;
- a *staged* layer (COPY, ADD): a fresh snapshot directory the step writes its
  files into (``new_layer``); stored as a blob from there and committed as the
  snapshot itself -- one write of each file instead of three (container upper,
  snapshot, and the upper's removal), which is most of a big COPY's time.

Either way the parent's layers, config and history are kept and the child is
recorded as an (untagged) image, so the next step can make a container on it and
the build cache can name it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tomato.engine.config import EngineConfig
from tomato.engine.images import ImageSummary, _Ctx, _disk_space, _find, _record


class StagedLayer:
    """A snapshot directory being written (``path``); committed or discarded once."""

    def __init__(self, staging: Any) -> None:
        self.staging = staging
        self.path = staging.path
        self.settled = False


@contextmanager
def new_layer(cfg: EngineConfig) -> Iterator[StagedLayer]:
    """A fresh, empty snapshot directory to write a layer's files into (``.path``);
    ``child_image(staged=...)`` commits it, else it is discarded on the way out (one a
    killed build left is an orphan: unlocked, the next pull or build collects it)."""
    ctx = _Ctx(cfg)
    staged = StagedLayer(ctx.snapshots.stage())
    try:
        yield staged
    finally:
        if not staged.settled:
            staged.settled = True
            ctx.snapshots.discard(staged.staging)


def child_image(cfg: EngineConfig, parent: str | None, config: dict[str, Any],
                history: list[dict[str, Any]], *, upper: str | None = None,
                lowers: list[str] | None = None, hidden: frozenset[str] = frozenset(),
                staged: StagedLayer | None = None, author: str = "",
                platform: dict[str, str] | None = None) -> ImageSummary:
    """A child of the image ``parent`` (None: FROM scratch) with ``config`` as it is and
    ``history`` appended; with ``upper``, that directory's changes as a new layer
    (``lowers``: the layers below it, for whiteouts and placeholders); with ``staged``
    (from ``new_layer``), that directory as the new layer and its snapshot.  When the
    layer holds no change, the last history entry is marked ``empty_layer`` instead,
    as Docker does.  Returns the recorded image."""
    from tomato.images.commit import child_manifest, store_layer
    from tomato.images.manifest import chain_ids, load_manifest
    from tomato.images.pull import SIZE_LABEL, unpack

    ctx = _Ctx(cfg)
    if staged is not None:
        upper = str(staged.path)
    with _disk_space(cfg, "building an image"), ctx.store.lock("gc", shared=True):
        base: str | None = None
        chains: tuple[str, ...] = ()
        size = 0
        if parent is not None:
            with ctx.store.read() as db:
                found = _find(db, parent)
            base, chains, size = found.manifest_digest, found.chain_ids, found.size
        layer = None
        entries = [dict(h) for h in history]
        if upper is not None:
            layer = store_layer(ctx.content, upper, lowers or [], hidden, ctx.stores.shift)
            if layer.entries == 0:
                layer = None
                if entries:
                    entries[-1]["empty_layer"] = True
        digest = child_manifest(ctx.content, base, config, entries, layer, author=author,
                                platform=platform)
        if layer is not None and staged is not None:  # the directory is the snapshot
            from tomato._sys.fdtree import disk_usage

            chain = chain_ids([*_diff_ids(ctx, base), layer.diff_id])[-1]
            layer_size = disk_usage(staged.path)
            ctx.snapshots.commit_staged(staged.staging, chain, chains[-1] if chains else None,
                                        {SIZE_LABEL: str(layer_size)})
            staged.settled = True  # recorded, or dropped for an identical one already there
            chains, size = (*chains, chain), size + layer_size
        elif layer is not None:  # a container's upper: unpacked from the blob
            unpacked, size = unpack(digest, ctx.stores)
            chains = tuple(unpacked)
        manifest = load_manifest(ctx.content, digest)
        return _record(ctx, None, image_id=manifest.config.digest, manifest_digest=digest,
                       target_digest=digest, chain_ids=tuple(chains), size=size, names=[])


def _diff_ids(ctx: _Ctx, manifest_digest: str | None) -> list[str]:
    from tomato.images.manifest import load_config, load_manifest

    if manifest_digest is None:
        return []
    return list(load_config(ctx.content, load_manifest(ctx.content, manifest_digest)).diff_ids)


def manifest_of(cfg: EngineConfig, image: str) -> dict[str, Any]:
    """The image config document (history and rootfs included) of a recorded image."""
    from tomato.images.manifest import load_manifest

    ctx = _Ctx(cfg)
    with ctx.store.read() as db:
        img = _find(db, image)
    manifest = load_manifest(ctx.content, img.manifest_digest)
    doc: dict[str, Any] = json.loads(ctx.content.read(manifest.config.digest))
    return doc


__all__ = ["StagedLayer", "child_image", "new_layer", "manifest_of"]
