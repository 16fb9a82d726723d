"""`tomato system df [-v] [--format]`: docker's four rows (Images, Containers, Local
Volumes, Build Cache) and Tomato's fifth, the Pull Cache (what interrupted pulls left);
with -v each image, container, volume and cache entry, as docker's sections print."""

from __future__ import annotations

import argparse
import sys
import time

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig

HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
           "Reclaimable": "RECLAIMABLE"}
DEFAULT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"


def _row(kind: str, total: int, active: int, size: int, reclaimable: int) -> dict[str, str]:
    from tomato.cli.render import human_size

    pct = f" ({reclaimable * 100 // size}%)" if size else ""
    return {"Type": kind, "TotalCount": str(total), "Active": str(active),
            "Size": human_size(size, 4), "Reclaimable": human_size(reclaimable, 4) + pct}


def _volumes(cfg: EngineConfig) -> list[dict[str, Any]]:
    from tomato._sys.fdtree import disk_usage
    from tomato.engine import volumes

    out = []
    for v in volumes.list_volumes(cfg.root):
        out.append({"volume": v, "links": len(volumes.users(cfg.root, v.name)),
                    "size": disk_usage(v.mountpoint)})
    return out


def cmd_df(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import buildcache, images, service
    from tomato.engine.layersize import sizes
    from tomato.engine.status import LIVE

    containers = service.list_containers(cfg, all_states=True)
    written = {c.id: sizes(cfg, c)[0] for c in containers}
    vols = _volumes(cfg)
    image_row, pull_cache = images.disk_usage(cfg)
    cache = buildcache.usage(cfg)
    if args.verbose:
        return _verbose(args, cfg, containers, written, vols)
    running = [c for c in containers if c.state.status in LIVE]
    rows = [_row("Images", image_row.total, image_row.active, image_row.size,
                 image_row.reclaimable),
            _row("Containers", len(containers), len(running), sum(written.values()),
                 sum(n for cid, n in written.items()
                     if cid not in {c.id for c in running})),
            _row("Local Volumes", len(vols), sum(v["links"] > 0 for v in vols),
                 sum(v["size"] for v in vols), sum(v["size"] for v in vols if not v["links"])),
            _row("Build Cache", cache.total, cache.active, cache.size, cache.reclaimable),
            _row(pull_cache.type, pull_cache.total, pull_cache.active, pull_cache.size,
                 pull_cache.reclaimable)]
    from tomato.cli.render import show

    return show(args.format, rows, HEADERS, DEFAULT, "*formatter.diskUsageContext")


def _verbose(args: argparse.Namespace, cfg: EngineConfig, containers: list[Any],
             written: dict[str, int], vols: list[dict[str, Any]]) -> int:
    """docker system df -v: a section a kind (or, with --format json, one document)."""
    from tomato.cli import listing
    from tomato.cli.govalues import go_json
    from tomato.cli.images import IMAGE_HEADERS, _image_rows
    from tomato.cli.render import format_rows, human_size
    from tomato.cli.volumes import VOLUME_HEADERS
    from tomato.engine import buildcache, images

    image_rows = _image_rows(images.list_images(cfg), False)
    for r in image_rows:
        r["Containers"] = str(sum(c.image_id == r["ID"] for c in containers))
    container_rows = []
    for c in containers:
        row = listing.row(cfg, c, True, False, True)
        row["Size"] = human_size(written[c.id])
        container_rows.append(row)
    volume_rows = [{"Name": v["volume"].name, "Driver": "local", "Scope": "local",
                    "Mountpoint": str(v["volume"].mountpoint), "Labels": "",
                    "Links": str(v["links"]), "Size": human_size(v["size"], 4),
                    "Group": "N/A", "Availability": "N/A", "Status": "N/A"} for v in vols]
    cache = buildcache.records(cfg)
    cache_rows = [{"ID": r.id, "CacheType": "regular", "Size": human_size(r.size, 4),
                   "CreatedSince": _ago(r.created), "LastUsedSince": _ago(r.created),
                   "UsageCount": "1", "Shared": "true" if r.shared else "false",
                   "Description": r.step, "InUse": "true" if r.in_use else "false"}
                  for r in cache]
    if args.format and args.format.strip() == "json":
        doc = {"Images": [{**r, "Digest": "" if r["Digest"] == "<none>" else r["Digest"]}
                          for r in image_rows],
               "Containers": container_rows, "Volumes": volume_rows, "BuildCache": cache_rows}
        print(go_json(doc))
        return 0
    if args.format:
        print("tomato: --format with -v: only json is supported (as docker)", file=sys.stderr)
        return 1
    short = [{**r, "ID": r["ID"].removeprefix("sha256:")[:12]} for r in image_rows]
    out = ["Images space usage:\n\n",
           format_rows("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t"
                       "{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
                       short, {**IMAGE_HEADERS, "Size": "SIZE"}),
           "\nContainers space usage:\n\n",
           format_rows("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t"
                       "{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
                       container_rows, listing.HEADERS),
           "\nLocal Volumes space usage:\n\n",
           format_rows("table {{.Name}}\t{{.Links}}\t{{.Size}}", volume_rows, VOLUME_HEADERS),
           f"\nBuild cache usage: {human_size(sum(r.size for r in cache), 4)}\n\n",
           format_rows("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t"
                       "{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}", cache_rows,
                       {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE",
                        "CreatedSince": "CREATED", "LastUsedSince": "LAST USED",
                        "UsageCount": "USAGE", "Shared": "SHARED"})]
    sys.stdout.write("".join(out))
    return 0


def _ago(stamp: float) -> str:
    from tomato.engine.humanize import human_duration

    return human_duration(time.time() - stamp) + " ago"
