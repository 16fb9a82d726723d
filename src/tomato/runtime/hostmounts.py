"""Containers without a mount namespace of their own: their mounts are the caller's.

The spec lets any namespace be absent and inherited.  Without a mount namespace the
init makes its mounts (the rootfs bind, /proc, /dev, the spec's mounts, masks) in the
namespace of the runtime that created it, where they outlive the container: runc
leaves them there for good.  Everything is mounted below one bind of the rootfs onto
itself (rootfs.mount_all), so one lazy unmount of that bind takes them all away.

The bind is known by its mount id, recorded once the init is ready; `delete` (and a
failed `create`) detach it only while it is still the topmost mount on the rootfs, so a
mount somebody stacked there later, or the rootfs's own mount, is never touched.
Imported only for such containers: nothing here is on the common start path.
"""

from __future__ import annotations

import os

from tomato._sys import libc as c
from tomato.runtime.rootfs import unescape_mountinfo as _unescape

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def top_mount(path: str, mountinfo: str | None = None) -> int:
    """The id of the topmost mount on ``path`` in our mount namespace (0: none)."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    at: dict[int, int] = {}  # mount id -> parent id, of the mounts on path
    for line in mountinfo.splitlines():
        fields = line.split(" ", 5)
        if len(fields) > 4 and _unescape(fields[4]) == path:
            at[int(fields[0])] = int(fields[1])
    covered = set(at.values())
    tops = [mid for mid in at if mid not in covered]
    return tops[-1] if tops else 0


def mount_ns() -> str:
    return os.readlink("/proc/self/ns/mnt")


def record(rootfs: str, before: bool = False) -> dict[str, Any]:
    """What `delete` needs to find the container's mounts again: before the init runs,
    the mount on the rootfs they will stack on ("before"); once it is ready, the
    rootfs bind that holds them ("id")."""
    top = top_mount(rootfs)
    return {"path": rootfs, "ns": mount_ns(), "before" if before else "id": top}


def detach_if_top(path: str, mount_id: int) -> bool:
    """Lazily unmount ``mount_id`` (and every mount below it) if it is the topmost on
    ``path``; whether it was."""
    if not mount_id or top_mount(path) != mount_id:
        return False
    c.umount2(path, c.MNT_DETACH)
    return True


def detach_new(path: str, before: int) -> None:
    """Undo of a failed create: detach what now tops ``path`` if it came after ``before``."""
    now = top_mount(path)
    if now and now != before:
        c.umount2(path, c.MNT_DETACH)


def remove(saved: dict[str, Any], warn: Any) -> None:
    """`delete`: take the container's mounts away from the caller's namespace."""
    if saved.get("ns") != mount_ns():
        warn(f"the mounts of this container are in mount namespace {saved.get('ns')}, not "
             f"ours ({mount_ns()}): left under {saved.get('path')}")
        return
    path = str(saved.get("path", ""))
    if saved.get("id"):
        detach_if_top(path, int(saved["id"]))
    else:  # the create that made them was killed before the init was ready
        detach_new(path, int(saved.get("before") or 0))
