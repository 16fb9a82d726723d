"""Push an image from the content store to a registry: blobs first, then the manifest.

Blobs the registry already has (HEAD) are skipped; each blob is uploaded in one
monolithic PUT streamed from the content store.  The manifest bytes are sent
unchanged, so the pushed digest equals the local one.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .content import ContentStore
from .manifest import Descriptor, Index, Manifest, parse_manifest
from .pull import Progress
from .reference import Reference
from .registry import RegistryClient


@dataclass(frozen=True)
class Pushed:
    reference: Reference
    digest: str
    size: int


def _push_blob(client: RegistryClient, content: ContentStore, repo: str, desc: Descriptor,
               progress: Callable[[Progress], None]) -> None:
    if client.blob_exists(repo, desc.digest):
        progress(Progress(desc.digest, "exists", desc.size, desc.size))
        return
    progress(Progress(desc.digest, "pushing", 0, desc.size))
    with content.open(desc.digest) as f:
        client.upload_blob(repo, desc.digest, desc.size, f)
    progress(Progress(desc.digest, "done", desc.size, desc.size))


def push(ref: Reference, target_digest: str, client: RegistryClient, content: ContentStore, *,
         progress: Callable[[Progress], None] | None = None, workers: int = 3) -> Pushed:
    """Push the manifest (or index) ``target_digest`` and everything it references that we hold.

    For an index only the manifests present locally are pushed (a pull keeps one platform),
    so an index whose children are missing is pushed as its single local manifest instead.
    """
    prog = progress or (lambda p: None)
    data = content.read(target_digest)
    doc = parse_manifest(data)
    manifests: list[tuple[str, Manifest]] = []
    if isinstance(doc, Index):
        local = [d for d in doc.manifests if content.exists(d.digest)]
        for d in local:
            m = parse_manifest(content.read(d.digest))
            assert isinstance(m, Manifest)
            manifests.append((d.digest, m))
        if len(local) != len(doc.manifests):
            # Cannot push an index whose children we lack: push the local image alone.
            target_digest, m0 = manifests[0]
            manifests = [(target_digest, m0)]
            data, doc = content.read(target_digest), m0
    else:
        manifests.append((target_digest, doc))
    repo = ref.path
    tag = ref.tag or "latest"
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tomato-push") as pool:
        for _, m in manifests:
            blobs = {d.digest: d for d in (m.config, *m.layers)}
            list(pool.map(lambda d: _push_blob(client, content, repo, d, prog), blobs.values()))
    if isinstance(doc, Index):
        for digest, m in manifests:
            client.put_manifest(repo, digest, content.read(digest), m.media_type)
    media_type = doc.media_type
    client.put_manifest(repo, ref.digest or tag, data, media_type)
    return Pushed(ref, target_digest, len(data))


__all__ = ["push", "Pushed"]
