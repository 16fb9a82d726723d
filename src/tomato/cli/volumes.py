"""`tomato volume create|ls|inspect|rm|prune`."""

from __future__ import annotations

import argparse

from tomato.cli.common import each as _each
from tomato.cli.common import fail as _fail
from tomato.cli.common import guard as _guard
from tomato.errors import NotFound

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:

    from tomato.engine.config import EngineConfig


@_guard
def cmd_volume_create(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import volumes
    from tomato.engine.containers import new_id
    from tomato.engine.options import parse_key_values

    vol = volumes.ensure(cfg.root, args.name or new_id(), parse_key_values(args.label, "label"))
    print(vol.name)
    return 0


@_guard
def cmd_volume_ls(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli.render import show
    from tomato.engine import volumes
    from tomato.engine.listfilters import parse, volume_matches

    filters = parse(args.filter)
    vols = [v for v in volumes.list_volumes(cfg.root)
            if volume_matches(v, filters, lambda name: bool(volumes.users(cfg.root, name)))]
    if args.quiet:
        for v in vols:
            print(v.name)
        return 0
    rows = [{"Name": v.name, "Driver": "local", "Scope": "local",
             "Mountpoint": str(v.mountpoint),
             "Labels": ",".join(f"{k}={val}" for k, val in v.labels.items()),
             "Links": "N/A", "Size": "N/A", "Group": "N/A", "Availability": "N/A",
             "Status": "N/A"} for v in vols]
    return show(args.format, rows, VOLUME_HEADERS, "table {{.Driver}}\t{{.Name}}",
                "*formatter.volumeContext")


#: docker/cli's volume context
VOLUME_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                  "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS",
                  "Size": "SIZE", "Group": "GROUP", "Availability": "AVAILABILITY",
                  "Status": "STATUS"}


@_guard
def cmd_volume_inspect(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import volumes

    out = []
    failed = 0
    for name in args.names:
        try:
            out.append(volumes.get(cfg.root, name).to_docker())
        except NotFound as err:
            _fail(err, 1)
            failed = 1
    from tomato.cli.render import inspect_each

    return inspect_each(args.format, out) or failed


def cmd_volume_rm(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import volumes

    return _each(args.names, lambda n: volumes.remove(cfg.root, n, args.force))


@_guard
def cmd_volume_prune(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import volumes
    from tomato.engine.listfilters import parse

    removed = volumes.prune(cfg.root, parse(args.filter))
    if removed:
        print("Deleted Volumes:")
        for name in removed:
            print(name)
        print()
    print("Total reclaimed space: 0B")
    return 0
