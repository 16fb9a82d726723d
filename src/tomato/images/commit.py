"""`commit`: a container's upper directory as a new layer on top of its image."""

from __future__ import annotations

import datetime
import hashlib
import json
import tempfile
from typing import Any

from .changes import write_layer
from .content import ContentStore, digest_bytes
from .importer import _compressor
from .manifest import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, load_config, load_manifest


def commit_layer(content: ContentStore, base_manifest: str, upper: str,
                 config_changes: dict[str, Any], comment: str = "", author: str = "",
                 created_by: str = "", lowers: list[str] | None = None,
                 hidden: frozenset[str] = frozenset()) -> str:
    """Store the new layer, config and manifest; return the manifest digest."""
    # the uncompressed layer waits in the content store's ingest (never the host's /tmp):
    # unlinked from the start, so an interrupted commit leaves nothing of it
    with tempfile.TemporaryFile(dir=content.ingest_dir) as raw:
        write_layer(upper, raw, lowers, hidden)
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
    manifest = load_manifest(content, base_manifest)
    base = json.loads(content.read(manifest.config.digest))
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    config = dict(base.get("config") or {})
    config.update({k: v for k, v in config_changes.items() if v is not None})
    new = {
        **{k: v for k, v in base.items() if k not in ("config", "rootfs", "history",
                                                      "created", "author")},
        "created": now,
        "config": config,
        "rootfs": {"type": "layers",
                   "diff_ids": list(load_config(content, manifest).diff_ids)
                   + ["sha256:" + diff.hexdigest()]},
        "history": list(base.get("history") or []) + [{
            "created": now, "created_by": created_by or "tomato commit",
            **({"comment": comment} if comment else {}),
            **({"author": author} if author else {})}],
    }
    if author:
        new["author"] = author
    cfg_bytes = json.dumps(new, separators=(",", ":")).encode()
    cfg_info = content.write(cfg_bytes, digest_bytes(cfg_bytes))
    layers = [{"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}
              for desc in manifest.layers]
    layers.append({"mediaType": OCI_LAYER_GZIP, "digest": layer.digest, "size": layer.size})
    doc = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": {"mediaType": OCI_CONFIG, "digest": cfg_info.digest,
                                 "size": cfg_info.size},
                      "layers": layers}, separators=(",", ":")).encode()
    return content.write(doc, digest_bytes(doc)).digest
