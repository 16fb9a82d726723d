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
    from tomato.cli.run_options import check_attach, parse_detach_keys
    from tomato.engine import attach, service
    from tomato.engine.containers import Containers

    streams = check_attach(getattr(args, "attach", None) or [], False)
    outputs = frozenset(streams - {"stdin"}) if streams else frozenset(("stdout", "stderr"))
    stdin = bool(args.interactive) and (not streams or "stdin" in streams)
    keys = getattr(args, "detach_keys", "")
    detach_keys = parse_detach_keys(keys) if keys else attach.DETACH_KEYS
    sock = attach.connect(Containers(cfg.root).path(c.id) / "attach.sock")
    code = attach.stream(sock, stdin=stdin, tty=args.tty,
                         proxy_signals=args.sig_proxy != "false", until_closed=auto_remove,
                         outputs=outputs, detach_keys=detach_keys)
    if code == attach.DETACHED:  # ctrl-p ctrl-q: we leave, the container runs on
        args.detached = True
        return 0
    if code is None:  # the monitor died: the record (reconciled) knows the truth
        try:
            code = service.wait_exit(cfg, c.id).state.exit_code
        except NotFound:
            code = 125
    return code
