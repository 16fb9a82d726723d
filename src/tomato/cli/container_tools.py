"""`tomato` commands on a container's filesystem and usage: diff, commit, cp,
export, top, stats, update, attach."""

from __future__ import annotations

import argparse
import sys

from tomato.cli.common import guard as _guard

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig
    from tomato.engine.containers import Container
    from tomato.engine.usage import Sample


@_guard
def cmd_diff(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import filesystem, service

    for kind, path in filesystem.diff(cfg, service.get(cfg, args.container)):
        print(f"{kind} {path}")
    return 0


@_guard
def cmd_commit(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import filesystem, image_changes, service

    changes = image_changes.parse(args.change)  # before anything is looked up
    c = service.get(cfg, args.container)
    print(filesystem.commit(cfg, c, args.repository, comment=args.message, author=args.author,
                            changes=changes, pause=args.pause != "false"))
    return 0


def cmd_cp(args: argparse.Namespace, cfg: EngineConfig) -> int:
    """docker cp: one side CONTAINER:PATH, the other a host path or "-" (a tar stream).
    Errors exit 1, as the docker CLI's do."""
    from tomato.cli.common import fail
    from tomato.engine import filesystem, service
    from tomato.errors import InvalidArgument, TomatoError

    def split(arg: str) -> tuple[str | None, str]:
        # docker's splitCpArg: an absolute path, or a relative one starting with ".",
        # is local even with a ":" in it
        if arg.startswith("/"):
            return None, arg
        ref, colon, path = arg.partition(":")
        if not colon or ref.startswith("."):
            return None, arg
        return ref, path

    try:
        if not args.src:
            raise InvalidArgument("source can not be empty")
        if not args.dest:
            raise InvalidArgument("destination can not be empty")
        src_ref, src = split(args.src)
        dst_ref, dst = split(args.dest)
        if src_ref is None and dst_ref is None:
            raise InvalidArgument("must specify at least one container source")
        if src_ref is not None and dst_ref is not None:
            raise InvalidArgument("copying between containers is not supported")
        if src_ref is not None:
            filesystem.copy_from(cfg, service.get(cfg, src_ref), src, dst,
                                 out=sys.stdout.buffer if dst == "-" else None,
                                 keep_owner=args.archive, follow=args.follow_link)
        else:
            assert dst_ref is not None
            filesystem.copy_to(cfg, service.get(cfg, dst_ref), src, dst,
                               stream=sys.stdin.buffer if src == "-" else None,
                               keep_owner=args.archive, follow=args.follow_link)
    except TomatoError as err:
        if getattr(args, "debug", False):
            raise
        return fail(err, 1)
    except OSError as err:
        if getattr(args, "debug", False) or isinstance(err, BrokenPipeError):
            raise  # (a closed pipe on "-" ends quietly, as in main)
        return fail(f"{err.strerror or err}" + (f": {err.filename}" if err.filename else ""), 1)
    return 0


@_guard
def cmd_export(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import filesystem, service

    c = service.get(cfg, args.container)
    if args.output:
        with open(args.output, "wb") as f:
            filesystem.export(cfg, c, f)
    else:
        if sys.stdout.isatty():
            from tomato.errors import InvalidArgument

            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag "
                                  "or redirect")
        filesystem.export(cfg, c, sys.stdout.buffer)
    return 0


@_guard
def cmd_top(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli.render import print_table
    from tomato.engine import service, usage

    print_table(usage.top(cfg, service.get(cfg, args.container), list(args.ps_args)))
    return 0


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n}B"


def _stats_row(c: Container, s: Sample | None) -> list[str]:
    from tomato.cli.render import human_size

    if s is None:  # not running (or stopped meanwhile): docker shows nothing in use
        return [c.short_id, c.name, "0.00%", "0B / 0B", "0.00%", "0B / 0B", "0B / 0B", "0"]
    return [c.short_id, c.name, f"{s.cpu_percent:.2f}%",
            f"{_human_bytes(s.mem_usage)} / {_human_bytes(s.mem_limit)}",
            f"{s.mem_percent:.2f}%", "0B / 0B",
            f"{human_size(s.block_read)} / {human_size(s.block_write)}", str(s.pids)]


#: docker/cli's stats context
STATS_HEADERS = {"Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID",
                 "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
STATS_DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t" \
    "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


@_guard
def cmd_stats(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli.render import is_table, show
    from tomato.engine import service, usage

    # One sampler for the whole command: every container read once, one interval, read
    # again (engine/usage.py), not an interval per container; a live table reads each
    # container once a frame.
    sampler = usage.Sampler(cfg)
    while True:
        if args.containers:
            listed = [service.get(cfg, ref) for ref in args.containers]
        else:
            listed = service.list_containers(cfg, all_states=args.all)
        samples = {c.id: s for c, s in sampler.sample(listed)}
        keys = ["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"]
        rows = []
        for i, c in enumerate(listed):
            row = dict(zip(keys, _stats_row(c, samples.get(c.id)), strict=True))
            row["Container"] = args.containers[i] if args.containers else c.short_id
            rows.append(row)
        if not args.no_stream and is_table(args.format):
            sys.stdout.write("\033[2J\033[H")
        code = show(args.format, rows, STATS_HEADERS, STATS_DEFAULT, "*formatter.statsContext")
        if code:
            return code
        sys.stdout.flush()
        if args.no_stream:
            return 0


@_guard
def cmd_update(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import options as o
    from tomato.engine import service, usage

    changes: dict[str, Any] = {}
    if args.cpus:
        changes.setdefault("cpu", {}).update(period=100000,
                                             quota=int(o.parse_cpus(args.cpus) * 100000))
    if args.cpu_shares:
        changes.setdefault("cpu", {})["shares"] = args.cpu_shares
    if args.cpuset_cpus:
        changes.setdefault("cpu", {})["cpus"] = args.cpuset_cpus
    if args.memory:
        changes.setdefault("memory", {})["limit"] = o.parse_size(args.memory, "-m, --memory")
    if args.memory_swap:
        changes.setdefault("memory", {})["swap"] = -1 if args.memory_swap == "-1" else \
            o.parse_size(args.memory_swap, "--memory-swap")
    if args.pids_limit:
        changes["pids"] = {"limit": args.pids_limit}
    if args.restart:
        name, count = o.parse_restart(args.restart)
        changes["restart"] = name
    for ref in args.containers:
        usage.update(cfg, service.get(cfg, ref), dict(changes))
        print(ref)
    return 0


@_guard
def cmd_attach(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import service

    c = service.get(cfg, args.container)
    if c.state.status != "running":
        from tomato.errors import Conflict

        raise Conflict("You cannot attach to a stopped container, start it first")
    opts = argparse.Namespace(interactive=not args.no_stdin and c.options.get("interactive"),
                              tty=c.options.get("tty", False), sig_proxy=args.sig_proxy,
                              detach_keys=args.detach_keys)
    from tomato.cli.attaching import attach_and_wait

    return attach_and_wait(cfg, c, opts)


def register_more(add: Any, parent: Any) -> None:
    p = add(parent, "diff", cmd_diff, "inspect changes to a container's filesystem")
    p.add_argument("container")
    p = add(parent, "commit", cmd_commit, "create a new image from a container's changes")
    p.add_argument("-a", "--author", default="")
    p.add_argument("-m", "--message", default="")
    p.add_argument("-c", "--change", action="append", default=[])
    p.add_argument("-p", "--pause", default="true")
    p.add_argument("container")
    p.add_argument("repository", nargs="?")
    p = add(parent, "cp", cmd_cp, "copy files between a container and the host")
    p.add_argument("-a", "--archive", action="store_true")
    p.add_argument("-L", "--follow-link", action="store_true")
    p.add_argument("src")
    p.add_argument("dest")
    p = add(parent, "export", cmd_export, "export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output")
    p.add_argument("container")
    p = add(parent, "top", cmd_top, "display the running processes of a container")
    p.add_argument("container")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)
    p = add(parent, "stats", cmd_stats, "display a live stream of resource usage")
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("--format")
    p.add_argument("containers", nargs="*")
    p = add(parent, "update", cmd_update, "update the resources of containers")
    p.add_argument("--cpus")
    p.add_argument("-c", "--cpu-shares", type=int)
    p.add_argument("--cpuset-cpus")
    p.add_argument("-m", "--memory")
    p.add_argument("--memory-swap")
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--restart")
    p.add_argument("containers", nargs="+")
    p = add(parent, "attach", cmd_attach, "attach to a running container's streams")
    p.add_argument("--no-stdin", action="store_true")
    p.add_argument("--sig-proxy", default="true")
    p.add_argument("--detach-keys", default="")
    p.add_argument("container")
