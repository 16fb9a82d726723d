"""OCI / Docker schema-2 manifests, indexes and image configs: parse once into dataclasses.

Schema-1 manifests are refused (signed, deprecated, no config blob).
"""

from __future__ import annotations

import json
import os

from tomato.errors import InvalidArgument
from tomato.records import field
from tomato.records import record as dataclass

TYPE_CHECKING = False  # typing costs ~2 ms to import on every `tomato` command
if TYPE_CHECKING:
    from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return s + (f"/{self.variant}" if self.variant else "")

    def to_json(self) -> dict[str, str]:
        d = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            d["variant"] = self.variant
        return d


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                             "size": self.size}
        if self.platform:
            d["platform"] = self.platform.to_json()
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageConfig:
    platform: Platform
    diff_ids: tuple[str, ...]
    created: str | None
    config: dict[str, Any] = field(hash=False, compare=False)
    history: tuple[dict[str, Any], ...] = field(hash=False, compare=False)
    raw: dict[str, Any] = field(hash=False, compare=False)


_ARCH = {"x86_64": ("amd64", ""), "aarch64": ("arm64", "v8"), "armv7l": ("arm", "v7"),
         "armv6l": ("arm", "v6"), "i686": ("386", ""), "i386": ("386", ""),
         "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", "")}


def host_platform() -> Platform:
    machine = os.uname().machine
    arch, variant = _ARCH.get(machine, (machine, ""))
    return Platform("linux", arch, variant)


def parse_platform(text: str) -> Platform:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: want os/arch[/variant]")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"{what} is not valid json: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} is not a json object")
    return doc


def _descriptor(d: Any, what: str) -> Descriptor:
    try:
        plat = d.get("platform")
        p = None
        if plat:
            p = Platform(plat["os"], plat["architecture"], plat.get("variant", ""))
        digest, size = d["digest"], d["size"]
        if not isinstance(digest, str) or not isinstance(size, int) or size < 0:
            raise TypeError("bad digest or size")
        return Descriptor(d.get("mediaType", ""), digest, size, p, tuple(d.get("urls") or ()),
                          tuple(sorted((d.get("annotations") or {}).items())))
    except (KeyError, TypeError, AttributeError) as err:
        raise InvalidArgument(f"malformed descriptor in {what}: {err}") from err


def parse_manifest(data: bytes, media_type: str = "") -> Manifest | Index:
    """Parse a manifest or index; ``media_type`` is the Content-Type the registry sent."""
    if media_type in SCHEMA1:
        raise InvalidArgument("image uses a schema 1 manifest, which tomato does not support; "
                              "push it again with a current client")
    doc = _json(data, "manifest")
    if doc.get("schemaVersion") == 1:
        raise InvalidArgument("image uses a schema 1 manifest, which tomato does not support; "
                              "push it again with a current client")
    mt = doc.get("mediaType") or media_type
    if not mt or mt == "application/json":
        mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if mt in INDEX_TYPES:
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise InvalidArgument("image index has no manifests list")
        return Index(mt, tuple(_descriptor(m, "index") for m in items))
    if mt in MANIFEST_TYPES:
        if not isinstance(doc.get("layers"), list) or "config" not in doc:
            raise InvalidArgument("manifest lacks config or layers")
        return Manifest(mt, _descriptor(doc["config"], "manifest"),
                        tuple(_descriptor(m, "manifest") for m in doc["layers"]))
    raise InvalidArgument(f"unsupported manifest media type {mt!r}")


def parse_config(data: bytes) -> ImageConfig:
    doc = _json(data, "image config")
    try:
        rootfs = doc.get("rootfs") or {}
        diff_ids = tuple(rootfs.get("diff_ids") or ())
        plat = Platform(doc.get("os", "linux"), doc.get("architecture", ""),
                        doc.get("variant", ""))
        return ImageConfig(plat, diff_ids, doc.get("created"), doc.get("config") or {},
                           tuple(doc.get("history") or ()), doc)
    except (AttributeError, TypeError) as err:
        raise InvalidArgument(f"malformed image config: {err}") from err


def select_manifest(index: Index, want: Platform) -> Descriptor:
    """The index entry for ``want``; a missing variant matches any (preferring exact)."""
    best = None
    for d in index.manifests:
        p = d.platform
        if p is None or p.os != want.os or p.architecture != want.architecture:
            continue
        if p.variant == want.variant:
            return d
        if best is None and (not want.variant or not p.variant):
            best = d
    if best is None:
        have = ", ".join(str(d.platform) for d in index.manifests if d.platform) or "none"
        raise InvalidArgument(f"no image for platform {want} in the index (has: {have})")
    return best


def chain_ids(diff_ids: tuple[str, ...] | list[str]) -> list[str]:
    """OCI chain IDs: C(L0) = DiffID(L0); C(Ln) = sha256(C(Ln-1) + ' ' + DiffID(Ln))."""
    out: list[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            import hashlib  # ~3 ms (OpenSSL): only for chain ids

            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


__all__ = ["Platform", "Descriptor", "Manifest", "Index", "ImageConfig", "parse_manifest",
           "parse_config", "select_manifest", "chain_ids", "host_platform", "parse_platform",
           "ACCEPT"]


def load_manifest(content: Any, digest: str) -> Manifest:
    m = parse_manifest(content.read(digest))
    if not isinstance(m, Manifest):
        raise InvalidArgument(f"{digest} is an index, not an image manifest")
    return m


def load_config(content: Any, manifest: Manifest) -> ImageConfig:
    cfg = parse_config(content.read(manifest.config.digest))
    if len(cfg.diff_ids) != len(manifest.layers):
        raise InvalidArgument(
            f"image config lists {len(cfg.diff_ids)} layers but the manifest has "
            f"{len(manifest.layers)}")
    return cfg
