"""System endpoints: _ping, version, info, events, system/df, auth."""

from __future__ import annotations

import time
from typing import Any

from tomato.api.http import API_VERSION, MIN_API_VERSION, SERVER_VERSION, HttpError, Request
from tomato.engine import service
from tomato.errors import PermissionDenied

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from tomato.api.server import Api


def ping(api: Api, req: Request) -> None:
    headers = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
               "Builder-Version": "1", "Swarm": "inactive"}
    if req.method == "HEAD":
        req.send(200, b"", "text/plain; charset=utf-8", headers)
        return
    req.send(200, b"OK", "text/plain; charset=utf-8", headers)


def version(api: Api, req: Request) -> None:
    from tomato.engine import sysinfo

    req.json_response(sysinfo.server_version(API_VERSION, MIN_API_VERSION, SERVER_VERSION))


def info(api: Api, req: Request) -> None:
    from tomato.engine import sysinfo

    req.json_response(sysinfo.info(api.cfg, SERVER_VERSION))


def _when(text: str) -> float | None:
    from tomato.engine.timestamps import parse

    return parse(text) if text else None


def events(api: Api, req: Request) -> None:
    from tomato.engine.events import check_filters, matches

    since, until = _when(req.arg("since")), _when(req.arg("until"))
    filters = req.filters()
    check_filters(filters)
    req.start_stream()
    for event in api.events.follow(since, until, req.client_gone):
        if event is not None and matches(event, filters):
            req.json_chunk(event)
    req.end_stream()


def df(api: Api, req: Request) -> None:
    from tomato.api import containers as cont
    from tomato.api import images as imgs
    from tomato.engine import images as im
    from tomato.engine import volumes
    from tomato.engine.layersize import sizes

    all_containers = service.list_containers(api.cfg, all_states=True)
    used = {c.image_id for c in all_containers}
    images = []
    for img in im.list_images(api.cfg):
        row = imgs.summary(img)
        row["Containers"] = sum(c.image_id == img.id for c in all_containers)
        images.append(row)
    rows = im.disk_usage(api.cfg)
    vols = []
    for v in volumes.list_volumes(api.cfg.root):
        data = v.to_docker()
        data["UsageData"] = {"Size": _du(v.mountpoint),
                             "RefCount": len(volumes.users(api.cfg.root, v.name))}
        vols.append(data)
    _ = used
    req.json_response({
        "LayersSize": rows[0].size if rows else 0, "Images": images,
        "Containers": [dict(zip(("SizeRw", "SizeRootFs"), sizes(api.cfg, c), strict=True),
                            **cont.summary(api, c)) for c in all_containers],
        "Volumes": vols, "BuildCache": _build_cache(api),
    })


def _build_cache(api: Api) -> list[dict[str, Any]]:
    """Docker's BuildCache records (what `docker system df` sums)."""
    from tomato.engine import buildcache

    return [{"ID": r.id, "Parent": "", "Type": "regular", "Description": r.step,
             "InUse": r.in_use, "Shared": r.shared, "Size": r.size,
             "CreatedAt": _rfc3339(r.created), "LastUsedAt": _rfc3339(r.created),
             "UsageCount": 1} for r in buildcache.records(api.cfg)]


def _rfc3339(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def _du(path: Path) -> int:
    """A volume's size: walked through fds (a container may swap a directory of it for a
    symlink to the host's / while we count)."""
    from tomato._sys.fdtree import disk_usage

    return disk_usage(path)


def auth(api: Api, req: Request) -> None:
    from tomato.engine import images as im

    body = req.fields()
    server = body.text("serveraddress") or "docker.io"
    try:
        im.login(api.cfg, server, body.text("username"), body.text("password"))
    except PermissionDenied as err:
        raise HttpError(401, str(err)) from err
    req.json_response({"Status": "Login Succeeded", "IdentityToken": ""})


ROUTES = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", events),
    ("GET", "/system/df", df),
    ("POST", "/auth", auth),
]
