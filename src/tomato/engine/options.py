"""`tomato run`/`create` options: parsed once, validated with Docker's messages.

``RunOptions`` is what a container record keeps (as JSON), so `start` after
a crash or a restart policy rebuilds exactly the same container.
"""

from __future__ import annotations

from tomato.errors import InvalidArgument
from tomato.records import as_dict, field, record

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
               "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}

RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")

MIN_MEMORY = 6 << 20  # moby's linuxMinMemory: the kernel needs a few MB to start anything


@record(frozen=False)
class RunOptions:
    image: str = ""
    command: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    name: str = ""
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    interactive: bool = False
    detach: bool = False
    auto_remove: bool = False
    volumes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    read_only: bool = False
    cpus: float = 0.0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    pids_limit: int = 0
    shm_size: int = 64 << 20
    devices: list[str] = field(default_factory=list)
    device_read_bps: list[tuple[str, int]] = field(default_factory=list)
    device_write_bps: list[tuple[str, int]] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    seccomp: str = ""
    no_new_privileges: bool = False
    ulimits: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    init: bool = False
    restart: str = "no"
    restart_max: int = 0
    network: str = "bridge"
    publish: list[dict[str, Any]] = field(default_factory=list)
    publish_all: bool = False
    expose: list[str] = field(default_factory=list)
    ip: str = ""
    ip6: str = ""
    network_aliases: list[str] = field(default_factory=list)
    #: more networks at create (repeated --network, the API's EndpointsConfig): each
    #: {"name", "ip", "ip6", "aliases"}, attached after ``network`` in this order
    extra_networks: list[dict[str, Any]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  #: --link NAME:ALIAS (legacy)
    mac_address: str = ""
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    stop_timeout: int | None = None
    log_max_size: int = 0
    log_max_file: int = 1
    console_size: tuple[int, int] | None = None
    # namespaces (engine/namespaces.py): "" is Tomato's default, container:<full id> a join
    pid_mode: str = ""          #: "", host, container:<id>
    ipc_mode: str = "private"   #: private, shareable, none, host, container:<id>
    uts_mode: str = ""          #: "", host
    userns_mode: str = ""       #: "", host
    cgroupns_mode: str = ""     #: "" (private), private, host
    cgroup_parent: str = ""
    volumes_from: list[str] = field(default_factory=list)  #: <full id>[:ro|:rw]
    group_add: list[str] = field(default_factory=list)
    oom_kill_disable: bool = False
    oom_score_adj: int = 0
    memory_swappiness: int = -1  #: -1: the kernel's (docker's "unset")
    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_rt_period: int = 0
    cpu_rt_runtime: int = 0
    cpuset_mems: str = ""
    blkio_weight: int = 0
    device_cgroup_rules: list[str] = field(default_factory=list)
    device_read_iops: list[tuple[str, int]] = field(default_factory=list)
    device_write_iops: list[tuple[str, int]] = field(default_factory=list)
    blkio_weight_device: list[tuple[str, int]] = field(default_factory=list)
    # issue 19's commands and flags: create.py's image_for and start.py's log
    pull: str = "missing"           #: --pull: always, missing, never
    platform: str = ""              #: --platform: os/arch[/variant] the image must be
    log_driver: str = "json-file"   #: --log-driver: json-file, local, none
    #: Docker's HealthConfig (health.py); in a record: the image's merged in
    healthcheck: dict[str, Any] | None = None
    # the rest of `docker run --help` (check_run_extras: docker's answers on Linux)
    annotations: dict[str, str] = field(default_factory=dict)  #: into the OCI spec
    runtime: str = "runc"       #: --runtime: tomato-runtime is runc's stand-in
    isolation: str = ""         #: --isolation: Linux has "default" only
    storage_opt: dict[str, str] = field(default_factory=dict)  #: refused (no quotas)
    gpus: list[str] = field(default_factory=list)  #: --gpus / DeviceRequests: refused
    volume_driver: str = ""     #: --volume-driver: "local" only
    cpu_count: int = 0          #: Windows only: kept in HostConfig, as dockerd does
    cpu_percent: int = 0        #: Windows only: discarded with docker's warning
    io_max_bandwidth: int = 0   #: Windows only: refused
    io_max_iops: int = 0        #: Windows only: refused

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunOptions:
        known = {name for name, _ in cls.__record_fields__}  # type: ignore[attr-defined]
        return cls(**{k: v for k, v in raw.items() if k in known})


LOG_DRIVERS = ("json-file", "local", "none")
#: the --log-opt keys each driver takes (docker's; "local" keeps json-file's lines here)
LOG_OPTS = {"json-file": ("max-size", "max-file", "compress", "labels", "env", "tag"),
            "local": ("max-size", "max-file", "compress"), "none": ()}


def parse_log_opts(driver: str, items: list[str], opts: RunOptions) -> None:
    """--log-opt KEY=VALUE for ``driver``: max-size and max-file are kept (rotation)."""
    allowed = LOG_OPTS.get(driver, ())
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid log opt format '{item}', must be key=value")
        if key not in allowed:
            raise InvalidArgument(f"unknown log opt '{key}' for {driver} log driver")
        if key == "max-size":
            opts.log_max_size = parse_size(value, "--log-opt max-size")
        elif key == "max-file":
            if not value.isdigit() or int(value) < 1:
                raise InvalidArgument(f"invalid value for max-file: {value}")
            opts.log_max_file = int(value)
    if opts.log_max_file > 1 and not opts.log_max_size:
        raise InvalidArgument("max-file cannot be set without max-size")


def parse_size(text: str, flag: str) -> int:
    t = str(text).strip().lower()
    i = len(t)
    while i and t[i - 1].isalpha():
        i -= 1
    number, unit = t[:i], t[i:]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _SIZE_UNITS or value < 0 or not number:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: invalid size: '
                              f"'{text}'")
    return int(value * _SIZE_UNITS[unit])


def parse_cpus(text: str) -> float:
    """--cpus as docker's client (a rational, at most nanosecond precision) and daemon
    (0 is no limit; below 0 or over the host's CPUs is refused) take it."""
    try:
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(text)
    except ValueError:
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: failed to parse '
                              f"{text} as a rational number") from None
    if round(value * 1e9, 3) != int(round(value * 1e9, 3)):
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: value is too '
                              "precise")
    import os

    ncpu = os.cpu_count() or 1
    if value < 0 or value > ncpu:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only "
                              f"{ncpu} CPUs available")
    return value


def validate_resources(opts: RunOptions) -> None:
    """The daemon's checks of a container's limits (moby's verifyPlatformContainerResources),
    in its words, before anything is pulled or made."""
    if opts.memory and opts.memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if opts.memory > 0 and 0 < opts.memory_swap < opts.memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                              "see usage")
    if opts.memory == 0 and opts.memory_swap > 0:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap "
                              "limit, see usage")
    if 0 < opts.memory_reservation < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if opts.memory > 0 and opts.memory < opts.memory_reservation:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation "
                              "limit, see usage")
    if opts.shm_size < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    if opts.memory_swappiness != -1 and not 0 <= opts.memory_swappiness <= 100:
        raise InvalidArgument(f"Invalid value: {opts.memory_swappiness}, valid memory swappiness "
                              "range is 0-100")
    if not -1000 <= opts.oom_score_adj <= 1000:
        raise InvalidArgument(f"Invalid value {opts.oom_score_adj}, range for oom score adj is "
                              "[-1000, 1000]")
    if opts.cpus and opts.cpu_period:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if opts.cpus and opts.cpu_quota > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if opts.cpu_period and not 1000 <= opts.cpu_period <= 1000000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger "
                              "than 1s (i.e. 1000000)")
    if 0 < opts.cpu_quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if opts.cpu_rt_period and opts.cpu_rt_runtime > opts.cpu_rt_period:
        raise InvalidArgument("cpu real-time runtime cannot be higher than cpu real-time period")
    if opts.cpu_shares < 0:
        raise InvalidArgument(f"invalid CPU shares ({opts.cpu_shares}): value must be a "
                              "positive integer")
    if opts.blkio_weight and not 10 <= opts.blkio_weight <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    if opts.cpuset_mems:
        parse_uint_list(opts.cpuset_mems, f"Invalid value {opts.cpuset_mems} for cpuset mems")
    for rule in opts.device_cgroup_rules:
        parse_device_cgroup_rule(rule)
    check_namespace_mode("--ipc", opts.ipc_mode)
    parent = opts.cgroup_parent
    if ".." in parent.split("/") or ":" in parent or "\n" in parent:
        raise InvalidArgument(f"invalid cgroup parent {parent!r}: a plain path of cgroups "
                              "(no '..', no ':')")
    if opts.uts_mode == "host" and opts.hostname:
        raise InvalidArgument("conflicting options: hostname and the UTS mode")
    if opts.stop_signal:
        parse_signal(opts.stop_signal)


def parse_signal(text: str) -> int:
    """moby's signal.ParseSignal: a number, or a name with or without SIG, any case."""
    import signal

    if text.isdigit():
        if int(text) == 0:
            raise InvalidArgument(f"Invalid signal: {text}")
        return int(text)
    name = text.upper().removeprefix("SIG")
    for base, sign in (("RTMIN+", 1), ("RTMAX-", -1)):
        if name.startswith(base) and name[len(base):].isdigit():
            number = int(signal.SIGRTMIN if sign > 0 else signal.SIGRTMAX) + \
                sign * int(name[len(base):])
            if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                return number
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        raise InvalidArgument(f"Invalid signal: {text}") from None


def parse_restart(text: str) -> tuple[str, int]:
    """--restart NAME[:COUNT], with docker's client's and daemon's words."""
    name, colon, count = text.partition(":")
    if colon and not name:
        raise InvalidArgument("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:  # strconv.Atoi
        digits = count[1:] if count[:1] in ("+", "-") else count
        if not (digits.isdigit() and digits.isascii()):
            raise InvalidArgument("invalid restart policy format: maximum retry count must be "
                                  "an integer")
        retries = int(count)
    if name not in RESTART_POLICIES and name:
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of "
                              "'no', 'always', 'on-failure', or 'unless-stopped'")
    if name != "on-failure" and retries:
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used "
                              "with 'on-failure'" + (" and cannot be negative" if retries < 0
                                                     else ""))
    if retries < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    return name or "no", retries


def validate_volume(spec: str) -> str:
    """-v SRC:DST[:OPTS] or -v DST (anonymous); docker's "too many colons"."""
    if not spec:
        raise InvalidArgument("invalid empty volume spec")
    parts = spec.split(":")
    if len(spec) > 2 and "" in parts[:4]:  # the client reads it left to right
        raise InvalidArgument(f"invalid spec: {spec}: empty section between colons")
    if len(parts) > 3:
        raise InvalidArgument(f"invalid spec: {spec}: too many colons")
    if len(parts) == 1:
        if not parts[0].startswith("/"):
            raise InvalidArgument(f"invalid volume specification: '{spec}'")
        return spec
    dest = parts[1]
    if dest.startswith("/") and not dest.strip("/"):
        raise InvalidArgument("invalid specification: destination can't be '/'")
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{spec}': invalid mount config "
                              "for type \"volume\": invalid mount path: "
                              f"'{dest}' mount path must be absolute")
    if len(parts) == 3:
        for opt in parts[2].split(","):
            if opt not in ("ro", "rw", "z", "Z", "nocopy", "rprivate", "private", "rshared",
                           "shared", "rslave", "slave"):
                raise InvalidArgument(f"invalid mode: {opt}")
    return spec


def parse_mount(spec: str) -> dict[str, str]:
    """--mount type=bind,source=/a,target=/b,readonly → a dict."""
    out: dict[str, str] = {"type": "volume"}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = {"src": "source", "dst": "target", "destination": "target"}.get(key, key)
        if key in ("readonly", "ro") and not sep:
            value = "true"
        elif not sep:
            raise InvalidArgument(f"invalid field '{part}' must be a key=value pair")
        out[key] = value
    if "target" not in out:
        raise InvalidArgument("target is required")
    if out["type"] not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid argument for --mount: unknown type {out['type']!r}")
    if out["type"] == "bind" and "source" not in out:
        raise InvalidArgument("invalid argument for --mount: source is required for bind")
    return out


def parse_device_rate(spec: str, flag: str) -> tuple[str, int]:
    path, sep, rate = spec.rpartition(":")
    if not sep or not path.startswith("/"):
        raise InvalidArgument(f'invalid argument "{spec}" for "{flag}" flag: bad format '
                              "for device rate, expected DEVICE:RATE")
    return path, parse_size(rate, flag)


ULIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
           "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")


def parse_ulimit(spec: str) -> str:
    """NAME=SOFT[:HARD] as go-units' ParseUlimit reads it, with its messages."""
    def refuse(reason: str) -> InvalidArgument:
        return InvalidArgument(f'invalid argument "{spec}" for "--ulimit" flag: {reason}')

    name, sep, values = spec.partition("=")
    if not sep:
        raise refuse(f"invalid ulimit argument: {spec}")
    if name not in ULIMITS:
        raise refuse(f"invalid ulimit type: {name}")
    limits = values.split(":")
    if len(limits) > 2:
        raise refuse(f"too many limit value arguments - {values}, can only have up to two, "
                     "`soft[:hard]`")
    parsed: list[int] = []
    for text in reversed(limits):  # go-units reads the hard limit first
        digits = text[1:] if text[:1] in ("+", "-") else text
        if not (digits.isdigit() and digits.isascii()):
            raise refuse(f'strconv.ParseInt: parsing "{text}": invalid syntax')
        value = int(text)
        if not -(1 << 63) <= value < (1 << 63):
            raise refuse(f'strconv.ParseInt: parsing "{text}": value out of range')
        parsed.insert(0, value)
    soft, hard = parsed[0], parsed[-1]
    if hard != -1 and soft > hard:
        raise refuse(f"ulimit soft limit must be less than or equal to hard limit: "
                     f"{soft} > {hard}")
    return spec


def parse_key_values(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what}: {item!r}")
        out[key] = value
    return out


def validate_env(item: str, environ: Any = None) -> str:
    """-e KEY=VALUE, or -e KEY for the caller's own KEY (left out if unset), as docker's
    ValidateEnv."""
    key, sep, _ = item.partition("=")
    if not key:
        raise InvalidArgument(f'invalid argument "{item}" for "-e, --env" flag: invalid '
                              f"environment variable: {item}")
    if not sep:
        if environ is None:
            import os

            environ = os.environ
        if key in environ:
            return f"{key}={environ[key]}"
    return item


def read_env_file(path: str, environ: Any = None) -> list[str]:
    """An --env-file as docker reads it: KEY=VALUE lines (the value kept as written), KEY
    for the caller's own, # comments and blank lines skipped."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        raise InvalidArgument(f"open {path}: {reason}") from err
    try:
        text = data.decode().removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise InvalidArgument(f"env file {path} contains invalid utf8 bytes") from None
    out = []
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if any(c.isspace() for c in key):
            raise InvalidArgument(f"poorly formatted environment: variable '{key}' contains "
                                  "whitespaces")
        if not key:
            raise InvalidArgument(f"poorly formatted environment: no variable name on line "
                                  f"'{line}'")
        out.append(f"{key}={value}" if sep else validate_env(key.strip(), environ))
    return out


def parse_add_host(spec: str) -> str:
    """--add-host NAME:IP or NAME=IP (IP may be host-gateway, an IPv6 one in brackets or
    not, as docker's); stored as NAME:IP."""
    sep = "=" if "=" in spec else ":"
    name, found, ip = spec.partition(sep)
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if not found or not name or not ip:
        raise InvalidArgument(f'bad format for add-host: "{spec}"')
    if ip != "host-gateway":
        import ipaddress

        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise InvalidArgument(f'invalid IP address in add-host: "{ip}"') from None
    return f"{name}:{ip}"


def parse_link(spec: str) -> str:
    """--link NAME[:ALIAS] (legacy links: name resolution only); stored as NAME:ALIAS."""
    name, _, alias = spec.partition(":")
    name = name.lstrip("/")
    if not name or ":" in alias:
        raise InvalidArgument(f"bad format for links: {spec}")
    return f"{name}:{alias or name}"


def parse_network_attachment(text: str) -> dict[str, Any]:
    """One --network: a name, or docker's advanced form name=N,alias=A,ip=I,ip6=J."""
    item: dict[str, Any] = {"name": text, "ip": "", "ip6": "", "aliases": []}
    if "=" not in text or ":" in text.partition("=")[0]:  # a mode: container:X, slirp4netns:o=v
        item["name"] = "bridge" if text in ("", "default") else text
        return item
    item["name"] = ""
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not value:
            raise InvalidArgument(f"invalid field '{part}' must be a key=value pair")
        if key == "name":
            item["name"] = "bridge" if value == "default" else value
        elif key == "alias":
            item["aliases"].append(value)
        elif key in ("ip", "ip6"):
            item[key] = value
        else:
            raise InvalidArgument(f"invalid field key {key}")
    if not item["name"]:
        raise InvalidArgument(f"network name is missing: {text}")
    return item


def check_namespace_mode(flag: str, value: str) -> str:
    """docker's client checks of --pid/--uts/--userns/--cgroupns (PidMode.Valid...) and
    the daemon's of --ipc, in their words."""
    kind, colon, ref = value.partition(":")
    ok = {"--pid": value in ("", "host") or (kind == "container" and colon and ref),
          "--uts": value in ("", "host"),
          "--userns": value in ("", "host"),
          "--cgroupns": value in ("", "host", "private"),
          "--ipc": value in ("", "private", "shareable", "none", "host")
          or (kind == "container" and colon and ref)}[flag]
    if not ok:
        what = {"--pid": "--pid: invalid PID mode", "--uts": "--uts: invalid UTS mode",
                "--userns": "--userns: invalid USER mode",
                "--cgroupns": "--cgroupns: invalid CGROUP mode",
                "--ipc": f"invalid IPC mode: {value}"}[flag]
        raise InvalidArgument(what)
    return value


def parse_uint_list(text: str, context: str) -> list[int]:
    """moby's parsers.ParseUintList ("0-3,5"), its error under ``context``."""
    out: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not (low.isdigit() and low.isascii()) or dash and not (high.isdigit() and
                                                                   high.isascii()):
            raise InvalidArgument(f"{context}: invalid format: {text}")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise InvalidArgument(f"{context}: invalid format: {text}")
        out.update(range(first, min(last, first + 4096) + 1))
    return sorted(out)


def parse_device_cgroup_rule(rule: str) -> dict[str, Any]:
    """--device-cgroup-rule 'TYPE MAJOR:MINOR ACCESS' (docker's regexp
    ``^[acb] ([0-9]+|\\*):([0-9]+|\\*) [rwm]{1,3}$``) -> an OCI device rule."""
    words = rule.split(" ")
    ok = len(words) == 3 and words[0] in ("a", "b", "c")
    if ok:
        major, colon, minor = words[1].partition(":")
        ok = bool(colon) and all(n == "*" or (n.isdigit() and n.isascii())
                                 for n in (major, minor))
        ok = ok and 1 <= len(words[2]) <= 3 and all(ch in "rwm" for ch in words[2])
    if not ok:  # the daemon's words (the CLI says "invalid device cgroup format")
        raise InvalidArgument(f"invalid device cgroup rule format: '{rule}'")
    out: dict[str, Any] = {"allow": True, "type": words[0], "access": words[2]}
    if major != "*":
        out["major"] = int(major)
    if minor != "*":
        out["minor"] = int(minor)
    return out


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """--volumes-from CONTAINER[:ro|:rw] (moby's ParseVolumesFrom)."""
    if not spec:
        raise InvalidArgument("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if mode not in ("", "ro", "rw"):
        raise InvalidArgument(f"invalid mode: {mode}")
    return ref, mode


def parse_device_iops(spec: str) -> tuple[str, int]:
    """--device-read-iops/--device-write-iops DEVICE:RATE (docker's
    ValidateThrottleIOpsDevice)."""
    path, sep, rate = spec.partition(":")
    if not sep or not path:
        raise InvalidArgument(f"bad format: {spec}")
    if not path.startswith("/dev/"):
        raise InvalidArgument(f"bad format for device path: {spec}")
    if not (rate.isdigit() and rate.isascii()) or int(rate) >= 1 << 64:
        raise InvalidArgument(f"invalid rate for device: {spec}. The correct format is "
                              "<device-path>:<number>. Number must be a positive integer")
    return path, int(rate)


def parse_weight_device(spec: str) -> tuple[str, int]:
    """--blkio-weight-device DEVICE:WEIGHT (docker's ValidateWeightDevice: 10 to 1000, or
    0)."""
    path, sep, weight = spec.partition(":")
    if not sep or not path:
        raise InvalidArgument(f"bad format: {spec}")
    if not path.startswith("/dev/"):
        raise InvalidArgument(f"bad format for device path: {spec}")
    if not (weight.isdigit() and weight.isascii()) or int(weight) and \
            not 10 <= int(weight) <= 1000:
        raise InvalidArgument(f"invalid weight for device: {spec}")
    return path, int(weight)

