"""`start`: a created (or exited) container, run under a new monitor.

The monitor (monitor.py) is the parent of the container's init and records its
life; it is forked from this process (supervision.py), or -- for a fork server's
`run -d` -- this process becomes it.  Before that: the rootfs and the netns are
made again if a reboot took them, the last run's monitor is let finish, and the
runtime's leftover state of a crashed one is deleted.
"""

from __future__ import annotations

import os
import time

from tomato.engine import events, health, monitor_config, mounts, runtime_ops
from tomato.engine import images as image_service
from tomato.engine.containers import Container, Containers, forget_exit
from tomato.engine.monitor_config import MonitorConfig
from tomato.engine.options import RunOptions
from tomato.engine.state import get
from tomato.engine.status import LIVE, StateChange
from tomato.errors import TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from tomato.engine.config import EngineConfig


def start(cfg: EngineConfig, ref: str, attach_wait: bool = False,
          handoff: Callable[[int, str], None] | None = None) -> Container:
    """Start a created container under a new monitor.

    ``handoff(code, text)``: this process becomes the monitor instead of forking one
    (a fork server's child running `run -d`, which has nothing else to do): once the
    container has started, or failed to, ``handoff`` tells the user (the id, or the
    error) and lets the client go; start then never returns.  One process fewer per
    container, and none of its copy-on-write faults.
    """
    supervision = cfg.supervision
    supervision.prime()  # unless create just did: the monitor's cgroup move, primed
    try:
        return _start(cfg, ref, attach_wait, handoff)
    finally:
        # Its write may still wait out its grace period (it holds cgroup_mutex while it
        # does): not worth waiting for here; ``settle`` reaps it before we exit.
        supervision.reap_primer(wait=False)


def _start(cfg: EngineConfig, ref: str, attach_wait: bool,
           handoff: Callable[[int, str], None] | None) -> Container:
    records = Containers(cfg.root)
    c = get(cfg, ref)
    if c.state.status in LIVE:
        return c
    opts = RunOptions.from_dict(c.options)
    rootfs = records.bundle(c.id) / "rootfs"
    if not os.path.ismount(rootfs):  # after a reboot the overlay is gone: mount it again
        mounts.mount_rootfs(image_service.rootfs_mounts(cfg, c.id), rootfs)
    from tomato.engine import networks

    if networks.is_networked(opts.network):
        from tomato.network.netns import is_mounted

        nets = networks.Networks(cfg.root, cfg.explain)
        if not is_mounted(nets.netns_path(c.id)):  # after a reboot: the same leases again
            nets.replug(c.id)
    else:
        from tomato.engine import rootless_net

        if rootless_net.is_slirp(opts.network):  # its slirp4netns, again if it is gone
            rootless_net.ensure_running(cfg.root, records.path(c.id), c.id, opts.network,
                                        list(opts.publish))
    if opts.ipc_mode == "shareable":  # after a reboot its /dev/shm is gone: mount it again
        from tomato.engine.namespaces import mount_shm

        mount_shm(records.path(c.id), opts.shm_size)
    if opts.pid_mode.startswith("container:") or opts.ipc_mode.startswith("container:"):
        from tomato.engine.namespaces import refresh_joins

        refresh_joins(cfg, c, records.bundle(c.id))  # the joined inits as they are now
    _wait_monitor_gone(c)  # the last run's monitor may still be cleaning up after it
    runtime_ops.delete(cfg, c.id)  # a leftover from a crashed monitor would block the id
    monitor_config.write(records.path(c.id), MonitorConfig(
        bundle=str(records.bundle(c.id)), runtime_root=str(runtime_ops.runtime_root(cfg)),
        primed=cfg.supervision.primed, tty=opts.tty, stdin=opts.interactive,
        restart=opts.restart, restart_max=opts.restart_max, auto_remove=opts.auto_remove,
        attach_wait=attach_wait, log_max_size=opts.log_max_size,
        log_max_file=opts.log_max_file,
        log_path="/dev/null" if opts.log_driver == "none" else "",
        event_attributes=events.container_attributes(c.name, c.image, opts.labels),
        healthcheck=c.options.get("healthcheck"),
        health_command=health.probe_command(c.options.get("healthcheck"),
                                            c.options.get("shell")) or []))
    records.set_state(c.id, StateChange(stop_requested=False, error=""))
    forget_exit(records.path(c.id))
    log = records.path(c.id) / "monitor.log"
    from tomato.engine.monitor import run_as_monitor

    if handoff is not None:
        _become_monitor(cfg, c, handoff)
    report = cfg.supervision.spawn_monitor(cfg.root, c.id, log, run_as_monitor, cfg.explain)
    if "pid" not in report:
        detail = report.get("error") or _tail(log)
        raise TomatoError(f"failed to start container {c.short_id}: {detail}")
    c = records.get(c.id)
    events.container(cfg.root, c, "start")
    return c


def _become_monitor(cfg: EngineConfig, c: Container,
                    handoff: Callable[[int, str], None]) -> NoReturn:
    """This process turns into the container's monitor (see ``start``'s handoff)."""
    records = Containers(cfg.root)
    log = records.path(c.id) / "monitor.log"

    def reported(msg: dict[str, Any]) -> None:
        if "pid" in msg:
            started = records.get(c.id)
            events.container(cfg.root, started, "start")
            handoff(0, started.id)
        else:
            detail = msg.get("error") or _tail(log)
            handoff(125, f"failed to start container {c.short_id}: {detail}")

    from tomato.engine.monitor import run_as_monitor

    cfg.supervision.become_monitor(cfg.root, c.id, log, run_as_monitor, reported)


def _wait_monitor_gone(c: Container, timeout: float = 15.0) -> None:
    """A container that just exited still has its monitor recording that and
    deleting the runtime's state; starting it again must not race that."""
    from tomato.runtime.statedir import alive

    deadline = time.monotonic() + timeout
    while alive(c.state.monitor_pid, c.state.monitor_start) and time.monotonic() < deadline:
        time.sleep(0.005)


def _tail(path: os.PathLike[str]) -> str:
    try:
        with open(path) as f:
            lines = f.read().strip().splitlines()
    except OSError:
        return "the monitor exited"
    return lines[-1] if lines else "the monitor exited"
