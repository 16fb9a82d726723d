"""What killed tomato processes leave behind, found and removed.

A `tomato run -d` killed with -9 at any moment may leave a container directory, its
bundle and overlay mount, a snapshot and the image's lease on it, the runtime's state,
an init waiting in its cgroup for a start that never comes, a netns -- and no record
(the record is the last thing a create writes).  Every such piece is named by the
container id it was made for, so the ids this root knows of are gathered from the
kernel-facing state (the containers and runtime directories, the leases) and
compared with the records.  An id with pieces, no record and no live create holding
its claim (engine/claims.py) is a leftover: its pieces go in the order a removal
takes (processes, mounts, files, then records).

``sweep`` runs with every `ps`, `rm` and `container prune` (there is no daemon to
tidy up at start-up); `tomato system check` shows what it finds, and removes it with
``--repair``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from tomato.engine.claims import claimed
from tomato.engine.config import EngineConfig
from tomato.engine.containers import Containers
from tomato.engine.runtime_ops import runtime_root
from tomato.errors import NotFound, TomatoError

_ID = re.compile(r"^[0-9a-f]{64}$")


def claim_path(root: Path, cid: str) -> Path:
    """Held by a create from before it makes anything until its record exists."""
    return root / "containers" / f".{cid}.lock"


def _ids_in(directory: Path) -> set[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return set()
    return {n.strip(".").removesuffix(".lock") for n in names
            if _ID.match(n.strip(".").removesuffix(".lock"))}


def _leased(cfg: EngineConfig) -> set[str]:
    from tomato.engine.store import Store

    with Store(cfg.root).read() as db:
        return {r[0] for r in db.execute("SELECT holder FROM image_leases") if _ID.match(r[0])}


def find(cfg: EngineConfig, known: set[str] | None = None) -> list[str]:
    """The ids of leftovers: pieces but no record, and no live create making them."""
    records = Containers(cfg.root)
    if known is None:
        known = {c.id for c in records.all()}
    candidates = (_ids_in(cfg.root / "containers") | _ids_in(runtime_root(cfg))
                  | _leased(cfg)) - known
    found = []
    for cid in sorted(candidates):
        if claimed(claim_path(cfg.root, cid)):
            continue  # a create is still making it
        try:
            records.get(cid)  # asked again after the claim: it may have just finished
            continue
        except NotFound:
            found.append(cid)
    return found


def describe(cfg: EngineConfig, cid: str) -> list[str]:
    """What is left of ``cid``, in words, for `system check`."""
    what = []
    cdir = Containers(cfg.root).path(cid)
    if os.path.ismount(cdir / "bundle" / "rootfs"):
        what.append("a mounted root filesystem")
    if cdir.exists():
        what.append("a container directory")
    if (runtime_root(cfg) / cid).exists():
        what.append("runtime state")
    if cid in _leased(cfg):
        what.append("a snapshot and an image lease")
    return what


def remove(cfg: EngineConfig, cid: str) -> None:
    """Every piece of leftover ``cid``: its processes (the runtime's delete kills an
    init whose creator died), mounts, files, snapshot and lease, network."""
    from tomato.engine import networks
    from tomato.engine.image_store import release_rootfs
    from tomato.engine.mounts import SHM_DIR, unmount_rootfs
    from tomato.engine.runtime_ops import delete

    records = Containers(cfg.root)
    delete(cfg, cid)
    unmount_rootfs(records.bundle(cid) / "rootfs")
    unmount_rootfs(records.path(cid) / SHM_DIR)  # a shareable /dev/shm
    shutil.rmtree(records.path(cid), ignore_errors=True)
    release_rootfs(cfg, cid)
    nets = networks.Networks(cfg.root)
    if os.path.lexists(nets.netns_path(cid)):
        nets.teardown(cid)


def sweep(cfg: EngineConfig, known: set[str] | None = None) -> list[str]:
    """Find and remove leftovers; their ids.  Housekeeping: a piece that cannot go now
    (a full disk, a busy mount) stays for the next sweep, never failing the command."""
    removed = []
    try:
        found = find(cfg, known)
    except TomatoError:
        return []
    for cid in found:
        try:
            remove(cfg, cid)
        except (TomatoError, OSError):
            continue
        removed.append(cid)
    return removed


__all__ = ["claim_path", "find", "describe", "remove", "sweep"]
