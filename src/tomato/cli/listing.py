"""`tomato ps` / `container ls`: docker's ContainerContext (the fields a ``--format``
may name, their column headers, the default columns), filters, and ``-s`` sizes."""

from __future__ import annotations

import argparse
import time

from tomato.cli.common import guard as _guard

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig

#: docker/cli's containerHeaderContext
HEADERS: dict[str, Any] = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
                           "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
                           "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
                           "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
                           "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM",
                           # {{.Label "com.example.some-key"}}'s column: "some key"
                           "Label": lambda name: name.split(".")[-1].replace("-", " ")
                           .replace("_", " ")}

DEFAULT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t" \
          "{{.Ports}}\t{{.Names}}"


def ellipsis(text: str, width: int) -> str:
    """docker's formatter.Ellipsis: at most ``width`` characters, the last one an …."""
    return text if len(text) <= width else text[:width - 1] + "…"


def size_text(rw: int, root_fs: int) -> str:
    """docker's ps SIZE: ``0B (virtual 4.26MB)``."""
    from tomato.cli.render import human_size

    return f"{human_size(rw)} (virtual {human_size(root_fs)})" if root_fs else human_size(rw)


def port_text(cfg: EngineConfig, c: Any) -> str:
    from tomato.engine.networks import Networks, is_networked
    from tomato.engine.status import LIVE

    if not is_networked(c.options.get("network", "")) or c.state.status not in LIVE:
        return ""
    ports = sorted(Networks(cfg.root).ports(c.id),
                   key=lambda p: (p["container_port"], p["proto"], p["host_ip"] or ""))
    from tomato.network.ports import where

    return ", ".join(f"{where(p['host_ip'], p['host_port'])}->{p['container_port']}/"
                     f"{p['proto']}" for p in ports)


def row(cfg: EngineConfig, c: Any, trunc: bool, size: bool, full: bool) -> dict[str, Any]:
    """One container as docker's ContainerContext; ``full``: Mounts, Networks and
    LocalVolumes too (they need the container's inspect document)."""
    from tomato.cli.govalues import NIL, go_quote
    from tomato.cli.render import human_size
    from tomato.engine.health import of_container
    from tomato.engine.humanize import human_duration, status_text

    cmd = " ".join(c.spec.get("process", {}).get("args", []))
    labels = c.options.get("labels") or {}
    out: dict[str, Any] = {
        "Command": go_quote(ellipsis(cmd, 20) if trunc else cmd),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(c.created)),
        "ID": c.short_id if trunc else c.id, "Image": c.image,
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "LocalVolumes": "0", "Mounts": "", "Names": c.name, "Networks": "",
        "Platform": NIL, "Ports": port_text(cfg, c),
        "RunningFor": human_duration(time.time() - c.created) + " ago",
        "Size": "0B", "State": c.state.status,
        "Status": status_text(c.state, of_container(cfg.root, c)),
        "Label": lambda name: labels.get(name, ""),  # docker's ContainerContext.Label
    }
    if size:
        from tomato.engine.layersize import sizes

        out["Size"] = size_text(*sizes(cfg, c))
    elif not full:
        out["Size"] = human_size(0)
    if full:
        from tomato.engine.inspect import container_json

        doc = container_json(cfg, c)
        mounts = doc.get("Mounts") or []
        out["Mounts"] = ",".join(ellipsis(m.get("Name") or m.get("Source", ""), 15) if trunc
                                 else (m.get("Name") or m.get("Source", "")) for m in mounts)
        out["LocalVolumes"] = str(sum(m.get("Type") == "volume" for m in mounts))
        out["Networks"] = ",".join(sorted((doc.get("NetworkSettings") or {})
                                          .get("Networks") or {}))
    return out


@_guard
def cmd_ps(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli.render import show
    from tomato.engine import service
    from tomato.engine.listfilters import container_matches, parse

    filters = parse(args.filter)
    for ref in (*filters.get("before", []), *filters.get("since", [])):
        service.get(cfg, ref)  # an unknown one is an error even when nothing is listed
    every = args.all or "status" in filters or "exited" in filters
    items = [c for c in service.list_containers(cfg, all_states=every)
             if container_matches(cfg, c, filters)]
    if args.latest:
        items = items[:1]
    if args.last is not None and args.last >= 0:
        items = items[:args.last]
    if args.quiet:
        for c in items:
            print(c.id if args.no_trunc else c.short_id)
        return 0
    fmt = args.format
    full = bool(fmt) and (fmt.strip() == "json" or any(
        word in fmt for word in ("Mounts", "Networks", "LocalVolumes")))
    size = args.size or bool(fmt and "Size" in fmt)  # (docker: json alone asks no sizes)
    default = DEFAULT + ("\t{{.Size}}" if args.size else "")
    rows = [row(cfg, c, not args.no_trunc, size, full) for c in items]
    if not rows and fmt and fmt.strip() != "json":
        # docker runs the template once on an empty context first, so a field it lacks is
        # an error even when no container is listed
        rows_ok = show(fmt, [dict.fromkeys(HEADERS, "")], HEADERS, default,
                       "*formatter.ContainerContext", dry_run=True)
        if rows_ok:
            return rows_ok
    return show(fmt, rows, HEADERS, default, "*formatter.ContainerContext")


def add_ps_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-n", "--last", type=int)
    p.add_argument("-l", "--latest", action="store_true")
    p.add_argument("-s", "--size", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
