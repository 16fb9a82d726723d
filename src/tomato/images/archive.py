"""save / load: docker-archive tars and OCI image layouts (directory or tar), both ways.

- ``oci`` (a directory) and ``oci-archive`` (a tar of one) hold the original
  blobs, so manifests keep their digests through save → load → push.
- ``docker-archive`` is what ``docker save`` writes: ``manifest.json``,
  ``<config>.json``, ``<diffid>/layer.tar`` (uncompressed) and ``repositories``.
  The image ID (config digest) survives; manifest digests cannot, since layers
  are stored uncompressed, so on load the layers become uncompressed blobs
  under a new Docker schema-2 manifest.

Loading reads only regular files with plain relative names from the tar (no
links, no ``..``): archives are untrusted input too.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tomato.errors import InvalidArgument, NotFound

from .compression import DecompressReader, sniff
from .content import ContentStore, check_digest, digest_bytes
from .manifest import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_INDEX,
    Descriptor,
    Index,
    Manifest,
    parse_config,
    parse_manifest,
)
from .unpack import split_path

OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
FORMATS = ("docker-archive", "oci-archive", "oci")


@dataclass(frozen=True)
class SaveItem:
    """One image to save: its manifest digest (the platform manifest) and its names."""

    manifest_digest: str
    names: tuple[str, ...]  # full references "docker.io/library/busybox:latest"
    familiar: tuple[str, ...]  # "busybox:latest", as docker writes RepoTags


@dataclass(frozen=True)
class Loaded:
    manifest_digest: str
    names: tuple[str, ...]


def _manifest(content: ContentStore, digest: str) -> Manifest:
    m = parse_manifest(content.read(digest))
    if not isinstance(m, Manifest):
        raise InvalidArgument(f"{digest} is not an image manifest")
    return m


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
    tf.addfile(ti, io.BytesIO(data))


def _add_file(tf: tarfile.TarFile, name: str, path: Path) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = path.stat().st_size, 0o644, 0
    with open(path, "rb") as f:
        tf.addfile(ti, f)


def save(content: ContentStore, items: list[SaveItem], output: Path, fmt: str) -> None:
    """Write ``items`` to ``output`` (a file, or a directory for ``oci``); atomic for files."""
    if fmt not in FORMATS:
        raise InvalidArgument(f"unknown archive format {fmt!r} (want one of {', '.join(FORMATS)})")
    if fmt == "oci":
        _save_oci_dir(content, items, output)
        return
    fd, tmp = tempfile.mkstemp(prefix=".tomato-save-", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w|",
                                                      format=tarfile.PAX_FORMAT) as tf:
            if fmt == "oci-archive":
                _write_oci(content, items, lambda n, d: _add_bytes(tf, n, d),
                           lambda n, p: _add_file(tf, n, p))
            else:
                _write_docker(content, items, tf)
        os.replace(tmp, output)
    except BaseException:
        os.unlink(tmp)
        raise


def _index_doc(content: ContentStore, items: list[SaveItem]) -> bytes:
    entries = []
    for it in items:
        data = content.read(it.manifest_digest)
        mt = parse_manifest(data).media_type
        names = it.names or ("",)
        for name in names:
            d = {"mediaType": mt, "digest": it.manifest_digest, "size": len(data)}
            if name:
                tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
                d["annotations"] = {CONTAINERD_NAME: name, REF_NAME: tag}
            entries.append(d)
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
                      indent=2).encode()


def _write_oci(content: ContentStore, items: list[SaveItem], put_bytes, put_file) -> None:  # type: ignore[no-untyped-def]
    put_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    seen: set[str] = set()
    for it in items:
        m = _manifest(content, it.manifest_digest)
        for d in (it.manifest_digest, m.config.digest, *[x.digest for x in m.layers]):
            if d not in seen:
                seen.add(d)
                put_file(f"blobs/sha256/{check_digest(d)}", content.path(d))
    put_bytes("index.json", _index_doc(content, items))


def _save_oci_dir(content: ContentStore, items: list[SaveItem], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def put_bytes(name: str, data: bytes) -> None:
        tmp = output / (name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, output / name)

    def put_file(name: str, path: Path) -> None:
        if not (output / name).exists():
            shutil.copyfile(path, output / (name + ".tmp"))
            os.replace(output / (name + ".tmp"), output / name)

    _write_oci(content, items, put_bytes, put_file)


def _write_docker(content: ContentStore, items: list[SaveItem], tf: tarfile.TarFile) -> None:
    manifest_json = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    for it in items:
        m = _manifest(content, it.manifest_digest)
        cfg = parse_config(content.read(m.config.digest))
        cfg_name = check_digest(m.config.digest) + ".json"
        if cfg_name not in written:
            _add_bytes(tf, cfg_name, content.read(m.config.digest))
            written.add(cfg_name)
        layers = []
        for desc, diff in zip(m.layers, cfg.diff_ids, strict=True):
            name = f"{check_digest(diff)}/layer.tar"
            layers.append(name)
            if name in written:
                continue
            written.add(name)
            # Layers go in uncompressed, as docker writes them; decompress via a temp file
            # since the tar header needs the size first.
            with tempfile.TemporaryFile(dir=content.ingest_dir) as tmp:
                with content.open(desc.digest) as src:
                    r = DecompressReader(src)
                    while block := r.read(1 << 20):
                        tmp.write(block)
                if r.digest != diff:
                    raise InvalidArgument(f"layer {desc.digest} does not match diffID {diff}")
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode, ti.mtime = tmp.tell(), 0o644, 0
                tmp.seek(0)
                tf.addfile(ti, tmp)
        manifest_json.append({"Config": cfg_name, "RepoTags": list(it.familiar) or None,
                              "Layers": layers})
        for name in it.familiar:
            repo, _, tag = name.rpartition(":")
            repositories.setdefault(repo, {})[tag] = check_digest(cfg.diff_ids[-1]) \
                if cfg.diff_ids else ""
    _add_bytes(tf, "manifest.json", json.dumps(manifest_json).encode())
    _add_bytes(tf, "repositories", json.dumps(repositories).encode())


# -- load ------------------------------------------------------------------------
@contextmanager
def _opened(source: Path | BinaryIO, content: ContentStore) -> Iterator[Path]:
    """A directory view of ``source``: itself if a directory, else its regular files
    extracted into scratch space of the content store's (collected by the engine's GC
    if this process dies); a stream (stdin) is read once, in order."""
    if isinstance(source, Path) and source.is_dir():
        yield source
        return
    name = str(source) if isinstance(source, Path) else "the input"
    with content.scratch() as scratch:
        tmp = scratch.path / "archive"
        tmp.mkdir()
        try:
            tf = tarfile.open(source, mode="r:*") if isinstance(source, Path) else \
                tarfile.open(fileobj=source, mode="r|*")
        except (tarfile.TarError, OSError) as err:
            raise InvalidArgument(f"{name} is not a tar archive: {err}") from err
        try:
            with tf:
                for m in tf:
                    if not m.isreg():
                        continue
                    parts = split_path(m.name, "archive entry")
                    if not parts:
                        continue
                    dest = tmp.joinpath(*parts)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(m)
                    assert src is not None
                    with open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        except tarfile.TarError as err:
            raise InvalidArgument(f"{name} is not a valid tar archive: {err}") from err
        yield tmp


def _inside(root: Path, rel: str) -> Path:
    parts = split_path(rel, "archive path")
    p = root.joinpath(*parts)
    if p.is_symlink() or not p.is_file():
        raise NotFound(f"archive has no file {rel!r}")
    return p


def load(content: ContentStore, source: Path | BinaryIO) -> list[Loaded]:
    """Import every image in a docker-archive or OCI layout/archive (a path or a
    stream) into the content store."""
    with _opened(source, content) as root:
        if (root / "index.json").is_file():
            return _load_oci(content, root)
        if (root / "manifest.json").is_file():
            return _load_docker(content, root)
    name = source if isinstance(source, Path) else "the archive"
    raise InvalidArgument(f"{name} has neither index.json nor manifest.json")


def _ingest(content: ContentStore, root: Path, digest: str, size: int | None = None) -> None:
    if content.exists(digest):
        return
    with open(_inside(root, f"blobs/sha256/{check_digest(digest)}"), "rb") as f:
        content.ingest(f, digest, size)


def _load_oci(content: ContentStore, root: Path) -> list[Loaded]:
    index = parse_manifest(_inside(root, "index.json").read_bytes(), OCI_INDEX)
    if not isinstance(index, Index):
        raise InvalidArgument("index.json is not an image index")
    out: dict[str, list[str]] = {}

    def walk(desc: Descriptor, names: list[str]) -> None:
        _ingest(content, root, desc.digest, desc.size)
        doc = parse_manifest(content.read(desc.digest), desc.media_type)
        if isinstance(doc, Index):
            for child in doc.manifests:
                walk(child, names)
            return
        for d in (doc.config, *doc.layers):
            _ingest(content, root, d.digest, d.size)
        out.setdefault(desc.digest, []).extend(names)

    for desc in index.manifests:
        ann = dict(desc.annotations)
        name = ann.get(CONTAINERD_NAME) or ""
        ref_name = ann.get(REF_NAME) or ""
        if not name and ("/" in ref_name or ":" in ref_name):
            name = ref_name  # a full reference; a bare "latest" is only a tag in the layout
        walk(desc, [name] if name else [])
    return [Loaded(d, tuple(dict.fromkeys(n))) for d, n in out.items()]


def _load_docker(content: ContentStore, root: Path) -> list[Loaded]:
    try:
        entries = json.loads(_inside(root, "manifest.json").read_bytes())
        assert isinstance(entries, list)
    except (ValueError, AssertionError) as err:
        raise InvalidArgument("manifest.json of the archive is not a json list") from err
    loaded = []
    for e in entries:
        cfg_bytes = _inside(root, e["Config"]).read_bytes()
        cfg_info = content.write(cfg_bytes)
        cfg = parse_config(cfg_bytes)
        if len(cfg.diff_ids) != len(e["Layers"]):
            raise InvalidArgument("archive manifest and image config disagree on layer count")
        layers = []
        for rel, diff in zip(e["Layers"], cfg.diff_ids, strict=True):
            path = _inside(root, rel)
            with open(path, "rb") as f:
                kind = sniff(f.read(8))
                f.seek(0)
                info = content.ingest(f)
            # verify the layer against its diffID before anything refers to it
            with content.open(info.digest) as f:
                r = DecompressReader(f)
                r.drain()
            if r.digest != diff:
                content.delete(info.digest)
                raise InvalidArgument(f"layer {rel} does not match diffID {diff}")
            mt = {"gzip": DOCKER_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}.get(kind, DOCKER_LAYER)
            layers.append({"mediaType": mt, "size": info.size, "digest": info.digest})
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": cfg_info.size,
                       "digest": cfg_info.digest},
            "layers": layers}, indent=3).encode()
        m = content.write(manifest, digest_bytes(manifest))
        loaded.append(Loaded(m.digest, tuple(e.get("RepoTags") or ())))
    return loaded


__all__ = ["save", "load", "SaveItem", "Loaded", "FORMATS"]
