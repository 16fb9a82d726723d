"""What a new container mounts: its root filesystem (the image's overlay, mounted
at ``bundle/rootfs``), and the OCI mounts of its volumes (``-v``, ``--mount`` and the
image's VOLUMEs).  The runtime mounts the latter inside the container; the rootfs
is the engine's, so `cp`, `diff` and `commit` reach it while the container runs."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from tomato.engine.containers import new_id
from tomato.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig
    from tomato.engine.options import RunOptions
    from tomato.images.snapshots import Mount


SHM_DIR = "shm"  #: containers/ID/shm: a shareable container's /dev/shm (namespaces.py)


def _volume_dir(cfg: EngineConfig, name: str) -> Path:
    from tomato.engine import volumes

    return volumes.ensure(cfg.root, name).path / "_data"


def volume_mounts(cfg: EngineConfig, opts: RunOptions, image_config: dict[str, Any],
                  inherited: list[dict[str, Any]] | None = None,
                  ) -> tuple[list[dict[str, Any]], list[str]]:
    """OCI mounts for -v/--mount, --volumes-from (``inherited``: a container's own -v
    and --mount win a destination, as in Docker) and the image's VOLUMEs; and the
    anonymous volumes made."""
    mounts: list[dict[str, Any]] = []
    anonymous: list[str] = []
    taken: set[str] = set()

    def add(dest: str, source: str, ro: bool, kind: str = "bind") -> None:
        taken.add(dest.rstrip("/") or "/")
        options = ["rbind", "ro" if ro else "rw"] if kind == "bind" else []
        mounts.append({"destination": dest, "type": "bind", "source": source,
                       "options": options})

    for spec in opts.volumes:
        parts = spec.split(":")
        ro = len(parts) == 3 and "ro" in parts[2].split(",")
        if len(parts) == 1:
            name = new_id()
            anonymous.append(name)
            add(parts[0], str(_volume_dir(cfg, name)), False)
        elif parts[0].startswith("/"):
            if not os.path.lexists(parts[0]):  # docker creates a missing bind source (a
                os.makedirs(parts[0], exist_ok=True)  # dir); a file is bound as a file
            add(parts[1], parts[0], ro)
        else:
            add(parts[1], str(_volume_dir(cfg, parts[0])), ro)
    for m in opts.mounts:
        from tomato.engine.options import parse_mount

        fields = parse_mount(m)
        ro = fields.get("readonly", fields.get("ro", "false")) in ("true", "1", "")
        if fields["type"] == "bind":
            if not os.path.exists(fields["source"]):
                raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path "
                                      f"does not exist: {fields['source']}")
            add(fields["target"], fields["source"], ro)
        elif fields["type"] == "tmpfs":
            size = fields.get("tmpfs-size")
            mounts.append({"destination": fields["target"], "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev"] + ([f"size={size}"] if size else [])})
        else:
            name = fields.get("source") or new_id()
            if not fields.get("source"):
                anonymous.append(name)
            add(fields["target"], str(_volume_dir(cfg, name)), ro)
    for inherited_mount in inherited or []:
        dest = inherited_mount["destination"].rstrip("/") or "/"
        if dest not in taken:
            taken.add(dest)
            mounts.append(inherited_mount)
    for dest in (image_config.get("Volumes") or {}):
        if (dest.rstrip("/") or "/") not in taken:
            name = new_id()
            anonymous.append(name)
            add(dest, str(_volume_dir(cfg, name)), False)
    return mounts, anonymous


def mount_rootfs(mounts: list[Mount], target: Path) -> None:
    """The snapshot's mounts (an overlay, or a bind for an image with no layers) at
    ``target``; nothing if something is mounted there already."""
    from tomato._sys import libc

    target.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(target):
        return
    for m in mounts:
        if m.type == "bind":
            libc.mount(m.source, str(target), None, libc.MS_BIND | libc.MS_REC)
        elif m.type == "overlay" and _fuse_overlay():
            from tomato.engine.rootless import mount_fuse_overlay

            mount_fuse_overlay(m.options, str(target))
        elif m.type == "overlay" and _rootless():  # its xattrs: user.overlay.* (unpack.py)
            try:
                libc.mount(m.source or m.type, str(target), "overlay", 0,
                           ",".join([*m.options, "userxattr"]))
            except OSError as err:
                if err.errno not in (errno.EPERM, errno.EINVAL):
                    raise
                # the kernel refuses overlayfs in a user namespace (< 5.11) or userxattr
                # (< 5.11 too): fuse-overlayfs does it in user space, as podman falls back
                from tomato.engine.rootless import mount_fuse_overlay

                mount_fuse_overlay(m.options, str(target))
        else:
            libc.mount(m.source or m.type, str(target), m.type, 0, ",".join(m.options))


def _rootless() -> bool:
    from tomato._sys import userns

    return userns.rootless()


def _fuse_overlay() -> bool:
    """A rootless engine that uses fuse-overlayfs (engine/rootless.py decides)."""
    from tomato._sys import userns

    if not userns.rootless():
        return False
    from tomato.engine.rootless import overlay_driver

    return overlay_driver() == "fuse-overlayfs"


def unmount_rootfs(target: Path) -> None:
    """Everything mounted at ``target`` (lazily: a process may still hold it)."""
    from tomato._sys import libc

    for _ in range(10):
        if not os.path.ismount(target):
            return
        try:
            libc.umount2(str(target), libc.MNT_DETACH)
        except OSError:
            return


def rmtree(path: Path) -> None:
    import shutil  # ~2 ms (with bz2, lzma): only when a directory goes

    shutil.rmtree(path, ignore_errors=True)

