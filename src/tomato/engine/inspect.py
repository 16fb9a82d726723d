"""`inspect` for containers: the JSON shape docker's CLI and docker-py read."""

from __future__ import annotations

from tomato.engine.containers import Container, Containers, iso
from tomato.engine.images import EngineConfig
from tomato.engine.namespaces import describe
from tomato.engine.options import RunOptions

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any


def container_json(cfg: EngineConfig, c: Container) -> dict[str, Any]:
    records = Containers(cfg.root)
    opts = RunOptions.from_dict(c.options)
    st = c.state
    proc = c.spec.get("process", {})
    args = proc.get("args", [])
    res = c.spec.get("linux", {}).get("resources", {})
    cpu = res.get("cpu", {})
    mem = res.get("memory", {})
    mounts = []
    for m in c.spec.get("mounts", []):
        if m.get("type") == "bind" and m["destination"] not in ("/etc/hosts", "/etc/hostname",
                                                                "/etc/resolv.conf"):
            volume = "/volumes/" in m["source"] and m["source"].endswith("/_data")
            mounts.append({
                "Type": "volume" if volume else "bind",
                **({"Name": m["source"].split("/")[-2], "Driver": "local"} if volume else {}),
                "Source": m["source"], "Destination": m["destination"],
                "Mode": "ro" if "ro" in m.get("options", []) else "",
                "RW": "ro" not in m.get("options", []), "Propagation": "rprivate"})
    rootfs = records.bundle(c.id) / "rootfs"
    from tomato.engine import health

    state_health = health.state_health(c.options, st.status == "running", records.path(c.id))
    lower = upper = work = ""
    try:
        from tomato.engine.images import rootfs_mounts

        overlay = rootfs_mounts(cfg, c.id)
        if overlay and overlay[0].type == "overlay":
            lower = ":".join(overlay[0].lowerdirs)
            upper = overlay[0].option("upperdir") or ""
            work = overlay[0].option("workdir") or ""
    except Exception:  # noqa: BLE001 — inspect still answers for a half-removed container
        pass
    return {
        "Id": c.id,
        "Created": iso(c.created),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": st.status,
            "Running": st.status in ("running", "paused", "restarting"),
            "Paused": st.status == "paused",
            "Restarting": st.status == "restarting",
            "OOMKilled": st.oom_killed,
            "Dead": st.status == "dead",
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": iso(st.started_at),
            "FinishedAt": iso(st.finished_at),
            **({"Health": state_health} if state_health is not None else {}),
        },
        "Image": c.image_id,
        "ResolvConfPath": str(records.path(c.id) / "resolv.conf"),
        "HostnamePath": str(records.path(c.id) / "hostname"),
        "HostsPath": str(records.path(c.id) / "hosts"),
        "LogPath": str(records.log_path(c.id)),
        "Name": "/" + c.name,
        "RestartCount": st.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "HostConfig": {
            "Binds": [v for v in opts.volumes if ":" in v] or None,
            "NetworkMode": opts.network,
            "PortBindings": _port_bindings(opts) or None,
            "PublishAllPorts": opts.publish_all,
            "Dns": opts.dns or None,
            "DnsSearch": opts.dns_search or None,
            "DnsOptions": opts.dns_options or None,
            "ExtraHosts": opts.add_hosts or None,
            "Links": [f"/{name}:/{c.name}/{alias}" for name, _, alias in
                      (link.partition(":") for link in opts.links)] or None,
            "RestartPolicy": {"Name": opts.restart, "MaximumRetryCount": opts.restart_max},
            "AutoRemove": opts.auto_remove,
            "Privileged": opts.privileged,
            "ReadonlyRootfs": opts.read_only,
            "CapAdd": opts.cap_add or None,
            "CapDrop": opts.cap_drop or None,
            "Memory": mem.get("limit", 0),
            "MemorySwap": mem.get("swap", 0),
            "MemoryReservation": mem.get("reservation", 0),
            "NanoCpus": int(opts.cpus * 1e9),
            "CpuShares": cpu.get("shares", 0),
            "CpuQuota": cpu.get("quota", 0),
            "CpuPeriod": cpu.get("period", 0),
            "CpusetCpus": cpu.get("cpus", ""),
            "CpusetMems": cpu.get("mems", ""),
            "CpuRealtimePeriod": opts.cpu_rt_period,
            "CpuRealtimeRuntime": opts.cpu_rt_runtime,
            "BlkioWeight": opts.blkio_weight,
            "BlkioWeightDevice": [{"Path": p, "Weight": w}
                                  for p, w in opts.blkio_weight_device],
            **{key: [{"Path": p, "Rate": r} for p, r in items] for key, items in (
                ("BlkioDeviceReadBps", opts.device_read_bps),
                ("BlkioDeviceWriteBps", opts.device_write_bps),
                ("BlkioDeviceReadIOps", opts.device_read_iops),
                ("BlkioDeviceWriteIOps", opts.device_write_iops))},
            "MemorySwappiness": None if opts.memory_swappiness == -1 else opts.memory_swappiness,
            "OomKillDisable": opts.oom_kill_disable,
            "OomScoreAdj": opts.oom_score_adj,
            "DeviceCgroupRules": opts.device_cgroup_rules or None,
            "CgroupParent": opts.cgroup_parent,
            "PidMode": opts.pid_mode,
            "IpcMode": opts.ipc_mode,
            "UTSMode": opts.uts_mode,
            "UsernsMode": opts.userns_mode,
            "CgroupnsMode": opts.cgroupns_mode or "private",
            "VolumesFrom": opts.volumes_from or None,
            "GroupAdd": opts.group_add or None,
            "PidsLimit": res.get("pids", {}).get("limit") or None,
            "ShmSize": opts.shm_size,
            "Tmpfs": {t.partition(":")[0]: t.partition(":")[2] for t in opts.tmpfs} or None,
            "Init": opts.init or None,
            "SecurityOpt": None,
            "LogConfig": {"Type": opts.log_driver, "Config": {}},
            "Runtime": opts.runtime,
            "Isolation": opts.isolation,
            "VolumeDriver": opts.volume_driver,
            "CpuCount": opts.cpu_count,
            "CpuPercent": opts.cpu_percent,
            "IOMaximumIOps": opts.io_max_iops,
            "IOMaximumBandwidth": opts.io_max_bandwidth,
            "DeviceRequests": None,
            **({"Annotations": dict(opts.annotations)} if opts.annotations else {}),
        },
        "GraphDriver": {"Name": "overlay2", "Data": {
            "LowerDir": lower, "UpperDir": upper, "WorkDir": work, "MergedDir": str(rootfs)}},
        "Mounts": mounts,
        "Config": {
            "Hostname": c.spec.get("hostname", ""),
            "Domainname": c.spec.get("domainname", ""),
            "User": opts.user,
            "AttachStdin": opts.interactive and not opts.detach,
            "AttachStdout": not opts.detach,
            "AttachStderr": not opts.detach,
            "Tty": opts.tty,
            "OpenStdin": opts.interactive,
            "StdinOnce": opts.interactive and not opts.detach,
            "Env": proc.get("env", []),
            "Cmd": opts.command or None,
            "Image": c.image,
            "Volumes": None,
            "WorkingDir": proc.get("cwd", "/") if opts.workdir else "",
            "Entrypoint": opts.entrypoint,
            "Labels": opts.labels,
            "StopSignal": c.spec.get("annotations", {}).get(
                "org.opencontainers.image.stopSignal", "SIGTERM"),
            **({"StopTimeout": opts.stop_timeout} if opts.stop_timeout is not None else {}),
            **({"Healthcheck": opts.healthcheck} if opts.healthcheck else {}),
            **({"Shell": c.options["shell"]} if c.options.get("shell") else {}),
        },
        "NetworkSettings": network_settings(cfg, c, opts),
        # Tomato's own (docker's clients ignore a key they do not know): every namespace,
        # its inode and who shares it (engine/namespaces.py)
        "Tomato": {"Namespaces": describe(cfg, c)},
    }


def _port_bindings(opts: RunOptions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in opts.publish:
        end = p.get("host_port_end")
        out.setdefault(f"{p['container_port']}/{p['proto']}", []).append(
            {"HostIp": p["host_ip"],
             "HostPort": f"{p['host_port']}-{end}" if end else str(p["host_port"] or "")})
    return out


def network_settings(cfg: EngineConfig, c: Container, opts: RunOptions) -> dict[str, Any]:
    """Docker's NetworkSettings: per-network endpoints, published ports, the sandbox."""
    from tomato.engine import networks

    nets: dict[str, Any] = {}
    ports: dict[str, Any] = {}
    sandbox = ""
    if networks.is_networked(opts.network):
        store = networks.Networks(cfg.root)
        nets = store.settings(c.id)
        sandbox = store.netns_path(c.id)
        for p in store.ports(c.id):
            ports.setdefault(f"{p['container_port']}/{p['proto']}", []).append(
                {"HostIp": p["host_ip"] or "0.0.0.0", "HostPort": str(p["host_port"])})
    elif opts.network.startswith("slirp4netns"):
        from tomato.engine import rootless_net

        sandbox, nets, ports = rootless_net.settings(cfg.root, c.id, opts.network,
                                                     list(opts.publish))
    elif not opts.network.startswith("container:"):
        nets = {opts.network: {"NetworkID": "", "IPAddress": "", "Gateway": "",
                               "MacAddress": "", "IPPrefixLen": 0}}
    for item in opts.expose:
        ports.setdefault(item, None)
    first: dict[str, Any] = next(iter(nets.values()), {})
    return {"Bridge": "", "SandboxKey": sandbox, "Ports": ports, "Networks": nets,
            "IPAddress": first.get("IPAddress", ""), "Gateway": first.get("Gateway", ""),
            "IPPrefixLen": first.get("IPPrefixLen", 0), "MacAddress": first.get("MacAddress", ""),
            "GlobalIPv6Address": first.get("GlobalIPv6Address", ""),
            "GlobalIPv6PrefixLen": first.get("GlobalIPv6PrefixLen", 0),
            "IPv6Gateway": first.get("IPv6Gateway", "")}
