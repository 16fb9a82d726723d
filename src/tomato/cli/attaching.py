"""Attached to a container's monitor until it exits: `run` (without -d), `start -a`
and `attach` share this (engine/attach.py speaks the monitor's socket)."""

from __future__ import annotations

import argparse

from tomato.errors import NotFound

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from tomato.engine.config import EngineConfig
    from tomato.engine.containers import Container


def attach_and_wait(cfg: EngineConfig, c: Container, args: argparse.Namespace,
                    auto_remove: bool = False) -> int:
    """Our stdio to the container's until it exits; its exit code (125 if it is gone)."""
    from tomato.engine import attach, service
    from tomato.engine.containers import Containers

    sock = attach.connect(Containers(cfg.root).path(c.id) / "attach.sock")
    code = attach.stream(sock, stdin=args.interactive, tty=args.tty,
                         proxy_signals=args.sig_proxy != "false", until_closed=auto_remove)
    if code is None:  # the monitor died: the record (reconciled) knows the truth
        try:
            code = service.wait_exit(cfg, c.id).state.exit_code
        except NotFound:
            code = 125
    return code
