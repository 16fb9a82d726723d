"""The container use cases the CLI and the API call, in one place: a façade over the
engine's rooms, each a file (DESIGN.md, "The engine's rooms"):

    create.py       create (record, bundle, rootfs, network plan), rename
    start.py        start under a new monitor
    supervision.py  forking the monitor, the hand-off, the cgroup primer
    stop.py         kill, stop, restart, pause, unpause
    removal.py      rm, prune
    execs.py        exec (and exec -d's reaper)
    state.py        reconcile, get, ps, wait, logs' path
    status.py       the statuses and their transition table

Each takes the EngineConfig and returns data; nothing here prints.  Every
operation that reads a container first reconciles its record with the kernel.
"""

from __future__ import annotations

from tomato.engine.create import create, rename
from tomato.engine.execs import exec_in
from tomato.engine.removal import prune, remove, remove_files
from tomato.engine.runtime_ops import CGROUP_PARENT, runtime_root
from tomato.engine.start import start
from tomato.engine.state import (
    MONITOR_LOST,
    get,
    is_running,
    list_containers,
    log_path,
    reconcile,
    wait_exit,
)
from tomato.engine.stop import kill, pause, restart, stop, unpause

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from tomato.engine.config import EngineConfig


def settle(cfg: EngineConfig) -> None:
    """Before the process exits: the primer waited for, the monitors that are done
    reaped (supervision.py)."""
    cfg.supervision.settle()


__all__ = ["CGROUP_PARENT", "MONITOR_LOST", "create", "exec_in", "get", "is_running",
           "kill", "list_containers", "log_path", "pause", "prune", "reconcile", "remove",
           "remove_files", "rename", "restart", "runtime_root", "settle", "start", "stop",
           "unpause", "wait_exit"]
