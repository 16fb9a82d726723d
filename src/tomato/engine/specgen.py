"""Run options + an image's config → the OCI config.json Docker would generate.

Docker's defaults (moby's oci/defaults.go): its 14 capabilities, its seccomp
profile, masked and read-only /proc and /sys paths, a 64 MiB /dev/shm,
hostname = the short container id, and /etc/hosts, /etc/hostname and
/etc/resolv.conf bind-mounted from files the engine writes.
"""

from __future__ import annotations

import os
from pathlib import Path

from tomato.engine.options import RunOptions, parse_device_cgroup_rule
from tomato.errors import InvalidArgument, NotFound
from tomato.oci.defaults import MASKED_PATHS, READONLY_PATHS

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOCKER_MASKED = MASKED_PATHS
DOCKER_READONLY = READONLY_PATHS
STOP_SIGNAL_DEFAULT = "SIGTERM"
TINI = "/usr/bin/tini-static"


def docker_mounts(shm_size: int = 64 << 20) -> list[dict[str, Any]]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]},
    ]


def _atoi(text: str) -> int:
    """A passwd/group id field as docker's user library reads it (Go's Atoi, its error
    ignored): anything but an ASCII decimal integer is 0."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return 0
    return int(text)


def lookup_user(rootfs: Path, user: str) -> tuple[int, int, list[int]]:
    """USER as docker resolves it: name or uid, optional :group, from the image's files."""
    from tomato._sys.paths import read_in_root

    name, _, group = user.partition(":")

    def read(path: str) -> list[list[str]]:
        # the container may be running (exec -u): read through an fd resolved inside
        # its root, a regular file only (never a FIFO or device node it planted)
        try:
            text = read_in_root(str(rootfs), path).decode("utf-8", "surrogateescape")
        except OSError:
            return []
        return [line.split(":") for line in text.splitlines() if ":" in line]

    passwd, groups = read("/etc/passwd"), read("/etc/group")
    uid = gid = None
    if name.isascii() and name.isdigit():
        uid = int(name)
        for p in passwd:
            if len(p) > 3 and p[2] == name:
                gid = _atoi(p[3])
        gid = 0 if gid is None else gid
    else:
        for p in passwd:
            if len(p) > 3 and p[0] == name:
                uid, gid = _atoi(p[2]), _atoi(p[3])
                break
        if uid is None:
            raise NotFound(f"unable to find user {name}: no matching entries in passwd file")
    if group:
        if group.isascii() and group.isdigit():
            gid = int(group)
        else:
            match = [g for g in groups if len(g) > 2 and g[0] == group]
            if not match:
                raise NotFound(f"unable to find group {group}: no matching entries in group "
                               "file")
            gid = _atoi(match[0][2])
    member_name = name if not name.isdigit() else next(
        (p[0] for p in passwd if len(p) > 2 and p[2] == name), "")
    extra = sorted({_atoi(g[2]) for g in groups
                    if len(g) > 3 and member_name and member_name in g[3].split(",")
                    and _atoi(g[2]) != gid})
    assert uid is not None and gid is not None
    return uid, gid, extra


def build_spec(opts: RunOptions, image_config: dict[str, Any], cid: str, rootfs: Path,
               files: dict[str, Path], volume_mounts: list[dict[str, Any]],
               cgroup_parent: str, netns_path: str = "", joins: dict[str, str] | None = None,
               shm: dict[str, Any] | None = None) -> dict[str, Any]:
    """The complete config.json for one container.

    ``netns_path``: the network namespace to join (prepared by the engine: the
    runtime knows nothing of networks); none: a fresh one with only lo.  ``joins``:
    the pid/ipc namespaces a ``container:`` mode joins; ``shm``: the /dev/shm bind of
    a shareable/host/container IPC mode (engine/namespaces.py)."""
    from tomato.engine.namespaces import spec_namespaces
    from tomato.oci.security_defaults import DOCKER_DEFAULT_CAPS, docker_default_seccomp

    cfg = image_config or {}
    entrypoint = opts.entrypoint if opts.entrypoint is not None else (cfg.get("Entrypoint") or [])
    if opts.entrypoint is not None:
        cmd = opts.command  # --entrypoint resets the image's CMD, as in docker
    else:
        cmd = opts.command or cfg.get("Cmd") or []
    args = list(entrypoint) + list(cmd)
    if not args:
        raise InvalidArgument("no command specified")
    if opts.init:
        if not os.path.exists(TINI):
            raise NotFound(f"--init needs {TINI} (apt-get install tini)")
        args = ["/sbin/docker-init", "--", *args]

    env: dict[str, str] = {}
    for item in [DEFAULT_PATH, *(cfg.get("Env") or []), f"HOSTNAME={opts.hostname or cid[:12]}",
                 *(["TERM=xterm"] if opts.tty else []), *opts.env]:
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
        elif key in os.environ:  # `-e NAME` takes the value from the caller's environment
            env[key] = os.environ[key]
    user = opts.user or cfg.get("User") or "root"
    uid, gid, extra = lookup_user(rootfs, user) if user not in ("root", "0", "0:0") else (0, 0, [])
    if opts.group_add:
        extra = sorted(set(extra) | set(additional_groups(rootfs, opts.group_add)))
    cwd = opts.workdir or cfg.get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"the working directory '{cwd}' is invalid, it needs to be an "
                              "absolute path")

    caps = _capabilities(opts, DOCKER_DEFAULT_CAPS)
    process: dict[str, Any] = {
        "terminal": opts.tty,
        "user": {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})},
        "args": args,
        "env": [f"{k}={v}" for k, v in env.items()],
        "cwd": cwd,
        "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": opts.no_new_privileges,
        "rlimits": [_rlimit(u) for u in opts.ulimits],
    }
    if opts.oom_score_adj:
        process["oomScoreAdj"] = opts.oom_score_adj
    if opts.tty and opts.console_size:
        process["consoleSize"] = {"height": opts.console_size[0], "width": opts.console_size[1]}

    mounts = docker_mounts(opts.shm_size)
    if shm is not None or opts.ipc_mode == "none":  # Docker's IPC modes (namespaces.py)
        mounts = [m for m in mounts if m["destination"] != "/dev/shm"]
        mounts.extend([shm] if shm is not None else [])
    if opts.privileged:
        for m in mounts:
            if m["destination"] in ("/sys", "/sys/fs/cgroup"):
                m["options"] = [o for o in m["options"] if o != "ro"]
    for name in ("hosts", "hostname", "resolv.conf"):
        if name in files:
            mounts.append({"destination": f"/etc/{name}", "type": "bind",
                           "source": str(files[name]), "options": ["rbind", "rprivate"]})
    if opts.init:
        mounts.append({"destination": "/sbin/docker-init", "type": "bind", "source": TINI,
                       "options": ["rbind", "ro"]})
    for t in opts.tmpfs:
        dest, _, topts = t.partition(":")
        options = ["nosuid", "nodev", "noexec"] + ([o for o in topts.split(",") if o] or [])
        mounts.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                       "options": options})
    mounts.extend(volume_mounts)

    namespaces = spec_namespaces(opts, joins or {}, netns_path, opts.network)
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": opts.read_only},
        "mounts": mounts,
        "hooks": {},
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": f"{opts.cgroup_parent or cgroup_parent}/{cid}",
            "resources": _resources(opts),
            "maskedPaths": [] if opts.privileged else list(DOCKER_MASKED),
            "readonlyPaths": [] if opts.privileged else list(DOCKER_READONLY),
            "devices": [*(host_devices() if opts.privileged else []),
                        *(_device(d) for d in opts.devices)],
            "sysctl": dict(opts.sysctls),
        },
        "annotations": {**opts.annotations, "org.opencontainers.image.stopSignal":
                        opts.stop_signal or cfg.get("StopSignal") or STOP_SIGNAL_DEFAULT},
    }
    if opts.uts_mode != "host":  # the host's UTS namespace keeps the host's names
        spec["hostname"] = opts.hostname or cid[:12]
        if opts.domainname:
            spec["domainname"] = opts.domainname
    seccomp = _seccomp(opts, caps, docker_default_seccomp)
    if seccomp is not None:
        spec["linux"]["seccomp"] = seccomp
    return spec


def _all_we_hold() -> list[str]:
    """Every capability this engine itself holds: what --privileged and ALL grant
    (root here lacks CAP_SYS_RESOURCE, and a container cannot get more than we have)."""
    from tomato._sys import caps as capmod

    _eff, permitted, _inh = capmod.capget()
    return [capmod.CAP_NAMES[i] for i in sorted(permitted) if i < len(capmod.CAP_NAMES)]


def _capabilities(opts: RunOptions, defaults: tuple[str, ...]) -> list[str]:
    from tomato._sys import caps as capmod

    if opts.privileged:
        return _all_we_hold()

    def norm(name: str) -> str:
        n = name.upper()
        return n if n.startswith("CAP_") or n == "ALL" else "CAP_" + n

    adds = [norm(c) for c in opts.cap_add]
    drops = [norm(c) for c in opts.cap_drop]
    capmod.parse([c for c in adds + drops if c != "ALL"])  # unknown names → clear error
    caps = [] if "ALL" in drops else list(defaults)
    if "ALL" in adds:
        caps = _all_we_hold()
    caps = [c for c in caps if c not in drops] + [c for c in adds if c != "ALL"]
    return sorted(set(caps))


def _seccomp(opts: RunOptions, caps: list[str], default: Any) -> dict[str, Any] | None:
    profile = opts.seccomp
    if opts.privileged or profile == "unconfined":
        return None
    if profile in ("", "default", "builtin"):
        result: dict[str, Any] = default(caps)
        return result
    import json

    try:
        with open(profile) as f:
            raw: dict[str, Any] = json.load(f)
    except OSError as err:
        raise InvalidArgument(f"opening seccomp profile ({profile}) failed: {err.strerror}") \
            from err
    except ValueError as err:
        raise InvalidArgument(f"decoding seccomp profile failed: {err}") from err
    conditional = any("includes" in c or "excludes" in c for c in raw.get("syscalls") or [])
    if "archMap" in raw or conditional:
        from tomato.oci.security_defaults import host_arch, resolve_profile

        return resolve_profile(raw, caps, host_arch())
    return raw


def _rlimit(spec: str) -> dict[str, Any]:
    name, _, values = spec.partition("=")
    soft, _, hard = values.partition(":")
    kind = "RLIMIT_" + name.upper().replace("-", "")
    try:
        s = int(soft)
        h = int(hard) if hard else s
    except ValueError:
        raise InvalidArgument(f"invalid ulimit argument: {spec}") from None
    return {"type": kind, "soft": s, "hard": h}


def _device(spec: str) -> dict[str, Any]:
    parts = spec.split(":")
    host = parts[0]
    dest = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
    try:
        st = os.stat(host)
    except OSError as err:
        raise InvalidArgument(f"error gathering device information while adding custom "
                              f"device \"{host}\": {err.strerror}") from err
    import stat

    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"{host} is not a device node")
    return {"path": dest, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": st.st_mode & 0o777, "uid": 0, "gid": 0}


def _resources(opts: RunOptions) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if opts.privileged:
        res["devices"] = [{"allow": True, "access": "rwm"}]
    for d in opts.devices:
        dev = _device(d)
        access = d.split(":")[2] if d.count(":") >= 2 else "rwm"
        res["devices"].append({"allow": True, "type": dev["type"], "major": dev["major"],
                               "minor": dev["minor"], "access": access})
    res["devices"].extend(parse_device_cgroup_rule(r) for r in opts.device_cgroup_rules)
    mem: dict[str, Any] = {}
    if opts.memory_swappiness != -1:
        mem["swappiness"] = opts.memory_swappiness
    if opts.oom_kill_disable:
        mem["disableOOMKiller"] = True
    if opts.memory:
        mem["limit"] = opts.memory
    if opts.memory_swap:
        mem["swap"] = opts.memory_swap
    if opts.memory_reservation:
        mem["reservation"] = opts.memory_reservation
    if mem:
        res["memory"] = mem
    cpu: dict[str, Any] = {}
    if opts.cpus:
        cpu["period"] = 100000
        cpu["quota"] = int(opts.cpus * 100000)
    if opts.cpu_shares:
        cpu["shares"] = opts.cpu_shares
    if opts.cpu_period:
        cpu["period"] = opts.cpu_period
    if opts.cpu_quota:
        cpu["quota"] = opts.cpu_quota
    if opts.cpu_rt_period:
        cpu["realtimePeriod"] = opts.cpu_rt_period
    if opts.cpu_rt_runtime:
        cpu["realtimeRuntime"] = opts.cpu_rt_runtime
    if opts.cpuset_cpus:
        cpu["cpus"] = opts.cpuset_cpus
    if opts.cpuset_mems:
        cpu["mems"] = opts.cpuset_mems
    if cpu:
        res["cpu"] = cpu
    if opts.pids_limit:
        res["pids"] = {"limit": opts.pids_limit}
    throttle: dict[str, list[dict[str, int]]] = {}
    for key, items in (("throttleReadBpsDevice", opts.device_read_bps),
                       ("throttleWriteBpsDevice", opts.device_write_bps),
                       ("throttleReadIOPSDevice", opts.device_read_iops),
                       ("throttleWriteIOPSDevice", opts.device_write_iops)):
        for path, rate in items:
            major, minor = _block_device(path)
            throttle.setdefault(key, []).append({"major": major, "minor": minor, "rate": rate})
    block: dict[str, Any] = dict(throttle)
    if opts.blkio_weight:
        block["weight"] = opts.blkio_weight
    for path, weight in opts.blkio_weight_device:
        major, minor = _block_device(path)
        block.setdefault("weightDevice", []).append({"major": major, "minor": minor,
                                                     "weight": weight})
    if block:
        res["blockIO"] = block
    return res


def additional_groups(rootfs: Path, groups: list[str]) -> list[int]:
    """--group-add: gids, or names from the image's /etc/group (moby's
    GetAdditionalGroups: a number need not be listed; a name must)."""
    from tomato._sys.paths import read_in_root

    try:
        text = read_in_root(str(rootfs), "/etc/group").decode("utf-8", "surrogateescape")
    except OSError:
        text = ""
    by_name: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            by_name.setdefault(fields[0], int(fields[2]))
    out = []
    for group in groups:
        if group in by_name:
            out.append(by_name[group])
        elif group.isdigit() and group.isascii() and int(group) < 1 << 31:
            out.append(int(group))
        else:
            raise NotFound(f"unable to find group {group}: no matching entries in group file")
    return out


#: what /dev holds that is not a device to give (containerd's HostDevices skips these)
_NOT_DEVICES = ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev")


def host_devices(top: str = "/dev") -> list[dict[str, Any]]:
    """--privileged: every device node of the host's /dev, as Docker gives them
    (containerd's oci.HostDevices: /dev/console and the directories above left out)."""
    import stat

    out: list[dict[str, Any]] = []
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in _NOT_DEVICES:
                out.extend(host_devices(entry.path))
            continue
        if entry.path == "/dev/console":
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else ""
        if kind:
            out.append({"path": entry.path, "type": kind, "major": os.major(st.st_rdev),
                        "minor": os.minor(st.st_rdev), "fileMode": st.st_mode & 0o777,
                        "uid": st.st_uid, "gid": st.st_gid})
    return out


def _block_device(path: str) -> tuple[int, int]:
    """A throttled or weighted device's numbers (moby's getBlkioThrottleDevices: a path
    that is no device is refused by name)."""
    import stat

    try:
        st = os.stat(path)
    except OSError as err:
        raise InvalidArgument(f"error gathering device information for {path}: "
                              f"{(err.strerror or '').lower()}") from err
    if not stat.S_ISBLK(st.st_mode) and not stat.S_ISCHR(st.st_mode):
        raise InvalidArgument(f"{path} is not a device node")
    return os.major(st.st_rdev), os.minor(st.st_rdev)
