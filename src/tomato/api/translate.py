"""The body of ``POST /containers/create`` → the engine's RunOptions.

Docker's clients send the container config at the top level plus a
``HostConfig`` and ``NetworkingConfig``; this reads the fields Tomato
implements, each with its type (body.Fields: a wrong one is a 400 naming the
field), and validates through the same parsers as `tomato run`.
"""

from __future__ import annotations

from typing import Any

from tomato.api.body import Fields
from tomato.engine import options as o
from tomato.engine.run_checks import check_run_extras
from tomato.errors import InvalidArgument
from tomato.network.ports import port_range

MIN_MEMORY = 6 << 20  # Docker's "Minimum memory limit allowed is 6MB"


def _ports(host: Fields) -> list[dict[str, Any]]:
    out = []
    bindings_of = host.obj("PortBindings")
    for key in bindings_of.data:
        port, _, proto = str(key).partition("/")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidArgument(f"invalid port specification: {key!r}")
        for b in bindings_of.objs(key) or [Fields({})]:
            host_port = b.text("HostPort") or "0"
            first, last = port_range(host_port, "hostPort", allow_zero=True)
            host_ip = b.text("HostIp")
            item = {"proto": proto or "tcp", "host_ip": "" if host_ip == "0.0.0.0" else host_ip,
                    "host_port": first, "container_port": int(port)}
            if last != first:  # "8000-8010": the first free port of the range
                item["host_port_end"] = last
            out.append(item)
    return out


def _mounts(host: Fields) -> list[str]:
    out = []
    for m in host.objs("Mounts"):
        kind = (m.text("Type") or "volume").lower()
        parts = [f"type={kind}", f"target={m.text('Target')}"]
        if m.text("Source"):
            parts.append(f"source={m.text('Source')}")
        if m.boolean("ReadOnly"):
            parts.append("readonly=true")
        size = m.obj("TmpfsOptions").integer("SizeBytes")
        if size:
            parts.append(f"tmpfs-size={size}")
        out.append(",".join(parts))
        o.parse_mount(out[-1])  # the parser's messages for a bad mount
    return out


def _network(host: Fields, net_cfg: Fields, opts: o.RunOptions) -> None:
    """NetworkMode and NetworkingConfig.EndpointsConfig: its entry for the mode sets the
    first network's address and aliases; API 1.44 sends one entry a network, the
    others are attached too (as repeated --network)."""
    mode = host.text("NetworkMode") or "default"
    opts.network = "bridge" if mode == "default" else mode
    endpoints = net_cfg.obj_map("EndpointsConfig")
    ep = endpoints.get(opts.network) or endpoints.get(mode) or \
        (next(iter(endpoints.values())) if len(endpoints) == 1 else Fields({}))
    opts.network_aliases = ep.texts("Aliases", lone=True)
    ipam = ep.obj("IPAMConfig")
    if ipam.text("IPv4Address"):
        opts.ip = ipam.text("IPv4Address")
    if ipam.text("IPv6Address"):
        opts.ip6 = ipam.text("IPv6Address")
    opts.extra_networks = [
        {"name": name, "ip": e.obj("IPAMConfig").text("IPv4Address"),
         "ip6": e.obj("IPAMConfig").text("IPv6Address"), "aliases": e.texts("Aliases", lone=True)}
        for name, e in endpoints.items() if name not in (opts.network, mode)]
    opts.links = [o.parse_link(link) for link in host.texts("Links", lone=True)]
    opts.publish = _ports(host)
    opts.publish_all = host.boolean("PublishAllPorts")
    opts.dns = host.texts("Dns", lone=True)
    opts.dns_search = host.texts("DnsSearch", lone=True)
    opts.dns_options = host.texts("DnsOptions", lone=True)
    opts.add_hosts = [o.parse_add_host(h) for h in host.texts("ExtraHosts", lone=True)]


def _non_negative(host: Fields, key: str) -> int:
    value = host.integer(key)
    if value < 0:
        raise InvalidArgument(f"invalid {key}: {value} (must not be negative)")
    return value


def run_options(body: Any, name: str = "") -> o.RunOptions:
    config = body if isinstance(body, Fields) else Fields(body, "")
    image = config.text("Image")
    if not image:
        raise InvalidArgument("No image was specified.")  # Docker's wording
    host = config.obj("HostConfig")
    opts = o.RunOptions(image=image, name=name)
    opts.command = config.texts("Cmd", lone=True)
    if config.has("Entrypoint"):
        entry = config.texts("Entrypoint", lone=True)
        opts.entrypoint = [] if entry == [""] else entry
    opts.env = config.texts("Env")
    opts.workdir = config.text("WorkingDir")
    opts.user = config.text("User")
    opts.hostname = config.text("Hostname")
    opts.domainname = config.text("Domainname")
    opts.tty = config.boolean("Tty")
    opts.interactive = config.boolean("OpenStdin")
    opts.detach = not (config.boolean("AttachStdout") or config.boolean("AttachStderr")
                       or config.boolean("AttachStdin"))
    opts.labels = config.text_map("Labels")
    opts.stop_signal = config.text("StopSignal")
    opts.stop_timeout = config.optional_integer("StopTimeout")
    opts.expose = [p if "/" in p else f"{p}/tcp" for p in config.names("ExposedPorts")]
    opts.volumes = [o.validate_volume(v) for v in host.texts("Binds")]
    opts.volumes += [o.validate_volume(v) for v in config.names("Volumes")]
    opts.mounts = _mounts(host)
    opts.tmpfs = [f"{k}:{v}" if v else k for k, v in host.text_map("Tmpfs").items()]
    opts.auto_remove = host.boolean("AutoRemove")
    policy = host.obj("RestartPolicy")
    name_ = policy.text("Name") or "no"
    count = policy.integer("MaximumRetryCount")
    opts.restart, opts.restart_max = o.parse_restart(
        f"{name_}:{count}" if count and name_ == "on-failure" else name_)
    if opts.auto_remove and opts.restart != "no":
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
    nano = _non_negative(host, "NanoCpus")
    if nano:
        opts.cpus = o.parse_cpus(str(nano / 1e9))
    opts.cpu_quota, opts.cpu_period = host.integer("CpuQuota"), host.integer("CpuPeriod")
    opts.cpu_shares = _non_negative(host, "CpuShares")
    opts.cpuset_cpus = host.text("CpusetCpus")
    opts.memory = _non_negative(host, "Memory")
    if 0 < opts.memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    opts.memory_swap = host.integer("MemorySwap")
    opts.memory_reservation = _non_negative(host, "MemoryReservation")
    opts.pids_limit = host.integer("PidsLimit")
    if host.has("ShmSize"):
        opts.shm_size = _non_negative(host, "ShmSize") or opts.shm_size
    opts.privileged = host.boolean("Privileged")
    opts.read_only = host.boolean("ReadonlyRootfs")
    opts.cap_add = host.texts("CapAdd", lone=True)
    opts.cap_drop = host.texts("CapDrop", lone=True)
    opts.init = host.boolean("Init")
    opts.devices = [":".join(x for x in (d.text("PathOnHost"), d.text("PathInContainer"),
                                         d.text("CgroupPermissions")) if x)
                    for d in host.objs("Devices")]
    opts.ulimits = [o.parse_ulimit(f"{u.text('Name')}={u.integer('Soft')}:{u.integer('Hard')}")
                    for u in host.objs("Ulimits")]
    opts.sysctls = host.text_map("Sysctls")
    for sec in host.texts("SecurityOpt"):
        key, _, value = sec.partition("=" if "=" in sec else ":")
        if key == "seccomp":
            opts.seccomp = value
        elif key == "no-new-privileges":
            opts.no_new_privileges = value in ("", "true")
        elif key not in ("apparmor", "label"):
            raise InvalidArgument(f"invalid --security-opt: {sec}")
    log = host.obj("LogConfig")
    opts.log_driver = log.text("Type") or "json-file"
    check_run_extras(opts)
    o.parse_log_opts(opts.log_driver, [f"{k}={v}" for k, v in log.text_map("Config").items()],
                     opts)
    size = host.integers("ConsoleSize")
    if opts.tty and len(size) == 2 and all(n > 0 for n in size):
        opts.console_size = (size[0], size[1])
    if config.has("Healthcheck"):
        hc = config.obj("Healthcheck")
        given = {"Test": hc.texts("Test"), **{key: hc.integer(key) for key in (
            "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")}}
        opts.healthcheck = {k: v for k, v in given.items() if v}
    _network(host, config.obj("NetworkingConfig"), opts)
    _namespaces_and_cgroups(host, opts)
    _docker_run_rest(host, opts)
    return opts


def _docker_run_rest(host: Fields, opts: o.RunOptions) -> None:
    """HostConfig's Annotations, Runtime, Isolation, StorageOpt, DeviceRequests,
    VolumeDriver and the Windows-only fields (refused or kept: the engine's create runs
    run_checks.check_run_extras on them)."""
    opts.annotations = host.text_map("Annotations")
    opts.runtime = host.text("Runtime") or "runc"
    opts.isolation = host.text("Isolation")
    opts.storage_opt = host.text_map("StorageOpt")
    opts.gpus = [d.text("Driver") for d in host.objs("DeviceRequests")]
    opts.volume_driver = host.text("VolumeDriver")
    opts.cpu_count = _non_negative(host, "CpuCount")
    opts.cpu_percent = _non_negative(host, "CpuPercent")
    opts.io_max_bandwidth = _non_negative(host, "IOMaximumBandwidth")
    opts.io_max_iops = _non_negative(host, "IOMaximumIOps")


#: the daemon's words for a mode its client would have refused (moby's WithNamespaces)
_MODES = (("PidMode", "pid_mode", "--pid", "invalid PID mode"),
          ("UTSMode", "uts_mode", "--uts", "invalid UTS mode"),
          ("UsernsMode", "userns_mode", "--userns", "invalid userns mode"),
          ("CgroupnsMode", "cgroupns_mode", "--cgroupns", "invalid cgroup namespace mode"))


def _namespaces_and_cgroups(host: Fields, opts: o.RunOptions) -> None:
    """Issue 19's HostConfig fields: the namespace modes, --volumes-from, --group-add and
    the cgroup settings (checked together by the daemon's validate_resources)."""
    for key, attr, flag, words in _MODES:
        value = host.text(key)
        try:
            setattr(opts, attr, o.check_namespace_mode(flag, value))
        except InvalidArgument:
            raise InvalidArgument(f"{words}: {value}") from None
    opts.ipc_mode = host.text("IpcMode") or "private"
    opts.cgroup_parent = host.text("CgroupParent")
    opts.volumes_from = host.texts("VolumesFrom", lone=True)
    for spec in opts.volumes_from:
        o.parse_volumes_from(spec)
    opts.group_add = host.texts("GroupAdd", lone=True)
    opts.oom_kill_disable = host.boolean("OomKillDisable")
    opts.oom_score_adj = host.integer("OomScoreAdj")
    swappiness = host.optional_integer("MemorySwappiness")
    opts.memory_swappiness = -1 if swappiness is None else swappiness
    opts.cpu_rt_period = host.integer("CpuRealtimePeriod")
    opts.cpu_rt_runtime = host.integer("CpuRealtimeRuntime")
    opts.cpuset_mems = host.text("CpusetMems")
    opts.blkio_weight = host.integer("BlkioWeight")
    opts.device_cgroup_rules = host.texts("DeviceCgroupRules", lone=True)
    rates = {key: [(d.text("Path"), d.integer("Rate")) for d in host.objs(key)]
             for key in ("BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
                         "BlkioDeviceWriteIOps")}
    opts.device_read_bps, opts.device_write_bps = rates["BlkioDeviceReadBps"], \
        rates["BlkioDeviceWriteBps"]
    opts.device_read_iops, opts.device_write_iops = rates["BlkioDeviceReadIOps"], \
        rates["BlkioDeviceWriteIOps"]
    opts.blkio_weight_device = [o.parse_weight_device(f"{d.text('Path')}:{d.integer('Weight')}")
                                for d in host.objs("BlkioWeightDevice")]
    for path, rate in [*opts.device_read_bps, *opts.device_write_bps, *opts.device_read_iops,
                       *opts.device_write_iops]:
        if not path.startswith("/") or rate < 0:
            raise InvalidArgument(f"invalid device rate: {path}:{rate}")
