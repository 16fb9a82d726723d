"""`tomato build` and `tomato builder prune`.

    tomato build [-t NAME:TAG]... [-f Dockerfile|-] [--build-arg K=V]... [--target STAGE]
                 [--no-cache] [--pull] [--label K=V]... [--network bridge|none|host]
                 [--iidfile F] [-q] [--progress auto|plain] [--explain] CONTEXT|-

Progress goes to stderr (BuildKit's way: a live view on a terminal, numbered lines
otherwise); ``-q`` prints only the image id, on stdout.  A failed build exits 1 with
one line naming the Dockerfile's line (a failed RUN's last output lines above it).
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig


def _pairs(values: list[str], flag: str, from_env: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, eq, value = item.partition("=")
        if not key:
            from tomato.errors import InvalidArgument

            raise InvalidArgument(f'invalid argument "{item}" for "{flag}" flag: the name '
                                  "is empty")
        if not eq and from_env:  # docker: --build-arg NAME takes the caller's $NAME
            if key in os.environ:
                out[key] = os.environ[key]
            continue
        out[key] = value
    return out


def cmd_build(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.build.builder import BuildRequest, build
    from tomato.build.executor import StepFailed
    from tomato.build.progress import Live, for_terminal
    from tomato.errors import InvalidArgument

    if args.context == "-" and args.file == "-":
        raise InvalidArgument("invalid argument: can't use stdin for both build context and "
                              "dockerfile")
    if args.progress not in ("auto", "plain", "tty", "quiet"):
        raise InvalidArgument(f'invalid argument "{args.progress}" for "--progress" flag: '
                              "want auto, plain, tty or quiet")
    dockerfile_text = None
    if args.file == "-":
        dockerfile_text = sys.stdin.buffer.read(16 << 20)
    quiet = args.quiet or args.progress == "quiet"
    mode = "plain" if args.explain and args.progress == "auto" else args.progress
    reporter = for_terminal("auto" if mode == "tty" else mode, sys.stderr, quiet)
    req = BuildRequest(
        context=args.context, dockerfile=args.file or "", dockerfile_text=dockerfile_text,
        tags=list(args.tag or []), build_args=_pairs(args.build_arg, "--build-arg", True),
        target=args.target or "", no_cache=args.no_cache, pull=args.pull,
        labels=_pairs(args.label, "--label"), network=args.network, explain=args.explain,
        iidfile=args.iidfile or "")
    try:
        result = build(cfg, req, reporter, stdin=sys.stdin.buffer)
    except StepFailed as err:
        if isinstance(reporter, Live):
            reporter.fail()
        elif quiet and err.tail:
            for line in err.tail:
                print(f"  {line}", file=sys.stderr)
        raise
    if quiet:
        print(result.image_id)
    return 0


def cmd_builder_prune(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli.render import human_size
    from tomato.engine import buildcache

    if not args.force:
        sys.stdout.write("WARNING! This will remove all build cache.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    result = buildcache.prune(cfg)
    if result.deleted:
        print("Deleted build cache objects:")
        for image_id in result.deleted:
            print(image_id.removeprefix("sha256:"))
        print()
    print(f"Total reclaimed space: {human_size(result.reclaimed)}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("build", help="build an image from a Dockerfile", parents=[common])
    p.add_argument("-t", "--tag", action="append", metavar="NAME[:TAG]",
                   help="name and optionally a tag (repeatable)")
    p.add_argument("-f", "--file", metavar="PATH", help="the Dockerfile (default "
                   "CONTEXT/Dockerfile; - for stdin)")
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V",
                   help="a build-time variable (repeatable)")
    p.add_argument("--target", metavar="STAGE", help="the stage to build")
    p.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    p.add_argument("--pull", action="store_true", help="always pull the base images")
    p.add_argument("--label", action="append", default=[], metavar="K=V",
                   help="a label of the image (repeatable)")
    p.add_argument("--network", default="bridge", metavar="MODE",
                   help="the RUN containers' network: bridge (default), none, host")
    p.add_argument("--iidfile", metavar="FILE", help="write the image id to FILE")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the image id")
    p.add_argument("--progress", default="auto", metavar="MODE",
                   help="auto (live on a terminal), plain, tty or quiet")
    p.add_argument("--explain", action="store_true",
                   help="show each step's overlay mount, container and layer diff")
    p.add_argument("context", metavar="CONTEXT", help="a directory, a tar archive, or -")
    p.set_defaults(func=cmd_build)
    builder = sub.add_parser("builder", help="manage the build cache", parents=[common])
    bsub = builder.add_subparsers(dest="builder_command", metavar="COMMAND", required=True)
    p = bsub.add_parser("prune", help="remove the build cache", parents=[common])
    p.add_argument("-a", "--all", action="store_true", help="(all the cache is removed)")
    p.add_argument("-f", "--force", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_builder_prune)


__all__ = ["register", "cmd_build", "cmd_builder_prune"]
