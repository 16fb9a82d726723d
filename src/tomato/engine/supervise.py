"""The engine's supervisor: restart policies at boot, and containers whose monitor died.

Each container has a monitor of its own (engine/monitor.py, then tomato-shim), which
applies the restart policy while it lives.  Two things no monitor can do:

- start containers again after the machine (or the engine) restarted: `always` and
  `unless-stopped` containers should come back, as Docker's daemon brings them back
  when it starts;
- notice that a monitor itself was killed: its container then has nobody to read its
  output or record its exit.  Any command's reconcile kills such a container and
  records it exited (137, as containerd does when a shim dies, see
  state.monitor_lost); the supervisor then applies the restart policy.

`tomato daemon` runs ``boot`` once, then ``watch`` until told to stop (SIGTERM); the
systemd unit in contrib/systemd/ runs it, and `tomato serve` runs the same beside
the API.  It is the subreaper of the monitors it starts, so a container whose monitor
dies is reaped by it, not left a zombie.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tomato.engine import service
from tomato.engine.containers import EXITED, PAUSED, RESTARTING, RUNNING, Container, Containers
from tomato.engine.images import EngineConfig
from tomato.errors import TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable

_LIVE = (RUNNING, PAUSED, RESTARTING)
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


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

    records = Containers(cfg.root)
    found = records.all()
    leftovers.sweep(cfg, {c.id for c in found})
    started = []
    for c in found:
        c = service.reconcile(cfg, c)
        if should_restart(c) and _start(cfg, c, say):
            started.append(c.id)
    return started


def check(cfg: EngineConfig, say: Callable[[str], None],
          backoff: dict[str, tuple[int, float]] | None = None) -> list[str]:
    """One look at the containers: those whose monitor died (reconcile -- ours, or any
    command's that looked first -- kills and records them) are started again if their
    policy says so.  ``backoff``: failed restarts wait longer each time, as Docker's
    restart manager does (id -> (failures, not before))."""
    backoff = {} if backoff is None else backoff
    restarted = []
    now = time.monotonic()
    for c in Containers(cfg.root).all():
        if c.state.status in _LIVE:
            c = service.reconcile(cfg, c)
            if c.state.status == EXITED and c.state.error == service.MONITOR_LOST:
                say(f"{c.name}: {c.state.error}")
        if c.state.status != EXITED or c.state.error != service.MONITOR_LOST:
            continue
        failures, not_before = backoff.get(c.id, (0, 0.0))
        if now < not_before or not should_restart(c):
            continue
        if _start(cfg, c, say):
            backoff.pop(c.id, None)
            restarted.append(c.id)
        else:
            backoff[c.id] = (failures + 1, now + min(0.1 * 2 ** (failures + 1), 60.0))
    return restarted


def watch(cfg: EngineConfig, say: Callable[[str], None], stopping: Callable[[], bool],
          interval: float = 2.0) -> None:
    """``check`` every ``interval`` seconds until ``stopping()``."""
    backoff: dict[str, tuple[int, float]] = {}
    while not stopping():
        try:
            check(cfg, say, backoff)
        except TomatoError as err:  # a full disk, a busy store: next time
            say(f"check failed: {err}")
        deadline = time.monotonic() + interval
        while not stopping() and time.monotonic() < deadline:
            time.sleep(min(0.2, interval))


LOCK_NAME = "supervisor.lock"


def _hold_lock(root: Path) -> int | None:
    """This root's supervisor lock, or None if another supervisor holds it.  A POSIX
    lock, not an flock: the monitors a supervisor forks must not inherit it (an flock
    would stay held by them after the supervisor is gone)."""
    import fcntl

    (root / "locks").mkdir(mode=0o700, exist_ok=True)
    fd = os.open(root / "locks" / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def run(cfg: EngineConfig, say: Callable[[str], None], interval: float = 2.0) -> int:
    """Be this root's supervisor until SIGTERM/SIGINT: ``boot``, then ``watch``.  1 if
    another one already is."""
    from tomato._sys import libc

    lock = _hold_lock(cfg.root)
    if lock is None:
        return 1
    libc.set_comm("tomato-daemon")
    # The monitors we start are our children; a container whose monitor dies is
    # reparented to us; the kernel reaps both for us (SIGCHLD ignored).
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    say(f"supervising {cfg.root}")
    started = boot(cfg, say)
    say(f"started {len(started)} container(s) by their restart policies")
    watch(cfg, say, lambda: bool(stop), interval)
    say("stopped (containers keep running)")
    os.close(lock)
    return 0


def spawn(cfg: EngineConfig, log: Path, interval: float = 2.0) -> int:
    """A supervisor in a child process (`tomato serve`'s, forked before any thread);
    its pid.  Its lines go to ``log``."""
    from tomato.engine.store import forget_connections

    forget_connections()
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1  # pragma: no cover — runs in the child
    try:
        from tomato._sys import libc

        # Ours only while `serve` lives: a serve killed with -9 does not leave a
        # supervisor holding the root's lock forever.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # (gone before the line above)
            os._exit(0)
        os.setsid()
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)

        def say(text: str) -> None:
            os.write(2, f"{time.strftime('%Y-%m-%dT%H:%M:%S')} supervisor: {text}\n".encode())

        code = run(cfg, say, interval)
        if code:
            say(f"another supervisor is running for {cfg.root}: leaving it the work")
    except BaseException as err:  # noqa: BLE001 — told in the log
        try:
            os.write(2, f"supervisor: {err}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


__all__ = ["should_restart", "boot", "check", "watch", "run", "spawn", "LOCK_NAME"]
