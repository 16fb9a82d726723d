"""`tomato` container commands (run, create, start, stop, kill, rm, ps, logs, exec,
inspect, ...): Docker's flags, output and exit codes (see cli/common.py).  The run
flag set is cli/run_options.py; filesystem and usage commands cli/container_tools.py;
volumes cli/volumes.py."""

from __future__ import annotations

import argparse
import sys
import time

from tomato.cli.attaching import attach_and_wait
from tomato.cli.common import ENGINE_ERROR
from tomato.cli.common import fail as _fail
from tomato.cli.common import guard as _guard
from tomato.cli.run_options import build_options
from tomato.cli.run_options import run_args as _run_args
from tomato.errors import InvalidArgument, NotFound, TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from tomato.engine.config import EngineConfig
    from tomato.engine.options import RunOptions


def _handoff(args: argparse.Namespace) -> Callable[[int, str], None] | None:
    """In a fork server's child, `run -d` becomes the container's monitor (see
    service.start): this tells the user what happened and lets the client go."""
    served = getattr(args, "served", None)  # the fork server's hold on the client
    if served is None or getattr(args, "explain", False):
        return None

    def tell(code: int, text: str) -> None:
        if code == 0:
            print(text)
        else:
            _fail(text, code)
        served.release(code)
    return tell


def _explained(args: argparse.Namespace, cfg: EngineConfig) -> EngineConfig:
    """--explain: every kernel step told on (a copy of) our stderr -- also by the
    monitor we fork, which keeps that descriptor: the config with its explainer."""
    if getattr(args, "explain", False):
        from tomato.cli.runtime import enable_explain
        from tomato.records import replace

        return replace(cfg, explain=enable_explain(args.explain))
    return cfg


@_guard
def cmd_run(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import service

    cfg = _explained(args, cfg)
    opts = build_options(args)
    _rootless_warnings(opts)
    c = create_with_cidfile(cfg, opts, args.cidfile, then_start=True)
    if args.detach:
        service.start(cfg, c.id, handoff=_handoff(args))
        print(c.id)
        return 0
    try:
        service.start(cfg, c.id, attach_wait=True)
    except TomatoError as err:
        if opts.auto_remove:
            service.remove_files(cfg.root, c.id)
        msg = str(err)
        code = 127 if "not found" in msg or "no such file" in msg else \
            126 if "permission denied" in msg else ENGINE_ERROR
        return _fail(err, code)
    code = attach_and_wait(cfg, c, args, opts.auto_remove)
    if opts.auto_remove and not getattr(args, "detached", False):  # like docker: return
        # once the container is gone
        _wait_removed(cfg, c.id)  # the monitor hung up when it was: a check, as a rule
    return code


class CidFile:
    """--cidfile: made before the container (docker: an existing one is refused, another
    container may be using it), the id written once created, removed if creating fails."""

    def __init__(self, path: str) -> None:
        import os

        self.path, self.fd = path, -1
        if not path:
            return
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            raise InvalidArgument("Container ID file found, make sure the other container "
                                  f"isn't running or delete {path}") from None
        except OSError as err:
            raise InvalidArgument(f"failed to create the container ID file: open {path}: "
                                  f"{(err.strerror or str(err)).lower()}") from err

    def made(self, cid: str) -> None:
        import os

        if self.fd >= 0:
            os.write(self.fd, cid.encode())
            os.close(self.fd)
            self.fd = -1

    def failed(self) -> None:
        import os

        if self.fd >= 0:
            os.close(self.fd)
            os.unlink(self.path)
            self.fd = -1


def create_with_cidfile(cfg: EngineConfig, opts: Any, path: str, then_start: bool) -> Any:
    from tomato.engine import service

    cidfile = CidFile(path)
    try:
        c = service.create(cfg, opts, then_start=then_start)
    except BaseException:
        cidfile.failed()
        raise
    cidfile.made(c.id)
    return c


def _wait_removed(cfg: EngineConfig, cid: str, timeout: float = 30.0) -> None:
    from tomato.engine.containers import Containers

    records = Containers(cfg.root)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            records.get(cid)
        except NotFound:
            return
        time.sleep(0.002)


@_guard
def cmd_create(args: argparse.Namespace, cfg: EngineConfig) -> int:

    opts = build_options(args)
    _rootless_warnings(opts)
    c = create_with_cidfile(cfg, opts, args.cidfile, then_start=False)
    print(c.id)
    return 0


def _rootless_warnings(opts: RunOptions) -> None:
    """A user's engine runs without the limits it cannot apply, and says so (podman's way;
    engine/rootless.py)."""
    from tomato._sys import userns

    if userns.rootless():
        from tomato.engine import rootless

        warning = rootless.limits_warning(opts)
        if warning:
            print(warning, file=sys.stderr)


@_guard
def cmd_start(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import service

    if args.attach and len(args.containers) == 1:
        c = service.get(cfg, args.containers[0])
        service.start(cfg, c.id, attach_wait=True)
        opts = argparse.Namespace(interactive=args.interactive, tty=c.options.get("tty", False),
                                  sig_proxy="true", detach_keys=args.detach_keys)
        return attach_and_wait(cfg, c, opts)
    failed = 0
    for ref in args.containers:
        try:
            service.start(cfg, ref)
            print(ref)
        except TomatoError as err:
            _fail(err)
            failed = 1
    return failed


def _container_of(cfg: EngineConfig) -> Callable[[str], str]:
    """ref -> the container it names (its id; the ref itself when it names none), so that
    two refs to one container are never acted on side by side (cli/parallel.py)."""
    from tomato.engine.containers import Containers

    records = Containers(cfg.root)

    def key(ref: str) -> str:
        try:
            return str(records.get(ref).id)
        except TomatoError:
            return "?" + ref
    return key


# stop, kill, rm, pause, unpause and restart act on up to 50 containers at once, as
# docker's CLI does (output in argument order): see cli/parallel.py
def cmd_stop(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli import parallel
    from tomato.engine import service

    return parallel.each(args.containers,
                         lambda r: service.stop(cfg, r, args.time, args.signal),
                         _container_of(cfg))


def cmd_restart(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli import parallel
    from tomato.engine import service

    # Stopped side by side, started one after another once every thread is gone: start
    # forks the monitor, which clones the init through ctypes (DESIGN: never a thread
    # before a ctypes clone).  restart then finds each stopped and only starts it.
    stopped = parallel.run(args.containers,
                           lambda r: service.stop(cfg, r, args.time, args.signal),
                           _container_of(cfg))
    failed = 0
    for ref, err in zip(args.containers, stopped, strict=True):
        try:
            if err is not None:
                raise err
            service.restart(cfg, ref, args.time, args.signal)
            print(ref, flush=True)
        except (TomatoError, OSError) as failure:
            print(f"tomato: {parallel.message(failure)}", file=sys.stderr, flush=True)
            failed = 1
    return failed


def cmd_kill(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli import parallel
    from tomato.engine import service

    return parallel.each(args.containers, lambda r: service.kill(cfg, r, args.signal),
                         _container_of(cfg))


def cmd_rm(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli import parallel
    from tomato.engine import service

    return parallel.each(args.containers,
                         lambda r: service.remove(cfg, r, args.force, args.volumes),
                         _container_of(cfg))


def cmd_pause(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli import parallel
    from tomato.engine import service

    return parallel.each(args.containers, lambda r: service.pause(cfg, r), _container_of(cfg))


def cmd_unpause(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli import parallel
    from tomato.engine import service

    return parallel.each(args.containers, lambda r: service.unpause(cfg, r),
                         _container_of(cfg))


def cmd_wait(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import service

    failed = 0
    for ref in args.containers:
        try:
            print(service.wait_exit(cfg, ref).state.exit_code)
        except TomatoError as err:
            _fail(err)
            failed = 1
    return failed


@_guard
def cmd_rename(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import service

    service.rename(cfg, args.container, args.new_name)
    return 0


@_guard
def cmd_logs(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import logs, service

    try:
        c, path = service.log_path(cfg, args.container)
    except InvalidArgument as err:  # --log-driver none: docker's daemon error, exit 1
        return _fail(err, 1)
    since = _since(args.since) if args.since else None
    until = _since(args.until) if args.until else None
    tail = None if args.tail in (None, "all") else int(args.tail)

    def emit(entry: Any) -> None:
        text = (entry.time + " " if args.timestamps else "") + entry.text
        stream = sys.stdout if entry.stream == "stdout" else sys.stderr
        stream.write(text)
        stream.flush()

    position = path.stat().st_size if path.exists() else 0
    for entry in logs.read_logs(str(path), tail, since, until):
        emit(entry)
    if args.follow and path.exists() and (until is None or time.time() < until):
        # docker: -f with --until follows until then
        def running() -> bool:
            return (until is None or time.time() < until) and service.is_running(cfg, c.id)

        for entry in logs.follow(str(path), position, running):
            if until is not None and logs.parse_timestamp(entry.time) > until:
                break
            emit(entry)
    return 0


def _since(text: str) -> float:
    """docker's --since/--until forms (engine/timestamps.py): 10m, 2024-01-02T15:04, 1700000000."""
    from tomato.engine.timestamps import parse

    return parse(text)


def cmd_exec(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import service

    cfg = _explained(args, cfg)
    try:
        return service.exec_in(cfg, args.container, list(args.command), tty=args.tty,
                               detach=args.detach, env=args.env, user=args.user,
                               workdir=args.workdir)
    except TomatoError as err:
        msg = str(err)
        if "not found" in msg or "no such file" in msg:
            return _fail(err, 127)
        if "permission denied" in msg:
            return _fail(err, 126)
        return _fail(err, 1 if "not running" in msg or "No such container" in msg
                     else ENGINE_ERROR)


@_guard
def cmd_inspect(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli.render import inspect_each
    from tomato.engine import service
    from tomato.engine.inspect import container_json

    out = []
    failed = 0
    for ref in args.containers:
        try:
            if args.type not in (None, "container"):
                raise NotFound(f"No such object: {ref}")
            c = service.get(cfg, ref)
            doc = container_json(cfg, c)
            if args.size:  # docker: SizeRw and SizeRootFs, asked for (they walk the layer)
                from tomato.engine.layersize import sizes

                doc["SizeRw"], doc["SizeRootFs"] = sizes(cfg, c)
            out.append(doc)
        except NotFound as err:
            try:  # `inspect` also answers for images, as docker's does
                if args.type not in (None, "image"):
                    raise
                from tomato.engine.images import inspect as image_inspect

                out.append(image_inspect(cfg, ref).to_docker())
            except NotFound:
                _fail(f"No such object: {ref}" if "No such container" in str(err) or
                      args.type else err, 1)
                failed = 1
    code = inspect_each(args.format, out)
    return code or failed


@_guard
def cmd_prune(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli.render import human_size
    from tomato.engine.listfilters import parse, prune_matches
    from tomato.engine.removal import prune_reclaiming

    filters = parse(args.filter)
    prune_matches(0, {}, filters)  # a bad filter before anything is asked or removed
    removed, reclaimed = prune_reclaiming(cfg, filters)
    if removed:  # docker: the heading only when something went
        print("Deleted Containers:")
        for cid in removed:
            print(cid)
        print()
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


# -- registration ------------------------------------------------------------------------
def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from tomato.cli.container_tools import register_more
    from tomato.cli.listing import add_ps_flags, cmd_ps
    from tomato.cli.volumes import (
        cmd_volume_create,
        cmd_volume_inspect,
        cmd_volume_ls,
        cmd_volume_prune,
        cmd_volume_rm,
    )

    def add(parent: Any, name: str, func: Any, help_text: str,
            aliases: tuple[str, ...] = (), add_help: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, parents=[common],
                                                       aliases=list(aliases), add_help=add_help)
        p.set_defaults(func=func)
        return p

    def containers_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("containers", nargs="+", metavar="CONTAINER")

    def install(parent: Any, top: bool) -> None:
        # -h is --hostname, as in docker: these two keep only --help.
        _run_args(add(parent, "run", cmd_run, "create and start a container", add_help=False))
        _run_args(add(parent, "create", cmd_create, "create a container", add_help=False))
        p = add(parent, "start", cmd_start, "start stopped containers")
        p.add_argument("-a", "--attach", action="store_true")
        p.add_argument("-i", "--interactive", action="store_true")
        p.add_argument("--detach-keys", default="")
        containers_arg(p)
        for name, func, text in (("stop", cmd_stop, "stop running containers"),
                                 ("restart", cmd_restart, "restart containers")):
            p = add(parent, name, func, text)
            p.add_argument("-t", "--time", type=int)
            p.add_argument("-s", "--signal")
            containers_arg(p)
        p = add(parent, "kill", cmd_kill, "kill running containers")
        p.add_argument("-s", "--signal", default="KILL")
        containers_arg(p)
        p = add(parent, "rm", cmd_rm, "remove containers", aliases=() if top else ("remove",))
        p.add_argument("-f", "--force", action="store_true")
        p.add_argument("-v", "--volumes", action="store_true")
        containers_arg(p)
        for name, func, text in (("pause", cmd_pause, "pause all processes"),
                                 ("unpause", cmd_unpause, "unpause all processes"),
                                 ("wait", cmd_wait, "wait for containers to stop")):
            containers_arg(add(parent, name, func, text))
        p = add(parent, "rename", cmd_rename, "rename a container")
        p.add_argument("container")
        p.add_argument("new_name")
        add_ps_flags(add(parent, "ps", cmd_ps, "list containers",
                         aliases=() if top else ("ls", "list")))
        p = add(parent, "logs", cmd_logs, "fetch the logs of a container")
        p.add_argument("-f", "--follow", action="store_true")
        p.add_argument("-n", "--tail")
        p.add_argument("--since")
        p.add_argument("--until")
        p.add_argument("-t", "--timestamps", action="store_true")
        p.add_argument("container")
        p = add(parent, "exec", cmd_exec, "run a command in a running container")
        p.add_argument("-d", "--detach", action="store_true")
        p.add_argument("-i", "--interactive", action="store_true")
        p.add_argument("-t", "--tty", action="store_true")
        p.add_argument("-e", "--env", action="append", default=[])
        p.add_argument("-u", "--user", default="")
        p.add_argument("-w", "--workdir", default="")
        p.add_argument("--privileged", action="store_true")
        p.add_argument("--explain", action="store_const", const="summary")
        p.add_argument("--explain=full", dest="explain", action="store_const", const="full",
                       help=argparse.SUPPRESS)
        p.add_argument("container")
        p.add_argument("command", nargs=argparse.REMAINDER)
        p = add(parent, "inspect", cmd_inspect, "show a container's details")
        p.add_argument("-f", "--format")
        p.add_argument("-s", "--size", action="store_true")
        p.add_argument("--type", choices=("container", "image", "network", "volume"))
        containers_arg(p)
        register_more(add, parent)

    install(sub, True)
    container = sub.add_parser("container", help="manage containers", parents=[common])
    csub = container.add_subparsers(dest="container_command", metavar="COMMAND", required=True)
    install(csub, False)
    p = add(csub, "prune", cmd_prune, "remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])

    volume = sub.add_parser("volume", help="manage volumes", parents=[common])
    vsub = volume.add_subparsers(dest="volume_command", metavar="COMMAND", required=True)
    p = add(vsub, "create", cmd_volume_create, "create a volume")
    p.add_argument("name", nargs="?")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("-d", "--driver", default="local")
    p = add(vsub, "ls", cmd_volume_ls, "list volumes", aliases=("list",))
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    p = add(vsub, "inspect", cmd_volume_inspect, "show volumes' details")
    p.add_argument("-f", "--format")
    p.add_argument("names", nargs="+")
    p = add(vsub, "rm", cmd_volume_rm, "remove volumes", aliases=("remove",))
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("names", nargs="+")
    p = add(vsub, "prune", cmd_volume_prune, "remove unused volumes")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("--filter", action="append", default=[])
