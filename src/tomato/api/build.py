"""`POST /build` and `POST /build/prune`, Docker's classic builder over the API.

The request body is the build context, a tar (plain, gzip, bzip2 or xz).  It is
streamed to disk as it comes, into a scratch directory of the engine's own
(never held in memory; a killed server's is collected by the next build), then
the build runs in a zygote child (it forks: RUN steps are containers), which
extracts the context as hostile input and tells its progress as JSON lines; they
are relayed as Docker's stream::

    {"stream": "Step 1/3 : FROM busybox\\n"} ... {"aux": {"ID": "sha256:..."}}
    {"stream": "Successfully built 0123456789ab\\n"}   (docker-py looks for this)
    {"errorDetail": {"code": 1, "message": "..."}, "error": "..."}   (a failed step)

A client that goes away (docker build's Ctrl-C) interrupts the build: the child
gets SIGINT, removes its step container and tags nothing.  BuildKit (``/session``,
``/grpc``, ``version=2``) is answered with what makes the docker CLI use, or tell
the user to use, the classic builder (``DOCKER_BUILDKIT=0``); ``/_ping`` already
says ``Builder-Version: 1``.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
from typing import Any

from tomato.api.http import HttpError, Request
from tomato.api.zygote import Job, rebuild_error
from tomato.errors import InvalidArgument, NoSpace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.api.server import Api
    from tomato.api.zygote import Op
    from tomato.engine.config import EngineConfig

BUILDKIT_REFUSAL = ("tomato serves the classic builder only (BuildKit is not supported): "
                    "build with DOCKER_BUILDKIT=0 (docker build), or plain docker-py / "
                    "docker-compose")


def _json_map(req: Request, name: str) -> dict[str, str]:
    raw = req.arg(name, "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name}: not JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {name}: not a JSON object")
    out = {}
    for key, item in value.items():
        if item is None:
            continue  # docker: --build-arg NAME with NAME unset in the client's env
        if not isinstance(item, str):
            raise InvalidArgument(f"invalid {name}: the value of {key!r} is not a string")
        out[str(key)] = item
    return out


def _request(req: Request) -> dict[str, Any]:
    """The query as the zygote op's arguments (checked before the body is read)."""
    from tomato.build.builder import BuildRequest, check_request

    if req.arg("remote"):
        raise HttpError(501, "remote build contexts (a URL or git repository) are not "
                             "supported: send the context as a tar body")
    if req.arg("version") == "2":
        raise HttpError(501, BUILDKIT_REFUSAL)
    dockerfile = req.arg("dockerfile", "Dockerfile") or "Dockerfile"
    if dockerfile.startswith("/") or ".." in dockerfile.split("/"):
        raise InvalidArgument(f"the Dockerfile must be a path inside the context: "
                              f"{dockerfile}")
    network = req.arg("networkmode", "default") or "default"
    tags = list(req.query.get("t", []))
    args: dict[str, Any] = {"tags": tags, "dockerfile": dockerfile,
            "build_args": _json_map(req, "buildargs"), "target": req.arg("target"),
            "no_cache": req.flag("nocache"), "pull": req.flag("pull"),
            "labels": _json_map(req, "labels"), "network": network,
            "quiet": req.flag("q")}
    check_request(BuildRequest(context="", tags=tags, network=network))
    return args


def build(api: Api, req: Request) -> None:
    from tomato.build.context import compression_of, decompressed_head, is_tar, make_scratch

    args = _request(req)
    scratch = make_scratch(api.cfg.root)
    try:
        body = scratch.path / "context"
        stream = req.body_stream()
        try:
            with open(body, "wb") as out:  # streamed to disk, never whole in memory
                while block := stream.read(1 << 20):
                    out.write(block)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoSpace("no space left on device while receiving the build "
                              "context") from err
            raise
        head = decompressed_head(body)
        if not is_tar(head):
            kind = compression_of(open(body, "rb").read(8))  # noqa: SIM115
            raise InvalidArgument("the build context is not a tar archive"
                                  + (f" (a corrupt {kind} stream)" if kind else ""))
        req.start_stream()
        _relay(api, req, {**args, "context": str(body)})
    finally:
        scratch.close()


def _relay(api: Api, req: Request, args: dict[str, Any]) -> None:
    conn = api.zygote.open("build", args)
    child = 0
    reader = conn.makefile("rb")
    gone = failed = False
    try:
        while True:
            ready, _, _ = select.select([conn], [], [], 0.5)
            if not ready:
                if child and not gone and req.client_gone():  # docker build's Ctrl-C
                    os.kill(child, signal.SIGINT)
                    gone = True
                continue
            line = reader.readline()
            if not line:
                if not (gone or failed):
                    _error(req, "the build's worker process died")
                break
            msg = json.loads(line)
            if "pid" in msg:
                child = int(msg["pid"])
            elif gone:
                if "ok" in msg or "error" in msg:
                    break
            elif "stream" in msg:
                req.json_chunk({"stream": msg["stream"]})
            elif "failed" in msg:
                _error(req, msg["failed"]["message"], msg["failed"].get("code"))
                failed = True
            elif "ok" in msg:
                result = msg["ok"]
                req.json_chunk({"aux": {"ID": result["id"]}})
                for text in result["lines"]:
                    req.json_chunk({"stream": text})
                break
            elif "error" in msg:
                if not failed:
                    _error(req, str(rebuild_error(msg["error"])))
                break
    finally:
        reader.close()
        conn.close()
    if not gone:
        req.end_stream()


def _error(req: Request, message: str, code: int | None = None) -> None:
    detail: dict[str, Any] = {"message": message}
    if code is not None:
        detail["code"] = code
    req.json_chunk({"errorDetail": detail, "error": message})


def build_op(cfg: EngineConfig) -> Op:
    """The zygote op: the build itself, in a fresh single-threaded child."""
    from tomato.build.progress import Classic

    class Streamed(Classic):
        def finished(self, image_id: str, names: list[str]) -> None:
            pass  # said by the server after the aux message, as dockerd orders them

    def run(args: dict[str, Any], job: Job) -> Any:
        from tomato.build.builder import BuildRequest
        from tomato.build.builder import build as build_image
        from tomato.build.executor import StepFailed
        from tomato.build.progress import Reporter

        signal.signal(signal.SIGINT, signal.default_int_handler)  # the client's Ctrl-C
        job.send(pid=os.getpid())
        quiet = bool(args.get("quiet"))
        reporter = Reporter() if quiet else Streamed(lambda text: job.send(stream=text))
        req = BuildRequest(context=args["context"], dockerfile=args["dockerfile"],
                           tags=list(args["tags"]), build_args=dict(args["build_args"]),
                           target=args.get("target") or "", no_cache=bool(args["no_cache"]),
                           pull=bool(args["pull"]), labels=dict(args["labels"]),
                           network=args["network"], dockerfile_in_context=True)
        try:
            result = build_image(cfg, req, reporter)
        except StepFailed as err:
            if err.tail and quiet:
                job.send(stream="".join(f"{line}\n" for line in err.tail))
            job.send(failed={"message": str(err), "code": err.code})
            raise
        lines: list[str] = []
        if quiet:
            lines.append(f"{result.image_id}\n")
        else:
            Classic(lines.append).finished(result.image_id, result.tags)
        return {"id": result.image_id, "lines": lines}
    return run


def prune(api: Api, req: Request) -> None:
    from tomato.engine import buildcache

    result = buildcache.prune(api.cfg)
    api.events.record("builder", "prune", "", {"reclaimed": str(result.reclaimed)})
    req.json_response({"CachesDeleted": [i.removeprefix("sha256:") for i in result.deleted],
                       "SpaceReclaimed": result.reclaimed})


def buildkit(api: Api, req: Request) -> None:
    """/session and /grpc: BuildKit's; the classic builder is what tomato serves."""
    raise HttpError(501, BUILDKIT_REFUSAL)


def ops(cfg: EngineConfig) -> dict[str, Any]:
    """The zygote ops this module adds (api/ops.py)."""
    from tomato.build import builder  # noqa: F401 — imported in the zygote, for its children

    return {"build": build_op(cfg)}


ROUTES = [
    ("POST", "/build", build),
    ("POST", "/build/prune", prune),
    ("POST", "/session", buildkit),
    ("POST", "/grpc", buildkit),
]

__all__ = ["ROUTES", "ops"]
