"""Signals to a running container: kill, stop (the image's STOPSIGNAL, then
SIGKILL after a grace period), restart, pause and unpause.

Every one first tells the monitor not to restart the container (state.request_stop:
the record, or a marker file on a full disk), then signals through the runtime.
The monitor records the exit and reports "die"; `stop` waits for that record, so
"die" comes before "stop" in the events, as in Docker.
"""

from __future__ import annotations

import signal

from tomato.engine import events, runtime_ops
from tomato.engine.containers import Container
from tomato.engine.options import RunOptions
from tomato.engine.state import get, note, request_stop, wait_exit, wait_recorded
from tomato.engine.status import LIVE, PAUSED, RUNNING, StateChange
from tomato.errors import Conflict

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from tomato.engine.config import EngineConfig


def kill(cfg: EngineConfig, ref: str, sig: str | int = "KILL") -> Container:
    c = get(cfg, ref)
    if c.state.status not in LIVE:
        raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
    num = runtime_ops.signal_number(sig)
    request_stop(cfg, c)
    runtime_ops.kill(cfg, c.id, num)
    events.container(cfg.root, c, "kill", signal=str(num))
    return c


def stop(cfg: EngineConfig, ref: str, timeout: int | None = None,
         sig: str | None = None) -> Container:
    """``sig`` first (the image's STOPSIGNAL, else SIGTERM), SIGKILL after ``timeout``."""
    c = get(cfg, ref)
    if c.state.status not in LIVE:
        return c
    opts = RunOptions.from_dict(c.options)
    grace = timeout if timeout is not None else (opts.stop_timeout
                                                 if opts.stop_timeout is not None else 10)
    request_stop(cfg, c)
    sig = sig or c.spec.get("annotations", {}).get("org.opencontainers.image.stopSignal",
                                                   "SIGTERM")
    number = runtime_ops.signal_number(sig)
    runtime_ops.kill(cfg, c.id, number)
    if c.state.status == PAUSED:  # the signal waits in the frozen cgroup: thaw it
        unpause(cfg, c.id)
    events.container(cfg.root, c, "kill", signal=str(number))
    c = wait_exit(cfg, c.id, grace)
    if c.state.status in LIVE:
        runtime_ops.kill(cfg, c.id, signal.SIGKILL)
        events.container(cfg.root, c, "kill", signal=str(int(signal.SIGKILL)))
        c = wait_exit(cfg, c.id, 30)
    wait_recorded(cfg, c.id)
    events.container(cfg.root, c, "stop")
    return c


def restart(cfg: EngineConfig, ref: str, timeout: int | None = None,
            sig: str | None = None) -> Container:
    from tomato.engine.start import start

    c = stop(cfg, ref, timeout, sig)
    c = start(cfg, c.id)
    events.container(cfg.root, c, "restart")
    return c


def pause(cfg: EngineConfig, ref: str) -> None:
    c = get(cfg, ref)
    if c.state.status != RUNNING:
        raise Conflict(f"Container {c.id} is not running")
    runtime_ops.pause(cfg, c.id)
    note(cfg, c, StateChange(status=PAUSED))
    from tomato.engine import health
    from tomato.engine.containers import Containers

    # Docker stops the probes of a paused container, which says unhealthy (until the
    # first probe after unpause); ours skip it while it is frozen
    health.container_stopped(Containers(cfg.root).path(c.id))
    events.container(cfg.root, c, "pause")


def unpause(cfg: EngineConfig, ref: str) -> None:
    c = get(cfg, ref)
    if c.state.status != PAUSED:
        raise Conflict(f"Container {c.id} is not paused")
    runtime_ops.resume(cfg, c.id)
    note(cfg, c, StateChange(status=RUNNING))
    events.container(cfg.root, c, "unpause")
