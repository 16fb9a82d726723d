"""``tomato serve``: the Docker Engine API (see tomato.api.server).

The API's own command: `tomato`'s entry point (cli/engine.py) registers it by
name from cli/commands.py, so neither edge imports the other.

A unix socket (0660, group ``--group`` or ``tomato`` if it exists), or a
loopback TCP port with mutual TLS as dockerd's flags (``--tlsverify
--tlscacert --tlscert --tlskey``); TCP without client verification is refused
unless ``--insecure-tcp`` (every local user could connect, and the API is root).

An ordinary user's `tomato serve` is the rootless engine's API (engine/rootless.py):
its socket is ``$XDG_RUNTIME_DIR/tomato/docker.sock`` by default, 0600 and the user's
alone (no group: another user's docker CLI must not drive this user's containers).
"""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig

DEFAULT_HOST = "unix:///run/tomato/docker.sock"


def cmd_serve(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.api.server import serve
    from tomato.api.tls import TransportOptions
    from tomato.errors import TomatoError

    host = args.host or default_host()
    transport = TransportOptions(tls=args.tls, tlsverify=args.tlsverify,
                                 tlscacert=args.tlscacert or "", tlscert=args.tlscert or "",
                                 tlskey=args.tlskey or "", insecure_tcp=args.insecure_tcp)
    try:
        serve(cfg, host, args.group, transport)
    except TomatoError as err:
        print(f"tomato: {err}", file=sys.stderr)
        return 1
    return 0


def default_host() -> str:
    """root's /run/tomato/docker.sock; a user's $XDG_RUNTIME_DIR/tomato/docker.sock."""
    from tomato._sys import userns

    if not userns.rootless():
        return DEFAULT_HOST
    from tomato.engine.rootless import run_dir

    return "unix://" + run_dir() + "/docker.sock"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", help="serve the Docker Engine API (docker CLI, docker-py, "
                       "compose)", parents=[common])
    p.add_argument("-H", "--host", default=None,
                   help=f"unix:///path (default {DEFAULT_HOST}; a user's: "
                   "unix://$XDG_RUNTIME_DIR/tomato/docker.sock) or tcp://127.0.0.1:PORT "
                   "(loopback only; with --tlsverify)")
    p.add_argument("--group", default=None,
                   help="group that may use the unix socket (mode 0660; default: "
                   "'tomato' if that group exists, else root's)")
    p.add_argument("--tls", action="store_true",
                   help="serve tcp:// over TLS (implied by --tlsverify)")
    p.add_argument("--tlsverify", action="store_true",
                   help="serve tcp:// over TLS and accept only clients with a certificate "
                   "signed by --tlscacert")
    p.add_argument("--tlscacert", metavar="FILE",
                   help="trust client certificates signed by this CA "
                   "(default $DOCKER_CERT_PATH/ca.pem or ~/.docker/ca.pem)")
    p.add_argument("--tlscert", metavar="FILE",
                   help="the server's TLS certificate (default .../cert.pem)")
    p.add_argument("--tlskey", metavar="FILE", help="its key (default .../key.pem)")
    p.add_argument("--insecure-tcp", action="store_true",
                   help="serve tcp:// without TLS client verification: every local user "
                   "gets root on this host (warned about loudly)")
    p.add_argument("--userns-remap", dest="serve_userns_remap", default=None,
                   metavar="default|USER[:GROUP]",
                   help="dockerd's: every container in a user namespace mapped to USER's "
                   "/etc/subuid,/etc/subgid ranges (env TOMATO_USERNS_REMAP)")
    p.set_defaults(func=cmd_serve)
