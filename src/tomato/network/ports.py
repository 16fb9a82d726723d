"""Published ports: `-p` specs as Docker reads them, and whether a host port is free."""

from __future__ import annotations

import errno
import socket

from tomato.errors import Conflict, InvalidArgument
from tomato.records import record


@record
class PortSpec:
    proto: str            # tcp | udp
    host_ip: str          # "" for every address
    host_port: int        # 0: pick a free one
    container_port: int

    def as_dict(self) -> dict[str, object]:
        return {"proto": self.proto, "host_ip": self.host_ip, "host_port": self.host_port,
                "container_port": self.container_port}


def _port(text: str, what: str, allow_zero: bool = False) -> int:
    if not text.isdigit() or not (0 if allow_zero else 1) <= int(text) <= 65535:
        raise InvalidArgument(f"invalid {what}: {text}")
    return int(text)


def parse_publish(spec: str) -> PortSpec:
    """``[ip:][hostPort:]containerPort[/proto]``."""
    rest, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    host_ip = ""
    if rest.startswith("["):
        raise InvalidArgument(f"invalid port spec {spec}: IPv6 host addresses are not supported")
    parts = rest.split(":")
    if len(parts) == 1:
        container, host = parts[0], ""
    elif len(parts) == 2:
        host, container = parts
    elif len(parts) == 3:
        host_ip, host, container = parts
        try:
            socket.inet_aton(host_ip)
            if host_ip.count(".") != 3:
                raise OSError
        except OSError:
            raise InvalidArgument(f"invalid IP address: {host_ip}") from None
    else:
        raise InvalidArgument(f"invalid port format for --publish: {spec}")
    if "-" in container or "-" in host:
        raise InvalidArgument(f"invalid port spec {spec}: port ranges are not supported")
    cport = _port(container, "containerPort")
    hport = _port(host, "hostPort", allow_zero=True) if host else 0
    return PortSpec(proto, "" if host_ip == "0.0.0.0" else host_ip, hport, cport)


def parse_expose(spec: str) -> tuple[int, str]:
    port, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    return _port(port, "port"), proto


def _kind(proto: str) -> int:
    return socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM


def check_free(proto: str, host_ip: str, port: int) -> None:
    """Fail if a process on the host holds the port (binding it is the only sure test)."""
    s = socket.socket(socket.AF_INET, _kind(proto))
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not a user
        s.bind((host_ip or "0.0.0.0", port))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise Conflict(f"Bind for {host_ip or '0.0.0.0'}:{port} failed: port is already "
                           "allocated") from err
        raise InvalidArgument(f"cannot publish {host_ip or '0.0.0.0'}:{port}: "
                              f"{err.strerror}") from err
    finally:
        s.close()


def free_port(proto: str, host_ip: str, taken: set[int]) -> int:
    """A port the kernel calls free (bind to 0) that no container holds either."""
    for _ in range(64):  # bounded: the ephemeral range is large
        s = socket.socket(socket.AF_INET, _kind(proto))
        try:
            s.bind((host_ip or "0.0.0.0", 0))
            port = int(s.getsockname()[1])
        finally:
            s.close()
        if port not in taken:
            return port
    raise Conflict("no free host port found")
