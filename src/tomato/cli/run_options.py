"""The `tomato run` / `create` flag set: Docker's flags parsed into RunOptions,
with Docker's messages for bad values."""

from __future__ import annotations

import argparse
import os
import sys

from tomato.cli.usage import go_uint16

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.options import RunOptions


#: flags the docker client takes only when its daemon runs on Windows
WINDOWS_ONLY = ("--cpu-count", "--cpu-percent", "--io-maxbandwidth", "--io-maxiops")


def run_args(p: argparse.ArgumentParser) -> None:
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
    a("--network", "--net", action="append", default=[])
    a("-p", "--publish", action="append", default=[])
    a("-P", "--publish-all", action="store_true")
    a("--expose", action="append", default=[])
    a("--ip", default="")
    a("--ip6", default="")
    a("--link", action="append", default=[])
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
    a("--log-driver", default="json-file")
    a("-a", "--attach", action="append", default=[])
    a("--cidfile", default="")
    a("--label-file", action="append", default=[])
    a("--pull", default="missing")
    a("--platform", default="")
    a("--detach-keys", default="")
    a("-q", "--quiet", action="store_true")  # a pull says nothing here anyway
    a("--disable-content-trust", action="store_true", default=True)
    a("--health-cmd", default="")
    for flag in ("interval", "timeout", "start-period", "start-interval"):
        a(f"--health-{flag}")
    a("--health-retries", type=int, default=0)
    a("--no-healthcheck", action="store_true")
    a("--sig-proxy", default="true")
    # namespaces and cgroups (issue 19): engine/namespaces.py, specgen
    a("--pid", default="")
    a("--ipc", default="")
    a("--uts", default="")
    a("--userns", default="")
    a("--cgroupns", default="")
    a("--cgroup-parent", default="")
    a("--volumes-from", action="append", default=[])
    a("--group-add", action="append", default=[])
    a("--oom-kill-disable", action="store_true")
    a("--oom-score-adj", type=int, default=0)
    a("--memory-swappiness", type=int, default=-1)
    a("--cpu-period", type=int, default=0)
    a("--cpu-quota", type=int, default=0)
    a("--cpu-rt-period", type=int, default=0)
    a("--cpu-rt-runtime", type=int, default=0)
    a("--cpuset-mems", default="")
    a("--blkio-weight", type=go_uint16, default=0)
    a("--device-cgroup-rule", action="append", default=[])
    a("--device-read-iops", action="append", default=[])
    a("--device-write-iops", action="append", default=[])
    a("--blkio-weight-device", action="append", default=[])
    # the rest of `docker run --help`: engine/run_checks answers as dockerd
    a("--annotation", action="append", default=[])
    a("--runtime", default="runc")
    a("--isolation", default="")
    a("--storage-opt", action="append", default=[])
    a("--gpus", action="append", default=[])
    a("--volume-driver", default="")
    for flag in WINDOWS_ONLY:  # the docker client refuses them before asking the daemon
        a(flag)
    a("--kernel-memory", default="")  # ignored by dockerd since API 1.42: parsed, dropped
    a("--explain", action="store_const", const="summary",
      help="print the kernel steps grouped, with their shell equivalents (=full: every step)")
    a("--explain=full", dest="explain", action="store_const", const="full", help=argparse.SUPPRESS)
    a("image")
    a("command", nargs=argparse.REMAINDER)


def build_options(args: argparse.Namespace) -> RunOptions:
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
    opts.env.extend(o.validate_env(e) for e in args.env)
    if opts.pids_limit < 0:  # docker: zero or less is no limit
        opts.pids_limit = 0
    if args.entrypoint is not None:
        opts.entrypoint = [args.entrypoint] if args.entrypoint else []
    opts.volumes = [o.validate_volume(v) for v in args.volume]
    for spec in args.mount:
        _flag_value("--mount", spec, o.parse_mount)
    for spec in args.tmpfs:
        _check_tmpfs(spec)
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
    _namespace_and_cgroup_options(opts, args)
    for item in args.sysctl:
        _flag_value("--sysctl", item, _check_sysctl)
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
    _issue19_options(opts, args)
    from tomato.engine.health import from_flags

    opts.healthcheck = from_flags(
        args.health_cmd, {flag: getattr(args, "health_" + flag.replace("-", "_"))
                          for flag in ("interval", "timeout", "start-period", "start-interval")
                          if getattr(args, "health_" + flag.replace("-", "_")) is not None},
        args.health_retries, args.no_healthcheck)
    if opts.tty and os.isatty(0):
        from tomato.runtime.console import get_size

        opts.console_size = get_size(0)
    from tomato.engine.hostlimits import adapt

    for warning in adapt(opts):  # what this host's cgroups lack, as docker's CLI prints it
        print(f"WARNING: {warning}", file=sys.stderr)
    return opts  # the daemon's checks of the values together: service.create


def _issue19_options(opts: Any, args: argparse.Namespace) -> None:
    """--label-file, --pull, --platform, --log-driver/--log-opt, -a and --detach-keys."""
    from tomato.engine import options as o
    from tomato.engine.run_checks import check_run_extras

    for path in args.label_file:  # docker: the file's labels, then -l's over them
        file_labels = o.parse_key_values(read_label_file(path), "label")
        opts.labels = {**file_labels, **opts.labels}
    opts.pull, opts.platform, opts.log_driver = args.pull, args.platform, args.log_driver
    check_run_extras(opts)
    o.parse_log_opts(args.log_driver, args.log_opt, opts)
    check_attach(args.attach, args.detach)
    if not args.disable_content_trust:
        from tomato.errors import InvalidArgument

        raise InvalidArgument("content trust is not supported: an image is checked against "
                              "its digest, never signed (leave --disable-content-trust on)")
    if args.detach_keys:
        parse_detach_keys(args.detach_keys)


def read_label_file(path: str) -> list[str]:
    """docker's --label-file: KEY=VALUE (or KEY) lines, # comments and blank lines
    skipped."""
    from tomato.errors import InvalidArgument

    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().removeprefix("\ufeff").splitlines()
    except OSError as err:
        raise InvalidArgument(f"open {path}: {(err.strerror or str(err)).lower()}") from err
    except UnicodeDecodeError:
        raise InvalidArgument(f"label file {path} contains invalid utf8 bytes") from None
    out = []
    for line in lines:
        text = line.lstrip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("="):
            raise InvalidArgument(f"invalid label '{line}': no key")
        out.append(text if "=" in text else text + "=")
    return out


def check_attach(streams: list[str], detach: bool) -> set[str]:
    """-a STREAM: stdin, stdout, stderr (any case); not with -d."""
    from tomato.errors import InvalidArgument

    chosen = set()
    for name in streams:
        if name.lower() not in ("stdin", "stdout", "stderr"):
            raise InvalidArgument(f'invalid argument "{name}" for "-a, --attach" flag: valid '
                                  "streams are STDIN, STDOUT and STDERR")
        chosen.add(name.lower())
    if chosen and detach:
        raise InvalidArgument("conflicting options: cannot specify both --attach and --detach")
    return chosen


def parse_detach_keys(text: str) -> bytes:
    """docker's --detach-keys: comma separated ``ctrl-<c>`` (a-z, @, [, \\, ], ^, _)
    or single characters, e.g. the default ``ctrl-p,ctrl-q``."""
    from tomato.errors import InvalidArgument

    out = bytearray()
    for key in text.split(","):
        if key.lower().startswith("ctrl-") and len(key) == 6:
            c = key[5].lower()
            if c.isalpha() or c in "@[\\]^_":
                out.append(ord(c.upper() if c.isalpha() else c) & 0x1f)
                continue
        elif len(key) == 1 and key.isprintable():
            out.append(ord(key))
            continue
        raise InvalidArgument(f"Invalid detach keys ({text}) provided")
    return bytes(out)


def _namespace_and_cgroup_options(opts: Any, args: argparse.Namespace) -> None:
    """--pid/--ipc/--uts/--userns/--cgroupns, --volumes-from, --group-add and the cgroup
    flags of issue 19, with the docker client's checks (the daemon's: validate_resources)."""
    from tomato.engine import options as o
    from tomato.errors import InvalidArgument

    if args.memory_swappiness != -1 and not 0 <= args.memory_swappiness <= 100:
        raise InvalidArgument(f"invalid value: {args.memory_swappiness}. Valid memory "
                              "swappiness range is 0-100")
    opts.pid_mode = o.check_namespace_mode("--pid", args.pid)
    opts.uts_mode = o.check_namespace_mode("--uts", args.uts)
    opts.userns_mode = o.check_namespace_mode("--userns", args.userns)
    opts.cgroupns_mode = o.check_namespace_mode("--cgroupns", args.cgroupns)
    opts.ipc_mode = args.ipc or "private"  # the daemon's check: validate_resources
    opts.cgroup_parent = args.cgroup_parent
    for spec in args.volumes_from:
        o.parse_volumes_from(spec)
    opts.volumes_from = list(args.volumes_from)
    opts.group_add = list(args.group_add)
    opts.oom_kill_disable = args.oom_kill_disable
    opts.oom_score_adj = args.oom_score_adj
    opts.memory_swappiness = args.memory_swappiness
    opts.cpu_period, opts.cpu_quota = args.cpu_period, args.cpu_quota
    opts.cpu_rt_period, opts.cpu_rt_runtime = args.cpu_rt_period, args.cpu_rt_runtime
    opts.cpuset_mems = args.cpuset_mems
    opts.blkio_weight = args.blkio_weight
    for rule in args.device_cgroup_rule:
        _flag_value("--device-cgroup-rule", rule, o.parse_device_cgroup_rule,
                    f"invalid device cgroup format '{rule}'")
    opts.device_cgroup_rules = list(args.device_cgroup_rule)
    opts.device_read_iops = [_flag_value("--device-read-iops", d, o.parse_device_iops)
                             for d in args.device_read_iops]
    opts.device_write_iops = [_flag_value("--device-write-iops", d, o.parse_device_iops)
                              for d in args.device_write_iops]
    opts.blkio_weight_device = [_flag_value("--blkio-weight-device", d, o.parse_weight_device)
                                for d in args.blkio_weight_device]
    _docker_run_rest(opts, args)


def _docker_run_rest(opts: Any, args: argparse.Namespace) -> None:
    """--annotation, --runtime, --isolation, --storage-opt, --gpus, --volume-driver and
    the Windows-only flags, as the docker client parses them (the daemon's refusals:
    check_run_extras)."""
    from tomato.engine import options as o
    from tomato.errors import InvalidArgument

    opts.annotations = {key: value for key, _, value in
                        (item.partition("=") for item in args.annotation)}
    opts.runtime, opts.isolation = args.runtime, args.isolation
    for item in args.storage_opt:
        if "=" not in item:
            raise InvalidArgument("invalid storage option")
    opts.storage_opt = dict(item.split("=", 1) for item in args.storage_opt)
    opts.gpus = [_gpu_driver(value) for value in args.gpus]
    opts.volume_driver = args.volume_driver
    for flag in WINDOWS_ONLY:
        if getattr(args, flag[2:].replace("-", "_")) is not None:
            print(f'"{flag}" is only supported on a Docker daemon running on windows, but '
                  "the Docker daemon is running on linux", file=sys.stderr)
            raise SystemExit(1)  # the docker client's exit, before anything is asked
    if args.kernel_memory:
        o.parse_size(args.kernel_memory, "--kernel-memory")


def _gpu_driver(value: str) -> str:
    """The driver a --gpus request names ("" for any: `all`, a count, device=...)."""
    from tomato.errors import InvalidArgument

    fields = [f for f in value.split(",") if f]
    if not fields:
        raise InvalidArgument(f'invalid argument "{value}" for "--gpus" flag: empty request')
    return next((f.partition("=")[2] for f in fields if f.startswith("driver=")), "")


def _flag_value(flag: str, value: str, check: Any, reason: str = "") -> Any:
    """``check(value)``, its refusal worded as docker's flag errors:
    'invalid argument "V" for "--flag" flag: <reason>'."""
    from tomato.errors import InvalidArgument

    try:
        return check(value)
    except InvalidArgument as err:
        raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: '
                              f"{reason or err}") from None


_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
            "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _check_sysctl(item: str) -> None:
    """docker's ValidateSysctl: the namespaced sysctls it knows, nothing of the host's."""
    from tomato.errors import InvalidArgument

    key, sep, _ = item.partition("=")
    if not sep or not (key in _SYSCTLS or key.startswith(("net.", "fs.mqueue."))):
        raise InvalidArgument(f"sysctl '{item}' is not allowed")


def _check_tmpfs(spec: str) -> None:
    """moby's ValidateTmpfsMountDestination."""
    from tomato.errors import InvalidArgument

    dest = spec.partition(":")[0]
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid mount path: '{dest}' mount path must be absolute")
    if not dest.strip("/"):
        raise InvalidArgument("invalid specification: destination can't be '/'")


def _network_options(opts: RunOptions, args: argparse.Namespace) -> None:
    from tomato.engine.options import parse_add_host, parse_link, parse_network_attachment
    from tomato.errors import InvalidArgument
    from tomato.network import ports

    attachments = [parse_network_attachment(n) for n in args.network or ["bridge"]]
    mode = attachments[0]["name"]
    if mode == "container:" or mode.startswith("container:") and not mode[10:]:
        raise InvalidArgument("--network container: needs a container name or id")
    seen: set[str] = set()
    for item in attachments:  # docker's parseNetworkOpts
        if item["name"] in seen:
            raise InvalidArgument(f'network "{item["name"]}" is specified multiple times')
        seen.add(item["name"])
    builtin = [a["name"] for a in attachments
               if a["name"] in ("bridge", "host", "none") or a["name"].startswith("container:")]
    if len(attachments) > 1 and builtin:
        raise InvalidArgument("conflicting options: cannot attach both user-defined and "
                              "non-user-defined network-modes")
    opts.network = mode
    opts.extra_networks = attachments[1:]
    opts.publish = [spec.as_dict() for p in args.publish for spec in ports.parse_publish(p)]
    opts.publish_all = args.publish_all
    opts.expose = [f"{p}/{proto}" for item in args.expose
                   for p, proto in ports.parse_expose(item)]
    if args.ip or attachments[0]["ip"]:
        from tomato.network.ipam import parse_ip

        opts.ip = str(parse_ip(args.ip or attachments[0]["ip"]))
    if args.ip6 or attachments[0]["ip6"]:
        from tomato.network.ipam import parse_ip6

        opts.ip6 = str(parse_ip6(args.ip6 or attachments[0]["ip6"]))
    opts.links = [_flag_value("--link", item, parse_link) for item in args.link]
    if args.mac_address:
        from tomato.network.ipam import validate_mac

        opts.mac_address = validate_mac(args.mac_address)
    opts.network_aliases = [*args.network_alias, *attachments[0]["aliases"]]
    for server in args.dns:
        from tomato.network.ipam import parse_ip

        _flag_value("--dns", server, lambda v: parse_ip(v, "IP address for --dns"),
                    f"IP address is not correctly formatted: {server}")
    opts.dns = list(args.dns)
    opts.dns_search = list(args.dns_search)
    opts.dns_options = list(args.dns_option)
    opts.add_hosts = [_flag_value("--add-host", h, parse_add_host) for h in args.add_host]
    if mode.startswith("container:") and args.hostname:
        raise InvalidArgument("conflicting options: hostname and the network mode")
