"""A container's namespaces: which it makes, which it shares, and with whom.

Docker's modes (``--pid``, ``--ipc``, ``--uts``, ``--userns``, ``--cgroupns``):

- ``host``: no namespace of that type in the spec, so the container stays in the
  engine's (the host's);
- ``container:X``: the namespace of X's init is joined (``setns``); X is resolved to
  its full id at create (a rename does not break it, as in Docker), and its init's
  ``/proc/PID/ns/TYPE`` is looked up again at every start (X may have restarted);
  a stopped X fails the *start*, in moby's words ("failed to join PID namespace:
  container ID is not running");
- anything else: a namespace of its own.

IPC has Docker's extra modes for /dev/shm: ``private`` (a tmpfs of its own, the
default), ``none`` (no /dev/shm at all), ``shareable`` (a tmpfs the engine mounts at
``containers/ID/shm`` and binds in, so that others may join it), ``host`` (the host's
/dev/shm) and ``container:X`` (X's namespace and X's /dev/shm, if X is shareable).

``describe`` is what `tomato inspect` shows under ``Tomato.Namespaces``: each
namespace of a running container, its inode, and who else is in it.
"""

from __future__ import annotations

import os
from pathlib import Path

from tomato.engine.mounts import SHM_DIR
from tomato.engine.options import RunOptions
from tomato.errors import Conflict, InvalidArgument, NotFound
from tomato.records import replace

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig
    from tomato.engine.containers import Container

_JOINABLE = (("pid", "PID"), ("ipc", "IPC"))  #: kinds a container: mode joins
#: /proc/PID/ns names, the OCI's type for each
_NS_TYPES = (("cgroup", "cgroup"), ("ipc", "ipc"), ("mnt", "mount"), ("net", "network"),
             ("pid", "pid"), ("time", "time"), ("user", "user"), ("uts", "uts"))


def _mode(opts: RunOptions, kind: str) -> str:
    return str(getattr(opts, f"{kind}_mode"))


def planned(cfg: EngineConfig, opts: RunOptions) -> RunOptions:
    """``opts`` with each ``container:REF`` made ``container:<full id>`` (an unknown REF
    is refused, as Docker refuses it at create) and, for ``--uts host``, the host's
    name as the container's.  The caller's options are left as they are."""
    from tomato.engine.state import get

    changes: dict[str, Any] = {}
    for kind, _ in _JOINABLE:
        mode = _mode(opts, kind)
        if mode.startswith("container:"):
            try:
                other = get(cfg, mode.partition(":")[2])
            except NotFound as err:
                raise InvalidArgument(str(err)) from None
            changes[f"{kind}_mode"] = f"container:{other.id}"
    if opts.uts_mode == "host":
        changes["hostname"] = os.uname().nodename
    return replace(opts, **changes) if changes else opts


def join_paths(cfg: EngineConfig, opts: RunOptions, strict: bool) -> dict[str, str]:
    """The /proc/PID/ns/TYPE each ``container:`` mode joins now.  ``strict`` (at start):
    a container that does not run is moby's error; else (at create, which Docker allows)
    a path that names no process, which the next start replaces."""
    from tomato.engine.state import get
    from tomato.engine.status import PAUSED, RUNNING

    out = {}
    for kind, word in _JOINABLE:
        mode = _mode(opts, kind)
        if not mode.startswith("container:"):
            continue
        try:
            other = get(cfg, mode.partition(":")[2])
        except NotFound as err:
            raise Conflict(f"failed to join {word} namespace: {err}") from None
        running = other.state.status in (RUNNING, PAUSED) and other.state.pid > 0
        if not running and strict:
            raise Conflict(f"failed to join {word} namespace: container {other.id} is not "
                           "running")
        if kind == "ipc" and strict and shm_source(cfg, other) == "":
            raise Conflict(f"failed to join IPC namespace: container {other.id}: "
                           "non-shareable IPC (hint: use IpcMode:shareable for the donor "
                           "container)")
        out[kind] = f"/proc/{other.state.pid if running else 0}/ns/{kind}"
    return out


def shm_source(cfg: EngineConfig, c: Container, depth: int = 0) -> str:
    """Where ``c``'s /dev/shm comes from on the host: its own shareable tmpfs, the host's
    /dev/shm, its donor's; "" if it is not shareable (private or none)."""
    from tomato.engine.containers import Containers
    from tomato.engine.state import get

    mode = str(c.options.get("ipc_mode", "private"))
    if mode == "shareable":
        return str(Containers(cfg.root).path(c.id) / SHM_DIR)
    if mode == "host":
        return "/dev/shm"
    if mode.startswith("container:") and depth < 8:
        try:
            return shm_source(cfg, get(cfg, mode.partition(":")[2]), depth + 1)
        except NotFound:
            return ""
    return ""


def spec_namespaces(opts: RunOptions, joins: dict[str, str], netns_path: str,
                    network: str) -> list[dict[str, str]]:
    """linux.namespaces for these modes (``joins`` from ``join_paths``)."""
    out: list[dict[str, str]] = []
    for kind in ("pid", "ipc"):
        mode = _mode(opts, kind)
        if mode == "host":
            continue
        out.append({"type": kind, "path": joins[kind]} if kind in joins else {"type": kind})
    if opts.uts_mode != "host":
        out.append({"type": "uts"})
    out.append({"type": "mount"})
    if netns_path:
        out.append({"type": "network", "path": netns_path})
    elif network != "host":
        out.append({"type": "network"})
    if opts.cgroupns_mode != "host":
        out.append({"type": "cgroup"})
    return out


def shm_mount(cfg: EngineConfig, opts: RunOptions, cdir: Path) -> dict[str, Any] | None:
    """The /dev/shm bind of a shareable, host or container: IPC mode (None: the spec's own
    tmpfs, or for ``none`` nothing)."""
    from tomato.engine.state import get

    mode = opts.ipc_mode
    if mode == "shareable":
        source = str(cdir / SHM_DIR)
    elif mode == "host":
        if not os.path.isdir("/dev/shm"):
            raise InvalidArgument("/dev/shm is not mounted, but must be for --ipc=host")
        source = "/dev/shm"
    elif mode.startswith("container:"):
        source = shm_source(cfg, get(cfg, mode.partition(":")[2]))
        if not source:
            return None  # refused at start, in moby's words (join_paths)
    else:
        return None
    return {"destination": "/dev/shm", "type": "bind", "source": source,
            "options": ["rbind", "rprivate"]}


def mount_shm(cdir: Path, size: int) -> None:
    """A shareable container's /dev/shm: a tmpfs of its own on the host (Docker's
    ShmPath), kept from create to rm as the rootfs is (mounted again after a reboot)."""
    from tomato._sys import libc

    target = cdir / SHM_DIR
    if os.path.ismount(target):
        return
    target.mkdir(mode=0o700, exist_ok=True)
    libc.mount("shm", str(target), "tmpfs", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC,
               f"mode=1777,size={size}")


def unmount_shm(cdir: Path) -> None:
    """Take a shareable /dev/shm away (before the container's directory is deleted)."""
    from tomato.engine.mounts import unmount_rootfs

    unmount_rootfs(cdir / SHM_DIR)


def refresh_joins(cfg: EngineConfig, c: Container, bundle: Path) -> None:
    """Before a start: point config.json's joined namespaces at the joined containers'
    inits as they are now (moby's errors if one does not run)."""
    opts = RunOptions.from_dict(c.options)
    if not any(_mode(opts, k).startswith("container:") for k, _ in _JOINABLE):
        return
    joins = join_paths(cfg, opts, strict=True)
    import json

    from tomato.files import write_private

    spec = json.loads((bundle / "config.json").read_text())
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] in joins:
            ns["path"] = joins[ns["type"]]
    write_private(bundle / "config.json", json.dumps(spec))


def describe(cfg: EngineConfig, c: Container) -> list[dict[str, Any]]:
    """Every namespace of ``c``: its type, the inode (a running container's), and with
    whom it is shared: "host" (the engine's own), other containers by name, or nobody."""
    from tomato.engine.containers import Containers
    from tomato.engine.status import PAUSED, RUNNING

    opts = RunOptions.from_dict(c.options)
    modes = {"pid": opts.pid_mode or "private", "ipc": opts.ipc_mode,
             "uts": opts.uts_mode or "private", "user": opts.userns_mode or "host",
             "cgroup": opts.cgroupns_mode or "private", "network": opts.network,
             "mount": "private", "time": "host"}
    running = c.state.status in (RUNNING, PAUSED) and c.state.pid > 0
    others: dict[tuple[str, int], list[str]] = {}
    if running:
        for other in Containers(cfg.root).all():
            if other.id == c.id or other.state.status not in (RUNNING, PAUSED) \
                    or other.state.pid <= 0:
                continue
            for proc_name, _ in _NS_TYPES:
                ino = _inode(other.state.pid, proc_name)
                if ino:
                    others.setdefault((proc_name, ino), []).append(other.name)
    out = []
    for proc_name, kind in _NS_TYPES:
        entry: dict[str, Any] = {"Type": kind, "Mode": modes[kind]}
        if running:
            ino = _inode(c.state.pid, proc_name)
            if not ino:
                continue
            entry["Inode"] = ino
            entry["Path"] = f"/proc/{c.state.pid}/ns/{proc_name}"
            shared = []
            if ino == _inode(os.getpid(), proc_name):
                shared.append("host")
            shared += sorted(others.get((proc_name, ino), []))
            entry["SharedWith"] = shared
        out.append(entry)
    return out


def _inode(pid: int, proc_name: str) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/{proc_name}").st_ino
    except OSError:
        return 0
