"""`commit`: a container's upper directory as a new layer on top of its image.

Two steps, also used one at a time by the build (one image per Dockerfile step):
``store_layer`` writes an upper directory as a layer blob (or finds it empty), and
``child_manifest`` writes the config and manifest of a child image -- with that
layer, or with none (a metadata-only step, ``empty_layer`` in its history).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import tempfile
from dataclasses import dataclass
from typing import Any

from .changes import write_layer
from .content import BlobInfo, ContentStore, digest_bytes
from .importer import _compressor
from .manifest import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, load_config, load_manifest


@dataclass(frozen=True)
class StoredLayer:
    blob: BlobInfo  # the gzip'ed layer in the content store
    diff_id: str  # sha256 of the uncompressed tar
    entries: int  # 0: nothing changed (the build records an empty layer instead)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def store_layer(content: ContentStore, upper: str, lowers: list[str] | None = None,
                hidden: frozenset[str] = frozenset(),
                shift: tuple[int, int, int, int] | None = None) -> StoredLayer:
    """The upper directory as a gzip'ed layer blob in the content store."""
    # the uncompressed layer waits in the content store's ingest (never the host's /tmp):
    # unlinked from the start, so an interrupted commit leaves nothing of it
    with tempfile.TemporaryFile(dir=content.ingest_dir) as raw:
        entries = write_layer(upper, raw, lowers, hidden, shift)
        raw.seek(0)
        diff = hashlib.sha256()
        comp = _compressor()
        with content.writer() as w:
            while block := raw.read(1 << 20):
                diff.update(block)
                out = comp.compress(block)
                if out:
                    w.write(out)
            w.write(comp.flush())
            layer = w.commit()
    return StoredLayer(layer, "sha256:" + diff.hexdigest(), entries)


def child_manifest(content: ContentStore, base_manifest: str | None,
                   config: dict[str, Any], history: list[dict[str, Any]],
                   layer: StoredLayer | None = None, *, author: str = "",
                   platform: dict[str, str] | None = None) -> str:
    """A child of ``base_manifest`` (None: an image with no layers, FROM scratch) with
    the container config ``config`` as it is, ``history`` appended, and ``layer``
    (if any) on top; returns the new manifest's digest."""
    if base_manifest is not None:
        manifest = load_manifest(content, base_manifest)
        base = json.loads(content.read(manifest.config.digest))
        diff_ids = list(load_config(content, manifest).diff_ids)
        layers = [{"mediaType": d.media_type, "digest": d.digest, "size": d.size}
                  for d in manifest.layers]
    else:
        base = dict(platform or {})
        diff_ids, layers = [], []
    if layer is not None:
        diff_ids.append(layer.diff_id)
        layers.append({"mediaType": OCI_LAYER_GZIP, "digest": layer.blob.digest,
                       "size": layer.blob.size})
    created = history[-1].get("created") if history else None
    new = {
        **{k: v for k, v in base.items() if k not in ("config", "rootfs", "history",
                                                      "created", "author")},
        "created": created or now(),
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": list(base.get("history") or []) + history,
    }
    if author:
        new["author"] = author
    cfg_bytes = json.dumps(new, separators=(",", ":")).encode()
    cfg_info = content.write(cfg_bytes, digest_bytes(cfg_bytes))
    doc = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": {"mediaType": OCI_CONFIG, "digest": cfg_info.digest,
                                 "size": cfg_info.size},
                      "layers": layers}, separators=(",", ":")).encode()
    return content.write(doc, digest_bytes(doc)).digest


def commit_layer(content: ContentStore, base_manifest: str, upper: str,
                 config_changes: dict[str, Any], comment: str = "", author: str = "",
                 created_by: str = "", lowers: list[str] | None = None,
                 hidden: frozenset[str] = frozenset(),
                 shift: tuple[int, int, int, int] | None = None) -> str:
    """Store the new layer, config and manifest; return the manifest digest (``shift``:
    a remapped engine's, undone in the layer)."""
    layer = store_layer(content, upper, lowers, hidden, shift)
    manifest = load_manifest(content, base_manifest)
    base = json.loads(content.read(manifest.config.digest))
    config = dict(base.get("config") or {})
    config.update({k: v for k, v in config_changes.items() if v is not None})
    stamp = now()
    entry = {"created": stamp, "created_by": created_by or "tomato commit",
             **({"comment": comment} if comment else {}),
             **({"author": author} if author else {})}
    return child_manifest(content, base_manifest, config, [entry], layer, author=author)
