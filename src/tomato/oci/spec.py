"""The OCI runtime spec (config.json) as frozen dataclasses.

``parse_spec`` turns the decoded JSON into a ``Spec`` and validates it in
one pass, raising InvalidArgument that names the offending field.  Sections
that other packages own (``linux.resources`` for cgroups, ``linux.seccomp``
for security) stay as their raw mapping here and are parsed by their owner.
"""

from __future__ import annotations

from tomato.errors import InvalidArgument
from tomato.records import field, record

TYPE_CHECKING = False  # importing typing costs ~2 ms on the start path
if TYPE_CHECKING:
    from typing import Any

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

RLIMIT_NAMES = (
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
)

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")

PROPAGATIONS = ("", "private", "rprivate", "slave", "rslave", "shared", "rshared",
                "unbindable", "runbindable")


@record
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()
    username: str = ""


@record
class Rlimit:
    type: str
    soft: int
    hard: int


@record
class Process:
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    terminal: bool = False
    user: User = field(default_factory=User)
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    capabilities: dict[str, list[str]] | None = None
    apparmor_profile: str = ""
    selinux_label: str = ""
    console_size: tuple[int, int] | None = None  # (height, width)


@record
class Mount:
    destination: str
    type: str = ""
    source: str = ""
    options: tuple[str, ...] = ()


@record
class Hook:
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


@record
class Namespace:
    type: str
    path: str = ""


@record
class IdMapping:
    container_id: int
    host_id: int
    size: int


@record
class Device:
    path: str
    type: str
    major: int
    minor: int
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@record
class Linux:
    namespaces: tuple[Namespace, ...] = ()
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()
    devices: tuple[Device, ...] = ()
    cgroups_path: str = ""
    resources: dict[str, Any] | None = None
    sysctl: dict[str, str] = field(default_factory=dict)
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    rootfs_propagation: str = ""
    seccomp: dict[str, Any] | None = None
    mount_label: str = ""
    time_offsets: dict[str, dict[str, int]] = field(default_factory=dict)

    def namespace(self, kind: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == kind:
                return ns
        return None


@record
class Spec:
    oci_version: str
    root_path: str
    root_readonly: bool = False
    process: Process | None = None
    hostname: str = ""
    domainname: str = ""
    mounts: tuple[Mount, ...] = ()
    hooks: dict[str, tuple[Hook, ...]] = field(default_factory=dict)
    linux: Linux = field(default_factory=Linux)
    annotations: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- parsing


def _obj(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"config.json: {where} must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"config.json: {where} must be an array")
    return value


def _str(value: Any, where: str, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidArgument(f"config.json: {where} must be a string")
    return value


def _int(value: Any, where: str, default: int | None = None, minimum: int | None = None) -> int:
    if value is None:
        if default is None:
            raise InvalidArgument(f"config.json: {where} is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"config.json: {where} must be an integer")
    if minimum is not None and value < minimum:
        raise InvalidArgument(f"config.json: {where} must be >= {minimum}, got {value}")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    return tuple(_str(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where)))


def _abs(path: str, where: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"config.json: {where} must be an absolute path, got {path!r}")
    return path


def parse_process(raw: Any, where: str = "process") -> Process:
    p = _obj(raw, where)
    args = _strings(p.get("args"), f"{where}.args")
    if not args:
        raise InvalidArgument(f"config.json: {where}.args must not be empty")
    u = _obj(p.get("user"), f"{where}.user")
    umask = u.get("umask")
    user = User(
        uid=_int(u.get("uid"), f"{where}.user.uid", 0, 0),
        gid=_int(u.get("gid"), f"{where}.user.gid", 0, 0),
        umask=None if umask is None else _int(umask, f"{where}.user.umask", minimum=0),
        additional_gids=tuple(_int(g, f"{where}.user.additionalGids", minimum=0)
                              for g in _list(u.get("additionalGids"), f"{where}.user")),
        username=_str(u.get("username"), f"{where}.user.username"),
    )
    rlimits = []
    seen = set()
    for i, r in enumerate(_list(p.get("rlimits"), f"{where}.rlimits")):
        r = _obj(r, f"{where}.rlimits[{i}]")
        kind = _str(r.get("type"), f"{where}.rlimits[{i}].type")
        if kind not in RLIMIT_NAMES:
            raise InvalidArgument(f"config.json: unknown rlimit type {kind!r}")
        if kind in seen:
            raise InvalidArgument(f"config.json: rlimit {kind} given twice")
        seen.add(kind)
        soft = _int(r.get("soft"), f"{kind}.soft", minimum=0)
        hard = _int(r.get("hard"), f"{kind}.hard", minimum=0)
        if soft > hard:
            raise InvalidArgument(f"config.json: rlimit {kind} soft {soft} exceeds hard {hard}")
        rlimits.append(Rlimit(kind, soft, hard))
    caps = p.get("capabilities")
    if caps is not None:
        caps = {k: list(_strings(v, f"{where}.capabilities.{k}"))
                for k, v in _obj(caps, f"{where}.capabilities").items()}
    size = p.get("consoleSize")
    console_size = None
    if size is not None:
        size = _obj(size, f"{where}.consoleSize")
        console_size = (_int(size.get("height"), "consoleSize.height", 0, 0),
                        _int(size.get("width"), "consoleSize.width", 0, 0))
    oom = p.get("oomScoreAdj")
    cwd = _str(p.get("cwd"), f"{where}.cwd", "/") or "/"
    env = _strings(p.get("env"), f"{where}.env")
    for e in env:
        if "=" not in e:
            raise InvalidArgument(f"config.json: {where}.env entry {e!r} is not KEY=value")
    return Process(
        args=args,
        env=env,
        cwd=_abs(cwd, f"{where}.cwd"),
        terminal=bool(p.get("terminal", False)),
        user=user,
        rlimits=tuple(rlimits),
        no_new_privileges=bool(p.get("noNewPrivileges", False)),
        oom_score_adj=None if oom is None else _int(oom, f"{where}.oomScoreAdj"),
        capabilities=caps,
        apparmor_profile=_str(p.get("apparmorProfile"), f"{where}.apparmorProfile"),
        selinux_label=_str(p.get("selinuxLabel"), f"{where}.selinuxLabel"),
        console_size=console_size,
    )


def _parse_mappings(raw: Any, where: str) -> tuple[IdMapping, ...]:
    out = []
    for i, m in enumerate(_list(raw, where)):
        m = _obj(m, f"{where}[{i}]")
        out.append(IdMapping(
            container_id=_int(m.get("containerID"), f"{where}[{i}].containerID", minimum=0),
            host_id=_int(m.get("hostID"), f"{where}[{i}].hostID", minimum=0),
            size=_int(m.get("size"), f"{where}[{i}].size", minimum=1),
        ))
    # Overlapping ranges are refused by the kernel with a bare EINVAL; say which.
    for kind in ("container_id", "host_id"):
        spans = sorted((getattr(m, kind), getattr(m, kind) + m.size) for m in out)
        for (_a0, a1), (b0, _b1) in zip(spans, spans[1:], strict=False):
            if b0 < a1:
                raise InvalidArgument(f"config.json: {where} ranges overlap at id {b0}")
    return tuple(out)


def _parse_linux(raw: Any) -> Linux:
    lx = _obj(raw, "linux")
    namespaces = []
    seen = set()
    for i, ns in enumerate(_list(lx.get("namespaces"), "linux.namespaces")):
        ns = _obj(ns, f"linux.namespaces[{i}]")
        kind = _str(ns.get("type"), f"linux.namespaces[{i}].type")
        if kind not in NAMESPACE_TYPES:
            raise InvalidArgument(f"config.json: unknown namespace type {kind!r}")
        if kind in seen:
            raise InvalidArgument(f"config.json: namespace {kind!r} given twice")
        seen.add(kind)
        path = _str(ns.get("path"), f"linux.namespaces[{i}].path")
        if path:
            _abs(path, f"linux.namespaces[{i}].path")
        namespaces.append(Namespace(kind, path))
    uid_maps = _parse_mappings(lx.get("uidMappings"), "linux.uidMappings")
    gid_maps = _parse_mappings(lx.get("gidMappings"), "linux.gidMappings")
    user_ns = next((n for n in namespaces if n.type == "user"), None)
    if (uid_maps or gid_maps) and user_ns is None:
        raise InvalidArgument("config.json: uidMappings/gidMappings need a user namespace")
    if user_ns is not None and not user_ns.path and not (uid_maps and gid_maps):
        raise InvalidArgument("config.json: a new user namespace needs uidMappings and "
                              "gidMappings")
    devices = []
    for i, d in enumerate(_list(lx.get("devices"), "linux.devices")):
        d = _obj(d, f"linux.devices[{i}]")
        kind = _str(d.get("type"), f"linux.devices[{i}].type")
        if kind not in ("c", "b", "u", "p"):
            raise InvalidArgument(f"config.json: linux.devices[{i}] has unknown type {kind!r}")
        mode = d.get("fileMode")
        uid, gid = d.get("uid"), d.get("gid")
        devices.append(Device(
            path=_abs(_str(d.get("path"), f"linux.devices[{i}].path"), f"linux.devices[{i}].path"),
            type=kind,
            major=_int(d.get("major"), f"linux.devices[{i}].major", 0 if kind == "p" else None),
            minor=_int(d.get("minor"), f"linux.devices[{i}].minor", 0 if kind == "p" else None),
            file_mode=None if mode is None else _int(mode, "fileMode", minimum=0),
            uid=None if uid is None else _int(uid, "uid", minimum=0),
            gid=None if gid is None else _int(gid, "gid", minimum=0),
        ))
    sysctl = {_str(k, "linux.sysctl key"): _str(v, f"linux.sysctl.{k}")
              for k, v in _obj(lx.get("sysctl"), "linux.sysctl").items()}
    propagation = _str(lx.get("rootfsPropagation"), "linux.rootfsPropagation")
    if propagation not in PROPAGATIONS:
        raise InvalidArgument(f"config.json: unknown rootfsPropagation {propagation!r}")
    resources = lx.get("resources")
    seccomp = lx.get("seccomp")
    return Linux(
        namespaces=tuple(namespaces),
        uid_mappings=uid_maps,
        gid_mappings=gid_maps,
        devices=tuple(devices),
        cgroups_path=_str(lx.get("cgroupsPath"), "linux.cgroupsPath"),
        resources=None if resources is None else _obj(resources, "linux.resources"),
        sysctl=sysctl,
        masked_paths=_strings(lx.get("maskedPaths"), "linux.maskedPaths"),
        readonly_paths=_strings(lx.get("readonlyPaths"), "linux.readonlyPaths"),
        rootfs_propagation=propagation,
        seccomp=None if seccomp is None else _obj(seccomp, "linux.seccomp"),
        mount_label=_str(lx.get("mountLabel"), "linux.mountLabel"),
        time_offsets=_obj(lx.get("timeOffsets"), "linux.timeOffsets"),
    )


def parse_spec(raw: Any) -> Spec:
    doc = _obj(raw, "the document")
    version = _str(doc.get("ociVersion"), "ociVersion")
    if not version:
        raise InvalidArgument("config.json: ociVersion is required")
    if not version.startswith("1."):
        raise InvalidArgument(f"config.json: unsupported ociVersion {version!r}")
    root = _obj(doc.get("root"), "root")
    root_path = _str(root.get("path"), "root.path")
    if not root_path:
        raise InvalidArgument("config.json: root.path is required")
    mounts = []
    for i, m in enumerate(_list(doc.get("mounts"), "mounts")):
        m = _obj(m, f"mounts[{i}]")
        dest = _str(m.get("destination"), f"mounts[{i}].destination")
        mounts.append(Mount(
            destination=_abs(dest, f"mounts[{i}].destination"),
            type=_str(m.get("type"), f"mounts[{i}].type"),
            source=_str(m.get("source"), f"mounts[{i}].source"),
            options=_strings(m.get("options"), f"mounts[{i}].options"),
        ))
    hooks: dict[str, tuple[Hook, ...]] = {}
    for kind, items in _obj(doc.get("hooks"), "hooks").items():
        if kind not in HOOK_KINDS:
            raise InvalidArgument(f"config.json: unknown hook kind {kind!r}")
        parsed = []
        for i, h in enumerate(_list(items, f"hooks.{kind}")):
            h = _obj(h, f"hooks.{kind}[{i}]")
            timeout = h.get("timeout")
            where = f"hooks.{kind}[{i}].path"
            parsed.append(Hook(
                path=_abs(_str(h.get("path"), where), where),
                args=_strings(h.get("args"), f"hooks.{kind}[{i}].args"),
                env=_strings(h.get("env"), f"hooks.{kind}[{i}].env"),
                timeout=None if timeout is None else _int(timeout, "timeout", minimum=1),
            ))
        hooks[kind] = tuple(parsed)
    annotations = {_str(k, "annotations key"): _str(v, f"annotations.{k}")
                   for k, v in _obj(doc.get("annotations"), "annotations").items()}
    process = None if doc.get("process") is None else parse_process(doc["process"])
    linux = _parse_linux(doc.get("linux"))
    hostname = _str(doc.get("hostname"), "hostname")
    if hostname and linux.namespace("uts") is None:
        raise InvalidArgument("config.json: hostname needs a new uts namespace")
    return Spec(
        oci_version=version,
        root_path=root_path,
        root_readonly=bool(root.get("readonly", False)),
        process=process,
        hostname=hostname,
        domainname=_str(doc.get("domainname"), "domainname"),
        mounts=tuple(mounts),
        hooks=hooks,
        linux=linux,
        annotations=annotations,
    )
