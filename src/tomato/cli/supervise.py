"""`tomato daemon` (the engine's supervisor) and `tomato system check` (its sweep,
shown): see tomato.engine.supervise and tomato.engine.leftovers."""

from __future__ import annotations

import argparse
import sys
import time

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig


def _say(text: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} tomato daemon: {text}\n")
    sys.stderr.flush()


def cmd_daemon(args: argparse.Namespace, cfg: EngineConfig) -> int:
    """Supervise this root until SIGTERM/SIGINT (engine/supervise.py): restart policies
    at start, then dead monitors every --interval seconds.  One per root."""
    from tomato.engine import supervise
    from tomato.engine.store import Store

    Store(cfg.root)  # the root, made and migrated
    code = supervise.run(cfg, _say, args.interval)
    if code:
        print(f"tomato: a supervisor is already running for {cfg.root}", file=sys.stderr)
    return code


def cmd_system_check(args: argparse.Namespace, cfg: EngineConfig) -> int:
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
