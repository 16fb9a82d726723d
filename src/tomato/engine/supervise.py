"""The engine's supervisor: restart policies at boot, and containers whose monitor died.

Each container has a monitor of its own (engine/monitor.py, then tomato-shim), which
applies the restart policy while it lives.  Two things no monitor can do:

- start containers again after the machine (or the engine) restarted: `always` and
  `unless-stopped` containers should come back, as Docker's daemon brings them back
  when it starts;
- notice that a monitor itself was killed: its container then has nobody to read its
  output or record its exit.  Any command's reconcile kills such a container and
  records it exited (137, as containerd does when a shim dies, see
  service._monitor_lost); the supervisor then applies the restart policy.

`tomato daemon` runs ``boot`` once, then ``watch`` until told to stop (SIGTERM); the
systemd unit in contrib/systemd/ runs it, and `tomato serve` runs the same beside
the API.  It is the subreaper of the monitors it starts, so a container whose monitor
dies is reaped by it, not left a zombie.
"""

from __future__ import annotations

import time

from tomato.engine import service
from tomato.engine.containers import EXITED, PAUSED, RESTARTING, RUNNING, Container
from tomato.engine.images import EngineConfig
from tomato.errors import TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable

_LIVE = (RUNNING, PAUSED, RESTARTING)


def should_restart(c: Container) -> bool:
    """Docker's restart manager, for an exited container nobody is supervising."""
    policy = c.options.get("restart", "no")
    if c.state.status != EXITED or not c.state.started_at:
        return False
    if policy == "always":
        return True
    if policy == "unless-stopped":
        return not c.state.stop_requested
    if policy == "on-failure":
        limit = int(c.options.get("restart_max") or 0)
        return c.state.exit_code != 0 and (limit == 0 or c.state.restart_count < limit)
    return False


def _start(cfg: EngineConfig, c: Container, say: Callable[[str], None]) -> bool:
    try:
        service.start(cfg, c.id)
    except TomatoError as err:
        say(f"cannot restart {c.name}: {err}")
        return False
    say(f"restarted {c.name} ({c.options.get('restart')})")
    return True


def boot(cfg: EngineConfig, say: Callable[[str], None]) -> list[str]:
    """At the supervisor's start: tidy what crashes left, reconcile every record, and
    start the containers their restart policies say should be running."""
    from tomato.engine import leftovers

    records = service._records(cfg)
    found = records.all()
    leftovers.sweep(cfg, {c.id for c in found})
    started = []
    for c in found:
        c = service.reconcile(cfg, c)
        if should_restart(c) and _start(cfg, c, say):
            started.append(c.id)
    return started


def check(cfg: EngineConfig, say: Callable[[str], None]) -> list[str]:
    """One look at the running containers: those whose monitor died (reconcile kills
    and records them) are started again if their policy says so."""
    restarted = []
    for c in service._records(cfg).all():
        if c.state.status not in _LIVE:
            continue
        c = service.reconcile(cfg, c)
        if c.state.status == EXITED and c.state.error == service.MONITOR_LOST:
            say(f"{c.name}: {c.state.error}")
            if should_restart(c) and _start(cfg, c, say):
                restarted.append(c.id)
    return restarted


def watch(cfg: EngineConfig, say: Callable[[str], None], stopping: Callable[[], bool],
          interval: float = 2.0) -> None:
    """``check`` every ``interval`` seconds until ``stopping()``."""
    while not stopping():
        try:
            check(cfg, say)
        except TomatoError as err:  # a full disk, a busy store: next time
            say(f"check failed: {err}")
        deadline = time.monotonic() + interval
        while not stopping() and time.monotonic() < deadline:
            time.sleep(min(0.2, interval))


__all__ = ["should_restart", "boot", "check", "watch"]
