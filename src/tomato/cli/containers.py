"""`tomato` container and volume commands: Docker's flags, output and exit codes.

Exit codes as Docker's: 125 when the engine fails (bad flag value, unknown
image, name in use...), 126 when the command cannot be invoked, 127 when
it is not found, and the container's own code otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from tomato.errors import NotFound, TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

ENGINE_ERROR = 125


def _fail(err: Exception | str, code: int = ENGINE_ERROR) -> int:
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    print(f"tomato: {msg}", file=sys.stderr)
    return code


def _guard(func: Any) -> Any:
    """Engine errors print one line and exit 125 (docker's 'daemon error' code)."""
    def run(args: argparse.Namespace, cfg: Any) -> int:
        try:
            return int(func(args, cfg) or 0)
        except TomatoError as err:
            if getattr(args, "debug", False):
                raise
            return _fail(err)
    return run


# -- run options -----------------------------------------------------------------------
def _run_args(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--help", action="help")
    a("-d", "--detach", action="store_true")
    a("-i", "--interactive", action="store_true")
    a("-t", "--tty", action="store_true")
    a("--rm", action="store_true")
    a("--name", default="")
    a("-e", "--env", action="append", default=[])
    a("--env-file", action="append", default=[])
    a("-w", "--workdir", default="")
    a("-u", "--user", default="")
    a("--entrypoint")
    a("-h", "--hostname", default="")
    a("--domainname", default="")
    a("-v", "--volume", action="append", default=[])
    a("--mount", action="append", default=[])
    a("--tmpfs", action="append", default=[])
    a("--read-only", action="store_true")
    a("--cpus")
    a("-c", "--cpu-shares", type=int, default=0)
    a("--cpuset-cpus", default="")
    a("-m", "--memory")
    a("--memory-swap")
    a("--memory-reservation")
    a("--pids-limit", type=int, default=0)
    a("--shm-size")
    a("--device", action="append", default=[])
    a("--device-read-bps", action="append", default=[])
    a("--device-write-bps", action="append", default=[])
    a("--cap-add", action="append", default=[])
    a("--cap-drop", action="append", default=[])
    a("--privileged", action="store_true")
    a("--security-opt", action="append", default=[])
    a("--ulimit", action="append", default=[])
    a("--sysctl", action="append", default=[])
    a("--init", action="store_true")
    a("--restart", default="no")
    a("--network", "--net", default="bridge")
    a("-p", "--publish", action="append", default=[])
    a("-P", "--publish-all", action="store_true")
    a("--expose", action="append", default=[])
    a("--ip", default="")
    a("--network-alias", "--net-alias", action="append", default=[])
    a("--mac-address", default="")
    a("--dns", action="append", default=[])
    a("--dns-search", action="append", default=[])
    a("--dns-option", action="append", default=[])
    a("--add-host", action="append", default=[])
    a("-l", "--label", action="append", default=[])
    a("--stop-signal", default="")
    a("--stop-timeout", type=int)
    a("--log-opt", action="append", default=[])
    a("--sig-proxy", default="true")
    a("--explain", action="store_true", help="print each kernel step with its shell equivalent")
    a("image")
    a("command", nargs=argparse.REMAINDER)


def build_options(args: argparse.Namespace) -> Any:
    from tomato.engine import options as o

    opts = o.RunOptions(image=args.image, command=list(args.command), name=args.name,
                        workdir=args.workdir, user=args.user, hostname=args.hostname,
                        domainname=args.domainname, tty=args.tty,
                        interactive=args.interactive, detach=args.detach,
                        auto_remove=args.rm, read_only=args.read_only,
                        cpu_shares=args.cpu_shares, cpuset_cpus=args.cpuset_cpus,
                        pids_limit=args.pids_limit, privileged=args.privileged,
                        init=args.init, stop_signal=args.stop_signal,
                        stop_timeout=args.stop_timeout, tmpfs=list(args.tmpfs),
                        cap_add=list(args.cap_add), cap_drop=list(args.cap_drop),
                        devices=list(args.device), mounts=list(args.mount))
    for path in args.env_file:
        opts.env.extend(o.read_env_file(path))
    opts.env.extend(args.env)
    if args.entrypoint is not None:
        opts.entrypoint = [args.entrypoint] if args.entrypoint else []
    opts.volumes = [o.validate_volume(v) for v in args.volume]
    if args.cpus is not None:
        opts.cpus = o.parse_cpus(args.cpus)
    if args.memory is not None:
        opts.memory = o.parse_size(args.memory, "-m, --memory")
    if args.memory_swap is not None:
        opts.memory_swap = -1 if args.memory_swap == "-1" else \
            o.parse_size(args.memory_swap, "--memory-swap")
    if args.memory_reservation is not None:
        opts.memory_reservation = o.parse_size(args.memory_reservation, "--memory-reservation")
    if args.shm_size is not None:
        opts.shm_size = o.parse_size(args.shm_size, "--shm-size")
    opts.device_read_bps = [o.parse_device_rate(d, "--device-read-bps")
                            for d in args.device_read_bps]
    opts.device_write_bps = [o.parse_device_rate(d, "--device-write-bps")
                             for d in args.device_write_bps]
    opts.ulimits = [o.parse_ulimit(u) for u in args.ulimit]
    opts.sysctls = o.parse_key_values(args.sysctl, "sysctl")
    opts.labels = o.parse_key_values(args.label, "label")
    opts.restart, opts.restart_max = o.parse_restart(args.restart)
    if opts.auto_remove and opts.restart != "no":
        from tomato.errors import InvalidArgument

        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
    _network_options(opts, args)
    for sec in args.security_opt:
        key, _, value = sec.partition("=" if "=" in sec else ":")
        if key == "seccomp":
            opts.seccomp = value
        elif key == "no-new-privileges":
            opts.no_new_privileges = value in ("", "true")
        elif key in ("apparmor", "label"):
            continue
        else:
            from tomato.errors import InvalidArgument

            raise InvalidArgument(f"invalid --security-opt: {sec}")
    for lo in args.log_opt:
        key, _, value = lo.partition("=")
        if key == "max-size":
            opts.log_max_size = o.parse_size(value, "--log-opt max-size")
        elif key == "max-file":
            if not value.isdigit() or int(value) < 1:
                from tomato.errors import InvalidArgument

                raise InvalidArgument(f"invalid value for max-file: {value}")
            opts.log_max_file = int(value)
        else:
            from tomato.errors import InvalidArgument

            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    if opts.tty and os.isatty(0):
        from tomato.runtime.console import get_size

        opts.console_size = get_size(0)
    return opts


def _network_options(opts: Any, args: argparse.Namespace) -> None:
    from tomato.engine.options import parse_add_host
    from tomato.errors import InvalidArgument
    from tomato.network import ports

    mode = args.network or "bridge"
    if mode == "default":
        mode = "bridge"
    if mode == "container:" or mode.startswith("container:") and not mode[10:]:
        raise InvalidArgument("--network container: needs a container name or id")
    opts.network = mode
    opts.publish = [ports.parse_publish(p).as_dict() for p in args.publish]
    opts.publish_all = args.publish_all
    opts.expose = [f"{p}/{proto}" for p, proto in map(ports.parse_expose, args.expose)]
    if args.ip:
        from tomato.network.ipam import parse_ip

        opts.ip = str(parse_ip(args.ip))
    if args.mac_address:
        from tomato.network.ipam import validate_mac

        opts.mac_address = validate_mac(args.mac_address)
    opts.network_aliases = list(args.network_alias)
    for server in args.dns:
        from tomato.network.ipam import parse_ip

        parse_ip(server, "IP address for --dns")
    opts.dns = list(args.dns)
    opts.dns_search = list(args.dns_search)
    opts.dns_options = list(args.dns_option)
    opts.add_hosts = [parse_add_host(h) for h in args.add_host]
    if mode.startswith("container:") and args.hostname:
        raise InvalidArgument("conflicting options: hostname and the network mode")


def _attach_and_wait(cfg: Any, c: Any, args: argparse.Namespace) -> int:
    from tomato.engine import attach, service
    from tomato.engine.containers import Containers

    sock = attach.connect(Containers(cfg.root).path(c.id) / "attach.sock")
    code = attach.stream(sock, stdin=args.interactive, tty=args.tty,
                         proxy_signals=args.sig_proxy != "false")
    if code is None:  # the monitor died: the record (reconciled) knows the truth
        try:
            code = service.wait_exit(cfg, c.id).state.exit_code
        except NotFound:
            code = 125
    return code


def _explain(args: argparse.Namespace) -> None:
    if getattr(args, "explain", False):
        from tomato.cli.runtime import enable_explain

        enable_explain()


@_guard
def cmd_run(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    _explain(args)
    opts = build_options(args)
    c = service.create(cfg, opts)
    if args.detach:
        service.start(cfg, c.id)
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
    code = _attach_and_wait(cfg, c, args)
    if opts.auto_remove:  # like docker: return once the container is gone
        _wait_removed(cfg, c.id)
    return code


def _wait_removed(cfg: Any, cid: str, timeout: float = 30.0) -> None:
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
def cmd_create(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    c = service.create(cfg, build_options(args))
    print(c.id)
    return 0


@_guard
def cmd_start(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    if args.attach and len(args.containers) == 1:
        c = service.get(cfg, args.containers[0])
        service.start(cfg, c.id, attach_wait=True)
        opts = argparse.Namespace(interactive=args.interactive, tty=c.options.get("tty", False),
                                  sig_proxy="true")
        return _attach_and_wait(cfg, c, opts)
    failed = 0
    for ref in args.containers:
        try:
            service.start(cfg, ref)
            print(ref)
        except TomatoError as err:
            _fail(err)
            failed = 1
    return failed


def _each(refs: list[str], action: Any) -> int:
    failed = 0
    for ref in refs:
        try:
            action(ref)
            print(ref)
        except TomatoError as err:
            print(f"tomato: {str(err).splitlines()[0]}", file=sys.stderr)
            failed = 1
    return failed


def cmd_stop(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    return _each(args.containers, lambda r: service.stop(cfg, r, args.time))


def cmd_restart(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    return _each(args.containers, lambda r: service.restart(cfg, r, args.time))


def cmd_kill(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    return _each(args.containers, lambda r: service.kill(cfg, r, args.signal))


def cmd_rm(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    return _each(args.containers, lambda r: service.remove(cfg, r, args.force, args.volumes))


def cmd_pause(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    return _each(args.containers, lambda r: service.pause(cfg, r))


def cmd_unpause(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    return _each(args.containers, lambda r: service.unpause(cfg, r))


def cmd_wait(args: argparse.Namespace, cfg: Any) -> int:
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
def cmd_rename(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    service.rename(cfg, args.container, args.new_name)
    return 0


def _status_text(c: Any) -> str:
    from tomato.cli.engine import human_duration

    st = c.state
    now = time.time()
    if st.status == "running":
        return f"Up {human_duration(now - st.started_at)}"
    if st.status == "paused":
        return f"Up {human_duration(now - st.started_at)} (Paused)"
    if st.status == "restarting":
        return f"Restarting ({st.exit_code}) {human_duration(now - st.finished_at)} ago"
    if st.status == "exited":
        return f"Exited ({st.exit_code}) {human_duration(now - st.finished_at)} ago"
    return "Created"


def _ps_row(c: Any) -> dict[str, Any]:
    from tomato.cli.engine import human_duration

    cmd = " ".join(c.spec.get("process", {}).get("args", []))
    return {"ID": c.short_id, "Image": c.image, "Command": f'"{cmd[:20]}…"' if len(cmd) > 20
            else f'"{cmd}"', "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC",
                                                        time.gmtime(c.created)),
            "RunningFor": human_duration(time.time() - c.created) + " ago",
            "Status": _status_text(c), "State": c.state.status, "Names": c.name, "Ports": "",
            "Labels": ",".join(f"{k}={v}" for k, v in c.options.get("labels", {}).items())}


def _matches(c: Any, filters: list[str]) -> bool:
    for f in filters:
        key, _, value = f.partition("=")
        if key == "status" and c.state.status != value:
            return False
        if key == "name" and value not in c.name:
            return False
        if key == "id" and not c.id.startswith(value):
            return False
        if key == "ancestor" and value not in (c.image, c.image_id):
            return False
        if key == "exited" and (c.state.status != "exited" or str(c.state.exit_code) != value):
            return False
        if key == "label":
            k, _, v = value.partition("=")
            labels = c.options.get("labels", {})
            if k not in labels or (v and labels[k] != v):
                return False
    return True


@_guard
def cmd_ps(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    items = service.list_containers(cfg, all_states=args.all or bool(args.filter))
    items = [c for c in items if _matches(c, args.filter)]
    if args.last is not None:
        items = items[:args.last]
    if args.quiet:
        for c in items:
            print(c.id if args.no_trunc else c.short_id)
        return 0
    if args.format:
        from tomato.cli.engine import render_template

        for c in items:
            row = _ps_row(c)
            if args.format == "json":
                print(json.dumps(row))
            else:
                print(render_template(args.format.removeprefix("table "), row))
        return 0
    from tomato.cli.engine import print_table

    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
    for c in items:
        r = _ps_row(c)
        rows.append([c.id if args.no_trunc else r["ID"], r["Image"], r["Command"],
                     r["RunningFor"], r["Status"], r["Ports"], r["Names"]])
    print_table(rows)
    return 0


@_guard
def cmd_logs(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import logs, service

    c, path = service.log_path(cfg, args.container)
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
    if args.follow and path.exists():
        for entry in logs.follow(str(path), position,
                                 lambda: service.is_running(cfg, c.id)):
            emit(entry)
    return 0


def _since(text: str) -> float:
    from tomato.engine.logs import parse_timestamp

    if text[-1:] in "smh" and text[:-1].replace(".", "").isdigit():
        return time.time() - float(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]
    if text.replace(".", "").isdigit():
        return float(text)
    return parse_timestamp(text)


def cmd_exec(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    _explain(args)
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
def cmd_inspect(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service
    from tomato.engine.inspect import container_json

    out = []
    failed = 0
    for ref in args.containers:
        try:
            out.append(container_json(cfg, service.get(cfg, ref)))
        except NotFound as err:
            try:  # `inspect` also answers for images, as docker's does
                from tomato.engine.images import inspect as image_inspect

                out.append(image_inspect(cfg, ref).to_docker())
            except NotFound:
                _fail(f"No such object: {ref}" if "No such container" in str(err) else err, 1)
                failed = 1
    if args.format:
        from tomato.cli.engine import render_template

        for item in out:
            print(render_template(args.format, item))
    else:
        print(json.dumps(out, indent=4))
    return failed


@_guard
def cmd_prune(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    removed = service.prune(cfg)
    print("Deleted Containers:")
    for cid in removed:
        print(cid)
    print("\nTotal reclaimed space: 0B")
    return 0


# -- volumes --------------------------------------------------------------------------------
@_guard
def cmd_volume_create(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import volumes
    from tomato.engine.containers import new_id
    from tomato.engine.options import parse_key_values

    vol = volumes.ensure(cfg.root, args.name or new_id(), parse_key_values(args.label, "label"))
    print(vol.name)
    return 0


@_guard
def cmd_volume_ls(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import volumes

    vols = volumes.list_volumes(cfg.root)
    if args.quiet:
        for v in vols:
            print(v.name)
        return 0
    from tomato.cli.engine import print_table

    print_table([["DRIVER", "VOLUME NAME"]] + [["local", v.name] for v in vols])
    return 0


@_guard
def cmd_volume_inspect(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import volumes

    out = []
    failed = 0
    for name in args.names:
        try:
            out.append(volumes.get(cfg.root, name).to_docker())
        except NotFound as err:
            _fail(err, 1)
            failed = 1
    print(json.dumps(out, indent=4))
    return failed


def cmd_volume_rm(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import volumes

    return _each(args.names, lambda n: volumes.remove(cfg.root, n, args.force))


@_guard
def cmd_volume_prune(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import volumes

    print("Deleted Volumes:")
    for name in volumes.prune(cfg.root):
        print(name)
    return 0


# -- registration ------------------------------------------------------------------------
def register(sub: Any, common: argparse.ArgumentParser) -> None:
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
        p = add(parent, "ps", cmd_ps, "list containers", aliases=() if top else ("ls", "list"))
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("-n", "--last", type=int)
        p.add_argument("-f", "--filter", action="append", default=[])
        p.add_argument("--format")
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
        p.add_argument("--explain", action="store_true")
        p.add_argument("container")
        p.add_argument("command", nargs=argparse.REMAINDER)
        p = add(parent, "inspect", cmd_inspect, "show a container's details")
        p.add_argument("-f", "--format")
        p.add_argument("-s", "--size", action="store_true")
        containers_arg(p)
        register_more(add, parent)

    install(sub, True)
    container = sub.add_parser("container", help="manage containers", parents=[common])
    csub = container.add_subparsers(dest="container_command", metavar="COMMAND", required=True)
    install(csub, False)
    add(csub, "prune", cmd_prune, "remove all stopped containers").add_argument(
        "-f", "--force", action="store_true")

    volume = sub.add_parser("volume", help="manage volumes", parents=[common])
    vsub = volume.add_subparsers(dest="volume_command", metavar="COMMAND", required=True)
    p = add(vsub, "create", cmd_volume_create, "create a volume")
    p.add_argument("name", nargs="?")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("-d", "--driver", default="local")
    p = add(vsub, "ls", cmd_volume_ls, "list volumes", aliases=("list",))
    p.add_argument("-q", "--quiet", action="store_true")
    p = add(vsub, "inspect", cmd_volume_inspect, "show volumes' details")
    p.add_argument("names", nargs="+")
    p = add(vsub, "rm", cmd_volume_rm, "remove volumes", aliases=("remove",))
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("names", nargs="+")
    add(vsub, "prune", cmd_volume_prune, "remove unused volumes").add_argument(
        "-f", "--force", action="store_true")


# -- filesystem, usage and attach (registered by register_more) -------------------------------
@_guard
def cmd_diff(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import filesystem, service

    for kind, path in filesystem.diff(cfg, service.get(cfg, args.container)):
        print(f"{kind} {path}")
    return 0


@_guard
def cmd_commit(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import filesystem, service

    changes: dict[str, Any] = {}
    for change in args.change:
        key, _, value = change.partition(" ")
        key = key.upper()
        if key in ("CMD", "ENTRYPOINT"):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = ["/bin/sh", "-c", value]
            changes["Cmd" if key == "CMD" else "Entrypoint"] = parsed
        elif key == "ENV":
            changes.setdefault("Env", []).append(value.replace(" ", "=", 1)
                                                 if "=" not in value else value)
        elif key == "WORKDIR":
            changes["WorkingDir"] = value
        elif key == "USER":
            changes["User"] = value
        else:
            from tomato.errors import InvalidArgument

            raise InvalidArgument(f"{key} is not a valid change command")
    c = service.get(cfg, args.container)
    if "Env" in changes:
        from tomato.engine.images import inspect as image_inspect

        base_env = image_inspect(cfg, c.image_id).config.get("Env") or []
        changes["Env"] = base_env + changes["Env"]
    print(filesystem.commit(cfg, c, args.repository, comment=args.message, author=args.author,
                            changes=changes, pause=args.pause != "false"))
    return 0


@_guard
def cmd_cp(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import filesystem, service

    def split(arg: str) -> tuple[str | None, str]:
        if ":" in arg and not arg.startswith(("/", ".")):
            ref, _, path = arg.partition(":")
            return ref, path
        return None, arg

    src_ref, src = split(args.src)
    dst_ref, dst = split(args.dest)
    if (src_ref is None) == (dst_ref is None):
        from tomato.errors import InvalidArgument

        raise InvalidArgument("copying between containers or between host paths is not "
                              "supported; one side must be CONTAINER:PATH")
    if src_ref is not None:
        filesystem.copy_from(cfg, service.get(cfg, src_ref), src, dst,
                             out=sys.stdout.buffer if dst == "-" else None)
    else:
        assert dst_ref is not None
        filesystem.copy_to(cfg, service.get(cfg, dst_ref), src, dst,
                           stream=sys.stdin.buffer if src == "-" else None)
    return 0


@_guard
def cmd_export(args: argparse.Namespace, cfg: Any) -> int:
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
def cmd_top(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.cli.engine import print_table
    from tomato.engine import service, usage

    print_table(usage.top(cfg, service.get(cfg, args.container), list(args.ps_args)))
    return 0


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n}B"


@_guard
def cmd_stats(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.cli.engine import human_size
    from tomato.engine import service, usage

    refs = args.containers or [c.id for c in service.list_containers(cfg)]
    while True:
        rows = [["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                 "BLOCK I/O", "PIDS"]]
        for ref in refs:
            c = service.get(cfg, ref)
            if c.state.status not in ("running", "paused"):
                if args.containers:
                    raise TomatoError(f"container {c.short_id} is not running")
                continue
            s = usage.sample(cfg, c)
            rows.append([c.short_id, c.name, f"{s.cpu_percent:.2f}%",
                         f"{_human_bytes(s.mem_usage)} / {_human_bytes(s.mem_limit)}",
                         f"{s.mem_percent:.2f}%", "0B / 0B",
                         f"{human_size(s.block_read)} / {human_size(s.block_write)}",
                         str(s.pids)])
        if args.format == "json":
            keys = ["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"]
            for r in rows[1:]:
                print(json.dumps(dict(zip(keys, r, strict=False))))
        else:
            from tomato.cli.engine import print_table

            if not args.no_stream:
                sys.stdout.write("\033[2J\033[H")
            print_table(rows)
        sys.stdout.flush()
        if args.no_stream:
            return 0


@_guard
def cmd_update(args: argparse.Namespace, cfg: Any) -> int:
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
def cmd_attach(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.engine import service

    c = service.get(cfg, args.container)
    if c.state.status != "running":
        from tomato.errors import Conflict

        raise Conflict("You cannot attach to a stopped container, start it first")
    opts = argparse.Namespace(interactive=not args.no_stdin and c.options.get("interactive"),
                              tty=c.options.get("tty", False), sig_proxy=args.sig_proxy)
    return _attach_and_wait(cfg, c, opts)


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
    p.add_argument("container")
