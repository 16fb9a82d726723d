"""`tomato daemon` (the engine's supervisor) and `tomato system check` (its sweep,
shown): see tomato.engine.supervise and tomato.engine.leftovers."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

LOCK_NAME = "supervisor.lock"


def _say(text: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} tomato daemon: {text}\n")
    sys.stderr.flush()


def cmd_daemon(args: argparse.Namespace, cfg: Any) -> int:
    """Supervise this root until SIGTERM/SIGINT: restart policies at start, then dead
    monitors every --interval seconds.  One per root (an flock); a second one says so."""
    import fcntl

    from tomato._sys import libc
    from tomato.engine import supervise
    from tomato.engine.store import Store

    Store(cfg.root)  # the root, made and migrated
    lock = os.open(cfg.root / "locks" / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                   0o600)
    try:
        # A POSIX lock, not an flock: the monitors we fork must not inherit it (an
        # flock would stay held by them after we are gone).
        fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"tomato: a supervisor is already running for {cfg.root}", file=sys.stderr)
        return 1
    os.ftruncate(lock, 0)
    os.write(lock, f"{os.getpid()}\n".encode())
    libc.set_comm("tomato-daemon")
    # The monitors we start are our children; a container whose monitor dies is
    # reparented to us; the kernel reaps both for us (SIGCHLD ignored).
    libc.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    _say(f"supervising {cfg.root}")
    started = supervise.boot(cfg, _say)
    _say(f"started {len(started)} container(s) by their restart policies")
    supervise.watch(cfg, _say, lambda: bool(stop), interval=args.interval)
    _say("stopped (containers keep running)")
    return 0


def cmd_system_check(args: argparse.Namespace, cfg: Any) -> int:
    """What killed tomato processes left (podman's `system check`): shown, and removed
    with --repair."""
    from tomato.engine import leftovers

    found = leftovers.find(cfg)
    for cid in found:
        what = ", ".join(leftovers.describe(cfg, cid)) or "a claim"
        print(f"{cid[:12]}: left by an interrupted create: {what}")
        if args.repair:
            leftovers.remove(cfg, cid)
            print(f"{cid[:12]}: removed")
    if not found:
        print("No errors found")
    return 1 if found and not args.repair else 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("daemon", parents=[common],
                       help="supervise the engine: restart policies at boot, dead monitors")
    p.add_argument("--interval", type=float, default=2.0,
                   help="seconds between looks at the running containers (default 2)")
    p.set_defaults(func=cmd_daemon)


def register_system_check(system_sub: Any, common: argparse.ArgumentParser) -> None:
    p = system_sub.add_parser("check", parents=[common],
                              help="find what interrupted commands left behind")
    p.add_argument("-r", "--repair", action="store_true", help="remove what is found")
    p.set_defaults(func=cmd_system_check)
