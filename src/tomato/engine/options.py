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
    network_aliases: list[str] = field(default_factory=list)
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

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunOptions:
        known = {name for name, _ in cls.__record_fields__}  # type: ignore[attr-defined]
        return cls(**{k: v for k, v in raw.items() if k in known})


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
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: failed to parse '
                              f"{text} as a rational number") from None
    if value <= 0:
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: value must be '
                              "positive")
    import os

    ncpu = os.cpu_count() or 1
    if value > ncpu:
        raise InvalidArgument(f"range of CPUs is from 0.01 to {ncpu}.00, as there are only "
                              f"{ncpu} CPUs available")
    return value


def parse_restart(text: str) -> tuple[str, int]:
    name, _, count = text.partition(":")
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy '{text}'")
    if count:
        if name != "on-failure":
            raise InvalidArgument(f"maximum retry count cannot be used with restart policy "
                                  f"'{name}'")
        if not count.isdigit():
            raise InvalidArgument(f"maximum retry count must be an integer: {count}")
        return name, int(count)
    return name, 0


def validate_volume(spec: str) -> str:
    """-v SRC:DST[:OPTS] or -v DST (anonymous); docker's "too many colons"."""
    parts = spec.split(":")
    if len(parts) > 3 or not spec:
        raise InvalidArgument(f"invalid spec: {spec}: too many colons")
    if len(parts) == 1:
        if not parts[0].startswith("/"):
            raise InvalidArgument(f"invalid volume specification: '{spec}'")
        return spec
    dest = parts[1]
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
        raise InvalidArgument("invalid argument for --mount: target is required")
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


def parse_ulimit(spec: str) -> str:
    name, sep, values = spec.partition("=")
    known = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
             "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as")
    if not sep or name not in known:
        raise InvalidArgument(f'invalid argument "{spec}" for "--ulimit" flag: invalid ulimit '
                              f"type: {name}")
    for v in values.split(":"):
        if not v.lstrip("-").isdigit():
            raise InvalidArgument(f'invalid argument "{spec}" for "--ulimit" flag: '
                                  f"invalid ulimit argument: {values}")
    return spec


def parse_key_values(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what}: {item!r}")
        out[key] = value
    return out


def read_env_file(path: str) -> list[str]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise InvalidArgument(f"open {path}: {err.strerror}") from err
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def parse_add_host(spec: str) -> str:
    """--add-host NAME:IP (IP may be host-gateway); stored as NAME:IP."""
    name, sep, ip = spec.partition(":")
    if not sep or not name or not ip:
        raise InvalidArgument(f"bad format for add-host: {spec!r}")
    if ip != "host-gateway":
        from tomato.network.ipam import parse_ip

        parse_ip(ip)
    return f"{name}:{ip}"
