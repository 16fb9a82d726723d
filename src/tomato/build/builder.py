"""`tomato build` and `POST /build`: one use case, from a context to a tagged image.

    ctx = the context (context.py): a directory, an archive, stdin
    Dockerfile parsed (dockerfile.py, instructions.py), stages planned (stages.py)
    every needed stage built (executor.py), step by step, through the cache
    the image tagged -- only now, once everything succeeded: a failed or
    interrupted build tags nothing (the steps it finished stay as cache)

Nothing is printed here: events go to a ``progress.Reporter``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import BinaryIO

from tomato.build.context import make_scratch, open_context
from tomato.build.dockerfile import parse
from tomato.build.executor import Executor, Options, StepFailed
from tomato.build.progress import Reporter
from tomato.build.stages import plan
from tomato.engine.config import EngineConfig
from tomato.errors import InvalidArgument

NETWORKS = ("bridge", "none", "host", "default")


@dataclass
class BuildRequest:
    context: str  # a directory, an archive file, or "-" (``stdin``)
    dockerfile: str = ""  # -f: a path (from the caller's cwd), or inside an archive
    dockerfile_text: bytes | None = None  # -f -: the Dockerfile itself
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network: str = "bridge"
    explain: bool = False
    iidfile: str = ""
    dockerfile_in_context: bool = False  # the API's ``dockerfile``: a path in the context


@dataclass
class BuildResult:
    image_id: str
    tags: list[str]


def check_request(req: BuildRequest) -> list[str]:
    """Refuse what Docker refuses before it reads the context; the tags, normalised."""
    from tomato.images.reference import parse as parse_ref

    tags = []
    for tag in req.tags:
        try:
            ref = parse_ref(tag)
        except InvalidArgument:
            raise InvalidArgument(f'invalid argument "{tag}" for "-t, --tag" flag: invalid '
                                  "reference format") from None
        if ref.digest:
            raise InvalidArgument(f"invalid tag {tag!r}: a tag cannot hold a digest")
        tags.append(ref.familiar() if ref.tag else ref.with_tag("latest").familiar())
    if req.network.startswith("container:"):
        raise InvalidArgument("--network=container:... is not supported by build")
    return tags


def build(cfg: EngineConfig, req: BuildRequest, reporter: Reporter,
          stdin: BinaryIO | None = None) -> BuildResult:
    from tomato.engine import images

    tags = check_request(req)
    dockerfile = req.dockerfile if req.dockerfile != "-" else ""
    scratch = make_scratch(cfg.root)
    try:
        with open_context(cfg.root, req.context, stdin=stdin, dockerfile=dockerfile,
                          dockerfile_text=req.dockerfile_text,
                          in_context=req.dockerfile_in_context) as ctx:
            parsed = parse(ctx.dockerfile, ctx.dockerfile_name)
            for warning in parsed.warnings:
                reporter.note(warning)
            stages = plan(parsed, req.build_args, req.target)
            unused = stages.unused_build_args()
            options = Options(build_args=dict(req.build_args), no_cache=req.no_cache,
                              pull=req.pull, labels=dict(req.labels),
                              network="bridge" if req.network in ("", "default")
                              else req.network, explain=req.explain)
            image_id = Executor(cfg, stages, ctx.tree, options, reporter, scratch.path).run()
        for tag in tags:
            images.tag(cfg, image_id, tag)
        if unused:
            reporter.note(f"One or more build-args [{' '.join(unused)}] were not consumed")
        if req.iidfile:
            _write_iidfile(req.iidfile, image_id)
        reporter.finished(image_id, tags)
        return BuildResult(image_id, tags)
    finally:
        scratch.close()


def _write_iidfile(path: str, image_id: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(image_id)
        os.replace(tmp, path)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise InvalidArgument(f"cannot write the image id to {path}: {err.strerror}") from None


__all__ = ["BuildRequest", "BuildResult", "build", "check_request", "StepFailed", "NETWORKS"]
