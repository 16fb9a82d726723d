"""A container's filesystem: diff, commit, cp and export.

The merged view is the container's overlay, mounted at its bundle's rootfs
for the container's whole life; paths inside it are always resolved within
that root (a symlink in the image must not point a copy at the host), and
paths under a volume or bind mount go to the mount's source, as docker cp does.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

from tomato._sys.paths import is_within, resolve_in_root
from tomato.engine.containers import Container, Containers
from tomato.engine.images import EngineConfig, _Ctx, _record, rootfs_mounts
from tomato.errors import InvalidArgument, NotFound


def _overlay(cfg: EngineConfig, c: Container) -> tuple[str, list[str]]:
    mounts = rootfs_mounts(cfg, c.id)
    if not mounts or mounts[0].type != "overlay":
        raise InvalidArgument(f"container {c.short_id} has no overlay layer")
    upper = mounts[0].option("upperdir")
    assert upper is not None
    return upper, mounts[0].lowerdirs


#: Files the engine bind-mounts over; their empty placeholders are not changes.
ENGINE_FILES = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"})


def diff(cfg: EngineConfig, c: Container) -> list[tuple[str, str]]:
    from tomato.images.changes import changes

    upper, lowers = _overlay(cfg, c)
    return [(ch.kind, ch.path) for ch in changes(upper, lowers, ENGINE_FILES)]


def commit(cfg: EngineConfig, c: Container, reference: str | None, *, comment: str = "",
           author: str = "", changes: dict[str, Any] | None = None, pause: bool = True) -> str:
    """The container's changes as a new image; returns its id."""
    from tomato.engine import service
    from tomato.images.commit import commit_layer
    from tomato.images.pull import unpack
    from tomato.images.reference import parse

    ctx = _Ctx(cfg)
    upper, lowers = _overlay(cfg, c)
    paused_here = False
    if pause and c.state.status == "running":
        service.pause(cfg, c.id)
        paused_here = True
    try:
        with ctx.store.lock("gc", shared=True):
            from tomato.engine.images import get_image

            base = get_image(cfg, c.image_id)
            digest = commit_layer(ctx.content, base.manifest_digest, upper, changes or {},
                                  comment=comment, author=author,
                                  created_by=" ".join(c.spec.get("process", {}).get("args", [])),
                                  lowers=lowers, hidden=ENGINE_FILES)
            chains, size = unpack(digest, ctx.stores)
            from tomato.images.manifest import load_manifest

            manifest = load_manifest(ctx.content, digest)
            img = _record(ctx, None, image_id=manifest.config.digest, manifest_digest=digest,
                          target_digest=digest, chain_ids=chains, size=size,
                          names=[parse(reference)] if reference else [])
    finally:
        if paused_here:
            service.unpause(cfg, c.id)
    return img.id


def _host_path(cfg: EngineConfig, c: Container, path: str) -> str:
    """A container path → the host path that holds it (volumes and binds included)."""
    if not path.startswith("/"):
        path = "/" + path
    norm = os.path.normpath(path)
    best = None
    for m in c.spec.get("mounts", []):
        if m.get("type") != "bind":
            continue
        dest = os.path.normpath(m["destination"])
        if (norm == dest or norm.startswith(dest.rstrip("/") + "/")) and \
                (best is None or len(dest) > len(best[0])):
            best = (dest, m["source"])
    if best is not None:
        rest = norm[len(best[0]):]
        return resolve_in_root(best[1], rest or "/") if os.path.isdir(best[1]) else best[1]
    rootfs = str(Containers(cfg.root).bundle(c.id) / "rootfs")
    if not os.path.ismount(rootfs):
        raise InvalidArgument(f"container {c.short_id} has no mounted filesystem")
    return resolve_in_root(rootfs, norm)


def copy_from(cfg: EngineConfig, c: Container, src: str, dest: str,
              out: BinaryIO | None = None) -> None:
    host = _host_path(cfg, c, src)
    if not os.path.lexists(host):
        raise NotFound(f"Could not find the file {src} in container {c.name}")
    if dest == "-":
        assert out is not None
        with tarfile.open(fileobj=out, mode="w|") as tf:
            tf.add(host, arcname=os.path.basename(src.rstrip("/")) or ".")
        return
    target = Path(dest)
    if target.is_dir():
        target = target / os.path.basename(os.path.normpath(src))
    if os.path.isdir(host) and not os.path.islink(host):
        shutil.copytree(host, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(host, target, follow_symlinks=False)


def copy_to(cfg: EngineConfig, c: Container, src: str, dest: str,
            stream: BinaryIO | None = None) -> None:
    """Copy a host path (or a tar stream with src "-") into the container."""
    host_dest = _host_path(cfg, c, dest)
    rootfs = str(Containers(cfg.root).bundle(c.id) / "rootfs")
    if src == "-":
        assert stream is not None
        if not os.path.isdir(host_dest):
            raise InvalidArgument(f"destination {dest} must be a directory for a tar stream")
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            tf.extractall(host_dest, filter="data")
        return
    if not os.path.lexists(src):
        raise NotFound(f"no such file or directory: {src}")
    parent = os.path.dirname(host_dest.rstrip("/")) or "/"
    if not os.path.isdir(host_dest) and not os.path.isdir(parent):
        raise NotFound(f"no such directory: {os.path.dirname(dest)}")
    target = host_dest
    if os.path.isdir(host_dest):
        target = os.path.join(host_dest, os.path.basename(os.path.normpath(src)))
    if is_within(rootfs, host_dest) and not is_within(rootfs, os.path.realpath(parent)):
        raise InvalidArgument(f"destination {dest} escapes the container")
    if os.path.isdir(src):
        shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, target, follow_symlinks=False)


def export(cfg: EngineConfig, c: Container, out: BinaryIO) -> None:
    """The merged root filesystem as a tar stream (mounts inside it not included)."""
    rootfs = Containers(cfg.root).bundle(c.id) / "rootfs"
    if not os.path.ismount(rootfs):
        raise InvalidArgument(f"container {c.short_id} has no mounted filesystem")
    with tarfile.open(fileobj=out, mode="w|") as tf:
        for entry in sorted(os.listdir(rootfs)):
            tf.add(str(rootfs / entry), arcname=entry)
