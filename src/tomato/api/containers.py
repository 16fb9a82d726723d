"""Container endpoints: create, list, inspect, lifecycle, top, changes, export,
archive (docker cp), update, rename, prune, delete.  Stats are in stats.py."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from tomato.api import execs, translate
from tomato.api.body import Fields
from tomato.api.http import HttpError, Request
from tomato.api.streams import LIVE
from tomato.engine import service
from tomato.engine.containers import Container
from tomato.errors import Conflict, InvalidArgument, TomatoError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.api.server import Api
    from tomato.engine.filesystem import PathStat


def _attrs(c: Container) -> dict[str, str]:
    return {"name": c.name, "image": c.image, **(c.options.get("labels") or {})}


def _event(api: Api, c: Container, action: str, **extra: str) -> None:
    api.events.record("container", action, c.id, {**_attrs(c), **extra})


# -- create ---------------------------------------------------------------------------
def create(api: Api, req: Request) -> None:
    body = req.json(None)
    if body is None:
        raise InvalidArgument("config cannot be empty in order to create a container")
    opts = translate.run_options(Fields(body), req.arg("name"))
    if opts.name:
        from tomato.engine.containers import validate_name

        validate_name(opts.name)
    opts.platform = req.arg("platform")  # checked against the image by the create
    opts.pull = "never"  # Docker's create never pulls: 404 "No such image"
    from tomato.engine import images as im

    im.get_image(api.cfg, opts.image)
    from tomato.engine.hostlimits import adapt

    warnings = adapt(opts)  # what this host's cgroups lack: discarded, said (moby's sysinfo)
    result = api.zygote.call("create", {"options": opts.to_dict()})
    req.json_response({"Id": result["Id"], "Warnings": warnings}, 201)


# -- list -----------------------------------------------------------------------------
def status_text(api: Api, c: Container) -> str:
    from tomato.engine.health import of_container
    from tomato.engine.humanize import status_text as text

    return text(c.state, of_container(api.cfg.root, c))


def _ports(api: Api, c: Container) -> list[dict[str, Any]]:
    from tomato.engine.networks import Networks, is_networked

    out: list[dict[str, Any]] = []
    if is_networked(c.options.get("network", "")) and c.state.status in LIVE:
        for p in Networks(api.cfg.root).ports(c.id):
            out.append({"IP": p["host_ip"] or "0.0.0.0", "PrivatePort": p["container_port"],
                        "PublicPort": p["host_port"], "Type": p["proto"]})
    return out


def summary(api: Api, c: Container) -> dict[str, Any]:
    from tomato.engine.inspect import container_json

    full = container_json(api.cfg, c)
    args = c.spec.get("process", {}).get("args", [])
    return {
        "Id": c.id, "Names": ["/" + c.name], "Image": c.image, "ImageID": c.image_id,
        "Command": " ".join(args), "Created": int(c.created), "Ports": _ports(api, c),
        "Labels": c.options.get("labels") or {}, "State": c.state.status,
        "Status": status_text(api, c),
        "HostConfig": {"NetworkMode": c.options.get("network", "bridge")},
        "NetworkSettings": {"Networks": full["NetworkSettings"]["Networks"]},
        "Mounts": full["Mounts"],
    }


def _match(api: Api, c: Container, filters: dict[str, list[str]]) -> bool:
    from tomato.engine.listfilters import container_matches

    return container_matches(api.cfg, c, filters)


def list_json(api: Api, req: Request) -> None:
    filters = req.filters()
    for ref in (*filters.get("before", []), *filters.get("since", [])):
        service.get(api.cfg, ref)  # an unknown one is a 404 even when nothing is listed
    every = req.flag("all")
    if "status" in filters or "exited" in filters:
        every = True
    found = [c for c in service.list_containers(api.cfg, all_states=every)
             if _match(api, c, filters)]
    limit = req.int_arg("limit", -1)
    if limit is not None and limit > 0:
        found = found[:limit]
    out = [summary(api, c) for c in found]
    if req.flag("size"):  # docker's SizeRw/SizeRootFs, only when asked (a layer walk each)
        from tomato.engine.layersize import sizes

        for row, c in zip(out, found, strict=True):
            row["SizeRw"], row["SizeRootFs"] = sizes(api.cfg, c)
    req.json_response(out)


def inspect(api: Api, req: Request, id: str) -> None:  # noqa: A002 — Docker's name
    from tomato.engine.inspect import container_json

    c = service.get(api.cfg, id)
    data = container_json(api.cfg, c)
    host = data["HostConfig"]
    host.setdefault("PortBindings", {
        f"{p['container_port']}/{p['proto']}": [{"HostIp": p["host_ip"],
                                                  "HostPort": str(p["host_port"] or "")}]
        for p in c.options.get("publish", [])})
    host.setdefault("ConsoleSize", [0, 0])
    host.setdefault("Mounts", None)
    data["Config"].setdefault("ExposedPorts", {p: {} for p in c.options.get("expose", [])}
                              or None)
    data["Config"].setdefault("AttachStdin", False)
    data.setdefault("ExecIDs", [k for k, v in api.execs.items() if v["ContainerID"] == c.id]
                    or None)
    if req.flag("size"):
        from tomato.engine.layersize import sizes

        data["SizeRw"], data["SizeRootFs"] = sizes(api.cfg, c)
    req.json_response(data)


# -- lifecycle ------------------------------------------------------------------------
def start(api: Api, req: Request, id: str) -> None:  # noqa: A002
    c = service.get(api.cfg, id)
    if c.state.status in LIVE:
        req.send(304)
        return
    pending = api.hubs.pending(c.id)
    try:
        api.zygote.call("start", {"id": c.id, "attach_wait": pending})
    except TomatoError as err:
        # As dockerd: the client attached and waits for "removed" (`docker run --rm`):
        # let its attach go, and remove an --rm container that could not start.
        api.hubs.failed(c.id)
        if c.options.get("auto_remove"):
            try:
                api.zygote.call("remove", {"id": c.id, "force": True, "volumes": True})
            except TomatoError as cleanup:
                _log_cleanup(c, cleanup)
        if execs.failure_code(str(err)) == 127 or "permission denied" in str(err):
            raise HttpError(400, str(err)) from err  # dockerd's: the config is wrong
        raise
    if pending:
        api.hubs.started(c.id)  # the monitor starts the process on this connection
        _until_started(api, c.id)
    req.no_content()


def _until_started(api: Api, cid: str, timeout: float = 10.0) -> None:
    """A client waiting first (docker's CLI waits even for `run -d`) makes the monitor
    start the process only once the hub has connected: answer when the record says it
    ran, or a `docker exec` right after finds the container still created."""
    from tomato.errors import NotFound

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if service.get(api.cfg, cid).state.status != "created":
                return
        except NotFound:
            return
        time.sleep(0.005)


def _log_cleanup(c: Container, err: BaseException) -> None:
    import sys

    sys.stderr.write(f"tomato serve: removing {c.short_id} after its failed start: {err}\n")


def stop(api: Api, req: Request, id: str) -> None:  # noqa: A002
    c = service.get(api.cfg, id)
    if c.state.status not in LIVE:
        req.send(304)
        return
    service.stop(api.cfg, c.id, req.int_arg("t", req.int_arg("timeout")),
                 req.arg("signal") or None)
    req.no_content()


def restart(api: Api, req: Request, id: str) -> None:  # noqa: A002
    c = service.get(api.cfg, id)
    service.stop(api.cfg, c.id, req.int_arg("t", req.int_arg("timeout")),
                 req.arg("signal") or None)
    api.zygote.call("start", {"id": c.id})
    _event(api, c, "restart")  # the engine reported the kill, stop and start
    req.no_content()


def kill(api: Api, req: Request, id: str) -> None:  # noqa: A002
    c = service.get(api.cfg, id)
    sig = req.arg("signal") or "KILL"
    service.kill(api.cfg, c.id, int(sig) if sig.isdigit() else sig)
    req.no_content()


def pause(api: Api, req: Request, id: str) -> None:  # noqa: A002
    c = service.get(api.cfg, id)
    service.pause(api.cfg, c.id)
    req.no_content()


def unpause(api: Api, req: Request, id: str) -> None:  # noqa: A002
    c = service.get(api.cfg, id)
    service.unpause(api.cfg, c.id)
    req.no_content()


def rename(api: Api, req: Request, id: str) -> None:  # noqa: A002
    new = req.arg("name")
    if not new:
        raise InvalidArgument("a new name is required")
    c = service.get(api.cfg, id)
    service.rename(api.cfg, c.id, new.lstrip("/"))
    req.no_content()


def update(api: Api, req: Request, id: str) -> None:  # noqa: A002
    from tomato.engine import options as o
    from tomato.engine import usage

    body = req.fields()
    changes: dict[str, Any] = {}
    if body.integer("NanoCpus"):
        cpus = o.parse_cpus(str(body.integer("NanoCpus") / 1e9))
        changes.setdefault("cpu", {}).update(period=100000, quota=int(cpus * 100000))
    if body.integer("CpuQuota"):
        changes.setdefault("cpu", {}).update(quota=body.integer("CpuQuota"),
                                             period=body.integer("CpuPeriod") or 100000)
    if body.integer("CpuShares"):
        changes.setdefault("cpu", {})["shares"] = body.integer("CpuShares")
    if body.text("CpusetCpus"):
        changes.setdefault("cpu", {})["cpus"] = body.text("CpusetCpus")
    if body.integer("Memory"):
        if 0 < body.integer("Memory") < translate.MIN_MEMORY:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        changes.setdefault("memory", {})["limit"] = body.integer("Memory")
    if body.integer("MemorySwap"):
        changes.setdefault("memory", {})["swap"] = body.integer("MemorySwap")
    if body.integer("PidsLimit"):
        changes["pids"] = {"limit": body.integer("PidsLimit")}
    policy = body.obj("RestartPolicy")
    if policy.text("Name"):
        changes["restart"] = o.parse_restart(policy.text("Name"))[0]
    c = service.get(api.cfg, id)
    usage.update(api.cfg, c, changes)
    req.json_response({"Warnings": []})


def delete(api: Api, req: Request, id: str) -> None:  # noqa: A002
    if req.flag("link"):
        raise InvalidArgument("links are not supported")
    c = service.get(api.cfg, id)
    if c.state.status in LIVE and not req.flag("force"):
        raise Conflict(f"You cannot remove a running container {c.id}. Stop the container "
                       "before attempting removal or force remove")
    api.zygote.call("remove", {"id": c.id, "force": req.flag("force"),
                               "volumes": req.flag("v")})
    req.no_content()


def prune(api: Api, req: Request) -> None:
    from tomato.engine.listfilters import prune_matches

    filters = req.filters()
    prune_matches(0, {}, filters)  # a bad filter is a 400 before anything goes
    done = api.zygote.call("prune", {"filters": filters})
    req.json_response({"ContainersDeleted": done["ids"] or None,
                       "SpaceReclaimed": done["reclaimed"]})


# -- inside ---------------------------------------------------------------------------
def top(api: Api, req: Request, id: str) -> None:  # noqa: A002
    from tomato.engine import usage

    c = service.get(api.cfg, id)
    ps_args = req.arg("ps_args").split() or ["-ef"]
    rows = usage.top(api.cfg, c, ps_args)
    req.json_response({"Titles": rows[0], "Processes": rows[1:]})


def changes(api: Api, req: Request, id: str) -> None:  # noqa: A002
    from tomato.engine import filesystem

    c = service.get(api.cfg, id)
    kinds = {"C": 0, "A": 1, "D": 2}
    req.json_response([{"Path": path, "Kind": kinds.get(kind, 0)}
                       for kind, path in filesystem.diff(api.cfg, c)] or None)


class ChunkWriter:
    """A file-like that sends what tarfile writes as HTTP chunks."""

    def __init__(self, req: Request) -> None:
        self.req = req
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= 65536:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            self.req.chunk(bytes(self.buf))
            self.buf.clear()


def export(api: Api, req: Request, id: str) -> None:  # noqa: A002
    from tomato.engine import filesystem

    c = service.get(api.cfg, id)
    req.start_stream("application/x-tar")
    out = ChunkWriter(req)
    filesystem.export(api.cfg, c, out)  # type: ignore[arg-type]
    out.flush()
    req.end_stream()
    _event(api, c, "export")


def _path_stat(st: PathStat) -> str:
    """Docker's base64 X-Docker-Container-Path-Stat header from a filesystem.PathStat."""
    info = {"name": st.name, "size": st.size, "mode": st.mode,
            "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.mtime)),
            "linkTarget": st.link_target}
    return base64.b64encode(json.dumps(info).encode()).decode()


def archive_head(api: Api, req: Request, id: str) -> None:  # noqa: A002
    from tomato.engine import filesystem

    c = service.get(api.cfg, id)
    header = _path_stat(filesystem.stat_path(api.cfg, c, req.arg("path")))
    req.send(200, b"", "application/x-tar", {"X-Docker-Container-Path-Stat": header})


def archive_get(api: Api, req: Request, id: str) -> None:  # noqa: A002
    from tomato.engine import filesystem

    c = service.get(api.cfg, id)
    # one resolution (inside the container's root) for the header and the stream: the
    # container may move the path away in between
    with filesystem.path_archive(api.cfg, c, req.arg("path")) as (st, write):
        req.start_stream("application/x-tar", {"X-Docker-Container-Path-Stat": _path_stat(st)})
        out = ChunkWriter(req)
        write(out)  # type: ignore[arg-type]
        out.flush()
        req.end_stream()


def archive_put(api: Api, req: Request, id: str) -> None:  # noqa: A002
    from tomato.engine import filesystem

    c = service.get(api.cfg, id)
    filesystem.extract_archive(api.cfg, c, req.arg("path"), req.body_stream(),
                               keep_owner=req.flag("copyUIDGID"),
                               no_overwrite_dir_nondir=req.flag("noOverwriteDirNonDir"))
    req.send(200, b"", "text/plain")


ROUTES = [
    ("POST", "/containers/create", create),
    ("GET", "/containers/json", list_json),
    ("POST", "/containers/prune", prune),
    ("GET", "/containers/{id}/json", inspect),
    ("POST", "/containers/{id}/start", start),
    ("POST", "/containers/{id}/stop", stop),
    ("POST", "/containers/{id}/restart", restart),
    ("POST", "/containers/{id}/kill", kill),
    ("POST", "/containers/{id}/pause", pause),
    ("POST", "/containers/{id}/unpause", unpause),
    ("POST", "/containers/{id}/rename", rename),
    ("POST", "/containers/{id}/update", update),
    ("DELETE", "/containers/{id}", delete),
    ("GET", "/containers/{id}/top", top),
    ("GET", "/containers/{id}/changes", changes),
    ("GET", "/containers/{id}/export", export),
    ("HEAD", "/containers/{id}/archive", archive_head),
    ("GET", "/containers/{id}/archive", archive_get),
    ("PUT", "/containers/{id}/archive", archive_put),
]
