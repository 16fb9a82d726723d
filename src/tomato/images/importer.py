"""``tomato import``: a rootfs tarball (plain, gzip or zstd) becomes a one-layer image.

The tar is read once: hashed uncompressed (the diffID) and gzip-compressed into
the content store (the layer blob).  The result is an OCI manifest + config.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any, BinaryIO

from .compression import DecompressReader
from .content import ContentStore, digest_bytes
from .manifest import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Platform


def _compressor(level: int = 1) -> Any:
    try:
        from isal import isal_zlib
        return isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
    except ImportError:
        import zlib
        return zlib.compressobj(level, zlib.DEFLATED, 31)


def import_tarball(content: ContentStore, src: BinaryIO, *, platform: Platform,
                   config: dict[str, Any] | None = None, comment: str = "",
                   source: str = "-") -> str:
    """Store ``src`` as a layer plus config and manifest; return the manifest digest."""
    reader = DecompressReader(src)
    comp = _compressor()
    with content.writer() as w:
        while block := reader.read(1 << 20):
            out = comp.compress(block)
            if out:
                w.write(out)
        w.write(comp.flush())
        layer = w.commit()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    cfg = {
        "created": now,
        "architecture": platform.architecture,
        "os": platform.os,
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": [reader.digest]},
        "history": [{"created": now, "created_by": f"tomato import {source}",
                     **({"comment": comment} if comment else {})}],
    }
    if platform.variant:
        cfg["variant"] = platform.variant
    cfg_bytes = json.dumps(cfg, separators=(",", ":")).encode()
    cfg_info = content.write(cfg_bytes, digest_bytes(cfg_bytes))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg_info.digest, "size": cfg_info.size},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer.digest, "size": layer.size}],
    }, separators=(",", ":")).encode()
    return content.write(manifest, "sha256:" + hashlib.sha256(manifest).hexdigest()).digest


__all__ = ["import_tarball"]
