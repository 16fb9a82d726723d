"""``tomato serve``: the Docker Engine API (see tomato.api.server)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_HOST = "unix:///run/tomato/docker.sock"


def cmd_serve(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.api.server import serve
    from tomato.errors import TomatoError

    try:
        serve(cfg, args.host, args.group)
    except TomatoError as err:
        print(f"tomato: {err}", file=sys.stderr)
        return 1
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", help="serve the Docker Engine API (docker CLI, docker-py, "
                       "compose)", parents=[common])
    p.add_argument("-H", "--host", default=DEFAULT_HOST,
                   help="unix:///path (default %(default)s) or tcp://127.0.0.1:PORT "
                   "(loopback only)")
    p.add_argument("--group", default=None,
                   help="group that may use the socket (mode 0660; default root's)")
    p.set_defaults(func=cmd_serve)
