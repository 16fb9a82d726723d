"""The body of ``POST /containers/create`` → the engine's RunOptions.

Docker's clients send the container config at the top level plus a
``HostConfig`` and ``NetworkingConfig``; this reads the fields Tomato
implements and validates through the same parsers as `tomato run`.
"""

from __future__ import annotations

from typing import Any

from tomato.engine import options as o
from tomato.errors import InvalidArgument


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise InvalidArgument(f"expected a list, got {type(value).__name__}")
    return value


def _ports(host: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, bindings in (host.get("PortBindings") or {}).items():
        port, _, proto = str(key).partition("/")
        if not port.isdigit():
            raise InvalidArgument(f"invalid port specification: {key!r}")
        for b in bindings or [{}]:
            host_port = str((b or {}).get("HostPort") or "0")
            if "-" in host_port:
                raise InvalidArgument(f"invalid port spec {key}: port ranges are not supported")
            if not host_port.isdigit():
                raise InvalidArgument(f"invalid hostPort: {host_port}")
            host_ip = (b or {}).get("HostIp") or ""
            out.append({"proto": proto or "tcp", "host_ip": "" if host_ip == "0.0.0.0" else host_ip,
                        "host_port": int(host_port), "container_port": int(port)})
    return out


def _mounts(host: dict[str, Any]) -> list[str]:
    out = []
    for m in host.get("Mounts") or []:
        kind = (m.get("Type") or "volume").lower()
        parts = [f"type={kind}", f"target={m.get('Target', '')}"]
        if m.get("Source"):
            parts.append(f"source={m['Source']}")
        if m.get("ReadOnly"):
            parts.append("readonly=true")
        size = (m.get("TmpfsOptions") or {}).get("SizeBytes")
        if size:
            parts.append(f"tmpfs-size={size}")
        out.append(",".join(parts))
        o.parse_mount(out[-1])  # the parser's messages for a bad mount
    return out


def _network(host: dict[str, Any], net_cfg: dict[str, Any], opts: o.RunOptions) -> None:
    mode = host.get("NetworkMode") or "default"
    opts.network = "bridge" if mode == "default" else mode
    endpoints = (net_cfg or {}).get("EndpointsConfig") or {}
    ep = endpoints.get(opts.network) or endpoints.get(mode) or \
        (next(iter(endpoints.values())) if len(endpoints) == 1 else {}) or {}
    opts.network_aliases = [a for a in _list(ep.get("Aliases"))]
    ipam = ep.get("IPAMConfig") or {}
    if ipam.get("IPv4Address"):
        opts.ip = ipam["IPv4Address"]
    opts.publish = _ports(host)
    opts.publish_all = bool(host.get("PublishAllPorts"))
    opts.dns = _list(host.get("Dns"))
    opts.dns_search = _list(host.get("DnsSearch"))
    opts.dns_options = _list(host.get("DnsOptions"))
    opts.add_hosts = [o.parse_add_host(h) for h in _list(host.get("ExtraHosts"))]


def run_options(body: dict[str, Any], name: str = "") -> o.RunOptions:
    if not isinstance(body, dict):
        raise InvalidArgument("the container config must be a JSON object")
    image = body.get("Image") or ""
    if not image:
        raise InvalidArgument("No image was specified.")  # Docker's wording
    host = body.get("HostConfig") or {}
    opts = o.RunOptions(image=image, name=name)
    opts.command = [str(a) for a in _list(body.get("Cmd"))]
    if body.get("Entrypoint") is not None:
        entry = [str(a) for a in _list(body.get("Entrypoint"))]
        opts.entrypoint = [] if entry == [""] else entry
    opts.env = [str(e) for e in _list(body.get("Env"))]
    opts.workdir = body.get("WorkingDir") or ""
    opts.user = body.get("User") or ""
    opts.hostname = body.get("Hostname") or ""
    opts.domainname = body.get("Domainname") or ""
    opts.tty = bool(body.get("Tty"))
    opts.interactive = bool(body.get("OpenStdin"))
    opts.detach = not (body.get("AttachStdout") or body.get("AttachStderr")
                       or body.get("AttachStdin"))
    opts.labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
    opts.stop_signal = body.get("StopSignal") or ""
    if body.get("StopTimeout") is not None:
        opts.stop_timeout = int(body["StopTimeout"])
    opts.expose = [str(p) if "/" in str(p) else f"{p}/tcp"
                   for p in (body.get("ExposedPorts") or {})]
    opts.volumes = [o.validate_volume(v) for v in _list(host.get("Binds"))]
    opts.volumes += [o.validate_volume(v) for v in (body.get("Volumes") or {})]
    opts.mounts = _mounts(host)
    opts.tmpfs = [f"{k}:{v}" if v else k for k, v in (host.get("Tmpfs") or {}).items()]
    opts.auto_remove = bool(host.get("AutoRemove"))
    policy = host.get("RestartPolicy") or {}
    name_ = policy.get("Name") or "no"
    count = int(policy.get("MaximumRetryCount") or 0)
    opts.restart, opts.restart_max = o.parse_restart(
        f"{name_}:{count}" if count and name_ == "on-failure" else name_)
    if opts.auto_remove and opts.restart != "no":
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
    nano = int(host.get("NanoCpus") or 0)
    quota, period = int(host.get("CpuQuota") or 0), int(host.get("CpuPeriod") or 0)
    if nano:
        opts.cpus = o.parse_cpus(str(nano / 1e9))
    elif quota > 0:
        opts.cpus = o.parse_cpus(str(quota / (period or 100000)))
    opts.cpu_shares = int(host.get("CpuShares") or 0)
    opts.cpuset_cpus = host.get("CpusetCpus") or ""
    opts.memory = int(host.get("Memory") or 0)
    opts.memory_swap = int(host.get("MemorySwap") or 0)
    opts.memory_reservation = int(host.get("MemoryReservation") or 0)
    opts.pids_limit = int(host.get("PidsLimit") or 0)
    if host.get("ShmSize"):
        opts.shm_size = int(host["ShmSize"])
    opts.privileged = bool(host.get("Privileged"))
    opts.read_only = bool(host.get("ReadonlyRootfs"))
    opts.cap_add = [str(c) for c in _list(host.get("CapAdd"))]
    opts.cap_drop = [str(c) for c in _list(host.get("CapDrop"))]
    opts.init = bool(host.get("Init"))
    opts.devices = [":".join(x for x in (d.get("PathOnHost", ""), d.get("PathInContainer", ""),
                                         d.get("CgroupPermissions", "")) if x)
                    for d in host.get("Devices") or []]
    opts.ulimits = [o.parse_ulimit(f"{u['Name']}={u['Soft']}:{u['Hard']}")
                    for u in host.get("Ulimits") or []]
    opts.sysctls = {str(k): str(v) for k, v in (host.get("Sysctls") or {}).items()}
    for sec in _list(host.get("SecurityOpt")):
        key, _, value = sec.partition("=" if "=" in sec else ":")
        if key == "seccomp":
            opts.seccomp = value
        elif key == "no-new-privileges":
            opts.no_new_privileges = value in ("", "true")
        elif key not in ("apparmor", "label"):
            raise InvalidArgument(f"invalid --security-opt: {sec}")
    log_cfg = (host.get("LogConfig") or {}).get("Config") or {}
    if log_cfg.get("max-size"):
        opts.log_max_size = o.parse_size(log_cfg["max-size"], "--log-opt max-size")
    if str(log_cfg.get("max-file", "")).isdigit():
        opts.log_max_file = max(1, int(log_cfg["max-file"]))
    size = host.get("ConsoleSize")
    if opts.tty and isinstance(size, list) and len(size) == 2 and all(size):
        opts.console_size = (int(size[0]), int(size[1]))
    _network(host, body.get("NetworkingConfig") or {}, opts)
    return opts
