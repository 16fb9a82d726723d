"""`tomato network ...` and `tomato port`: Docker's commands, output and exit codes."""

from __future__ import annotations

import argparse
import sys

from tomato.errors import InvalidArgument, NotFound, TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.cli.common import Command, Handler
    from tomato.engine.config import EngineConfig
    from tomato.engine.containers import Container
    from tomato.engine.networks import Networks


def _guard(func: Handler) -> Command:
    def run(args: argparse.Namespace, cfg: EngineConfig) -> int:
        try:
            return int(func(args, cfg) or 0)
        except TomatoError as err:
            if getattr(args, "debug", False):
                raise
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            print(f"tomato: {msg}", file=sys.stderr)
            return 1
    return run


def _store(cfg: EngineConfig) -> Networks:
    from tomato.engine.networks import Networks, sweep

    sweep(cfg.root)
    return Networks(cfg.root)


def _labels(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label: {item!r}")
        out[key] = value
    return out


@_guard
def cmd_create(args: argparse.Namespace, cfg: EngineConfig) -> int:
    subnet, subnet6, gateway, gateway6 = _by_family(args.subnet, args.gateway)
    n = _store(cfg).create(args.name, subnet, gateway, args.internal, _labels(args.label),
                           args.driver, ipv6=args.ipv6, subnet6=subnet6, gateway6=gateway6)
    print(n.id)
    return 0


def _by_family(subnets: list[str], gateways: list[str]) -> tuple[str, str, str, str]:
    """--subnet/--gateway, once per address family (an IPv4 and an IPv6 one)."""
    out = {"4": "", "6": "", "g4": "", "g6": ""}
    for value, kind in [*((s, "") for s in subnets), *((g, "g") for g in gateways)]:
        key = kind + ("6" if ":" in value else "4")
        if out[key]:
            what = "--gateway" if kind else "--subnet"
            raise InvalidArgument(f"only one {what} for each address family is supported")
        out[key] = value
    return out["4"], out["6"], out["g4"], out["g6"]


@_guard
def cmd_ls(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli.render import show
    from tomato.engine.listfilters import network_matches, parse
    from tomato.engine.networks import network_json, pseudo_network, sweep

    filters = parse(args.filter)
    sweep(cfg.root)
    store = _store(cfg)
    docs = [network_json(store, n) for n in store.all()]
    docs += [pseudo_network(cfg.root, name) for name in ("host", "none")]
    docs = sorted((d for d in docs if network_matches(d, filters)), key=lambda d: d["Name"])
    def short(network_id: str) -> str:
        return network_id if args.no_trunc else network_id[:12]

    if args.quiet:
        for d in docs:
            print(short(d["Id"]))
        return 0
    rows = [{"ID": short(d["Id"]), "Name": d["Name"], "Driver": d["Driver"],
             "Scope": d.get("Scope", "local"), "IPv4": "true",
             "IPv6": "true" if d.get("EnableIPv6") else "false",
             "Internal": "true" if d.get("Internal") else "false",
             "Labels": ",".join(f"{k}={v}" for k, v in (d.get("Labels") or {}).items()),
             "CreatedAt": _created_at(d.get("Created", ""))} for d in docs]
    return show(args.format, rows, NETWORK_HEADERS,
                "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
                "*formatter.networkContext")


#: docker/cli's network context
NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
                   "CreatedAt": "CREATED AT"}


def _created_at(text: str) -> str:
    """An RFC 3339 time as Go's time.String() prints it (docker's CreatedAt): UTC, the
    fraction of a second as given, without trailing zeros."""
    import re

    from tomato.cli.render import created_ts, go_time

    ts = created_ts(text) if text and not text.startswith("0001-") else None
    if ts is None:
        return "0001-01-01 00:00:00 +0000 UTC"
    frac = re.search(r"\.(\d+)", text)
    digits = frac.group(1)[:9].rstrip("0") if frac else ""
    return go_time(ts).replace(" +0000", (f".{digits}" if digits else "") + " +0000")


@_guard
def cmd_inspect(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine.networks import network_json, pseudo_network

    store = _store(cfg)
    out, failed = [], 0
    for ref in args.networks:
        if ref in ("host", "none"):
            out.append(pseudo_network(cfg.root, ref))
            continue
        try:
            out.append(network_json(store, store.get(ref)))
        except NotFound as err:
            print(f"tomato: {err}", file=sys.stderr)
            failed = 1
    from tomato.cli.render import inspect_each

    return inspect_each(args.format, out) or failed


@_guard
def cmd_rm(args: argparse.Namespace, cfg: EngineConfig) -> int:
    store = _store(cfg)
    failed = 0
    for ref in args.networks:
        try:
            store.remove(ref)
            print(ref)
        except TomatoError as err:
            print(f"tomato: {err}", file=sys.stderr)
            failed = 1
    return failed


@_guard
def cmd_prune(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine.listfilters import parse, prune_matches

    filters = parse(args.filter)
    prune_matches(0, {}, filters)  # a bad filter before anything goes
    removed = _store(cfg).prune(filters)
    if removed:
        print("Deleted Networks:")
        for name in removed:
            print(name)
    return 0


def _networked(cfg: EngineConfig, ref: str) -> Container:
    from tomato.engine import service

    return service.get(cfg, ref)


@_guard
def cmd_connect(args: argparse.Namespace, cfg: EngineConfig) -> int:
    c = _networked(cfg, args.container)
    ip6 = ""
    if args.ip6:
        from tomato.network.ipam import parse_ip6

        ip6 = str(parse_ip6(args.ip6))
    _store(cfg).connect(c.id, args.network, ip=args.ip, aliases=list(args.alias), ip6=ip6)
    return 0


@_guard
def cmd_disconnect(args: argparse.Namespace, cfg: EngineConfig) -> int:
    c = _networked(cfg, args.container)
    _store(cfg).disconnect(c.id, args.network)
    return 0


@_guard
def cmd_port(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import service
    from tomato.engine.networks import Networks, is_networked
    from tomato.network.ports import where

    c = service.get(cfg, args.container)
    ports = Networks(cfg.root).ports(c.id) if is_networked(c.options.get("network", "")) \
        else []
    want = args.private_port
    if want:
        number, _, proto = want.partition("/")
        proto = proto or "tcp"
        ports = [p for p in ports if str(p["container_port"]) == number and p["proto"] == proto]
        if not ports:
            raise NotFound(f"No public port '{number}/{proto}' published for {args.container}")
        for p in ports:
            print(where(p["host_ip"], p["host_port"]))
        return 0
    for p in ports:
        print(f"{p['container_port']}/{p['proto']} -> {where(p['host_ip'], p['host_port'])}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    def add(parent: Any, name: str, func: Any, help_text: str,
            aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, parents=[common],
                                                       aliases=list(aliases))
        p.set_defaults(func=func)
        return p

    p = add(sub, "port", cmd_port, "list a container's published ports")
    p.add_argument("container")
    p.add_argument("private_port", nargs="?")
    network = sub.add_parser("network", help="manage networks", parents=[common])
    nsub = network.add_subparsers(dest="network_command", metavar="COMMAND", required=True)
    p = add(nsub, "create", cmd_create, "create a network")
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("--subnet", action="append", default=[])
    p.add_argument("--gateway", action="append", default=[])
    p.add_argument("--internal", action="store_true")
    p.add_argument("--ipv6", action="store_true", help="enable IPv6 (dual-stack)")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("name")
    p = add(nsub, "ls", cmd_ls, "list networks", aliases=("list",))
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    p = add(nsub, "inspect", cmd_inspect, "show networks' details")
    p.add_argument("-f", "--format")
    p.add_argument("networks", nargs="+")
    p = add(nsub, "rm", cmd_rm, "remove networks", aliases=("remove",))
    p.add_argument("networks", nargs="+")
    p = add(nsub, "prune", cmd_prune, "remove unused networks")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    p = add(nsub, "connect", cmd_connect, "connect a container to a network")
    p.add_argument("--ip", default="")
    p.add_argument("--ip6", default="")
    p.add_argument("--alias", action="append", default=[])
    p.add_argument("network")
    p.add_argument("container")
    p = add(nsub, "disconnect", cmd_disconnect, "disconnect a container from a network")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("network")
    p.add_argument("container")
