"""`rm` and `container prune`: a container and everything it owns.

Files before records: on a full disk the space the logs and the container's
layer free is what lets the records be written (and a removal cut short is
finished by the next one); when even that is not enough, the engine gives
back its reserve (tomato.files) and tries once more.  The network's teardown
(deleting links sleeps in the kernel) runs on a thread beside the rest.

The monitor of a `--rm` container calls ``remove_files`` itself when the
container ends: this module never imports the monitor.
"""

from __future__ import annotations

import signal
from pathlib import Path

from tomato.engine import events, mounts, runtime_ops
from tomato.engine import images as image_service
from tomato.engine.containers import Containers
from tomato.engine.state import get, list_containers, request_stop, wait_exit
from tomato.engine.status import CREATED, DEAD, EXITED, LIVE
from tomato.errors import Conflict, NoSpace, NotFound, TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from tomato.engine.config import EngineConfig


def remove(cfg: EngineConfig, ref: str, force: bool = False, volumes: bool = False) -> str:
    c = get(cfg, ref)
    if c.state.status in LIVE:
        if not force:
            raise Conflict(f"You cannot remove a running container {c.id}. Stop the "
                           "container before attempting removal or force remove")
        request_stop(cfg, c)
        runtime_ops.kill(cfg, c.id, signal.SIGKILL)
        events.container(cfg.root, c, "kill", signal=str(int(signal.SIGKILL)))
        wait_exit(cfg, c.id, 30)
    remove_files(cfg.root, c.id, volumes=volumes)
    return c.id


def remove_files(root: Path, cid: str, volumes: bool = False) -> None:
    """Everything a container owns: runtime state, rootfs mount, snapshot, dir, record."""
    import shutil

    from tomato.engine.config import EngineConfig

    cfg = EngineConfig(root=root)
    records = Containers(root)
    try:
        c = records.get(cid)
    except NotFound:
        return
    from tomato.engine import networks

    network_done = None
    if networks.is_networked(c.options.get("network", "none")):
        # veths, netns, leases, ports, nft rules: the kernel's link deletion sleeps, so
        # it overlaps the rest of the removal (on a thread; joined before the record goes)
        network_done = networks.Networks(root).teardown_started(cid)
    else:
        from tomato.engine import rootless_net

        if rootless_net.is_slirp(c.options.get("network", "none")):
            rootless_net.teardown(root, records.path(cid), cid)
    try:
        runtime_ops.delete(cfg, cid)
        mounts.unmount_rootfs(records.bundle(cid) / "rootfs")
        mounts.unmount_rootfs(records.path(cid) / mounts.SHM_DIR)  # a shareable /dev/shm
        # Files before records (see the module).
        shutil.rmtree(records.path(cid), ignore_errors=True)
        _freeing(cfg, image_service.release_rootfs, cfg, cid)
    finally:
        if network_done is not None:
            network_done()
    _freeing(cfg, records.delete, cid)
    events.container(root, c, "destroy")
    if volumes:
        from tomato.engine import volumes as vol

        for name in c.options.get("anonymous_volumes", []):
            try:
                vol.remove(root, name)
            except TomatoError:
                pass


def _freeing(cfg: EngineConfig, step: Callable[..., Any], *args: Any) -> None:
    """A step of a removal that must record what it freed: on a full disk, the engine
    gives back its reserve (tomato.files) and tries once more."""
    try:
        step(*args)
    except NoSpace:
        from tomato.files import release_reserve

        if not release_reserve(cfg.root):
            raise
        step(*args)


def prune(cfg: EngineConfig, filters: dict[str, list[str]] | None = None) -> list[str]:
    return prune_reclaiming(cfg, filters)[0]


def prune_reclaiming(cfg: EngineConfig, filters: dict[str, list[str]] | None = None
                     ) -> tuple[list[str], int]:
    """`container prune`: the stopped containers (that ``filters``' until and label
    allow), removed; their ids and the bytes their layers held (docker's SizeRw)."""
    from tomato.engine.layersize import sizes
    from tomato.engine.listfilters import prune_matches

    removed, reclaimed = [], 0
    for c in list_containers(cfg, all_states=True):
        if c.state.status in (CREATED, EXITED, DEAD) and \
                prune_matches(c.created, c.options.get("labels") or {}, filters or {}):
            written = sizes(cfg, c)[0]
            remove_files(cfg.root, c.id)
            removed.append(c.id)
            reclaimed += written
    return removed, reclaimed
