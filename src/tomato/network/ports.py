"""Published ports: `-p` specs as Docker reads them (ranges, IPv6 host addresses), and
whether a host port is free."""

from __future__ import annotations

import errno
import socket

from tomato.errors import Conflict, InvalidArgument
from tomato.records import record


@record
class PortSpec:
    proto: str            # tcp | udp
    host_ip: str          # "" for every address; an IPv6 one without brackets
    host_port: int        # 0: pick a free one
    container_port: int
    host_port_end: int = 0  # -p 8000-8010:80: the first free port of the range

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"proto": self.proto, "host_ip": self.host_ip,
                                  "host_port": self.host_port,
                                  "container_port": self.container_port}
        if self.host_port_end:
            out["host_port_end"] = self.host_port_end
        return out


def _port(text: str, what: str, allow_zero: bool = False) -> int:
    if not text.isdigit() or not (0 if allow_zero else 1) <= int(text) <= 65535:
        raise InvalidArgument(f"invalid {what}: {text}")
    return int(text)


def port_range(text: str, what: str, allow_zero: bool = False) -> tuple[int, int]:
    """``80`` or ``8000-8010`` (moby's nat.ParsePortRange): the first and last port."""
    first, sep, last = text.partition("-")
    try:
        start = _port(first, what, allow_zero)
        end = _port(last, what, allow_zero) if sep else start
    except InvalidArgument:
        raise InvalidArgument(f"invalid {what}: {text}") from None
    if end < start:
        raise InvalidArgument(f"invalid {what}: {text}")
    return start, end


def _split_publish(spec: str) -> tuple[str, str, str]:
    """(ip, host port, container port[/proto]) of ``[ip:][hostPort:]containerPort``, an
    IPv6 address in brackets (moby's splitParts)."""
    host_ip = ""
    rest = spec
    if rest.startswith("["):
        addr, sep, rest = rest[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise InvalidArgument(f"invalid port format for --publish: {spec}")
        host_ip, rest = addr, rest[1:]
        host, sep, container = rest.rpartition(":")
        if ":" in host or not sep:
            raise InvalidArgument(f"invalid port format for --publish: {spec}")
        return host_ip, host, container
    parts = rest.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise InvalidArgument(f"invalid port format for --publish: {spec}")


def parse_publish(spec: str) -> list[PortSpec]:
    """``-p [ip:][hostPort:]containerPort[/proto]`` with moby's nat.ParsePortSpec's
    semantics: ranges on both sides map port to port (same sizes, or docker's error);
    one container port with a host range takes the first free port of the range."""
    import ipaddress

    host_ip, host, rest = _split_publish(spec)
    container, _, proto = rest.partition("/")
    proto = proto or "tcp"
    if host_ip:
        try:
            host_ip = str(ipaddress.ip_address(host_ip))
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {host_ip}") from None
    if not container:
        raise InvalidArgument(f"no port specified: {spec}<empty>")
    start, end = port_range(container, "containerPort")
    hstart, hend = port_range(host, "hostPort", allow_zero=True) if host else (0, 0)
    if host and end - start != hend - hstart and end != start:
        raise InvalidArgument(f"invalid ranges specified for container and host Ports: "
                              f"{container} and {host}")
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    if proto == "sctp":
        raise InvalidArgument(f"invalid proto: {proto} (sctp is not supported)")
    if host_ip in ("0.0.0.0", "::"):
        host_ip = "" if host_ip == "0.0.0.0" else host_ip
    out = []
    for i in range(end - start + 1):
        if start == end and hstart != hend:
            out.append(PortSpec(proto, host_ip, hstart, start, hend))
        else:
            out.append(PortSpec(proto, host_ip, hstart + i if host else 0, start + i))
    return out


def parse_expose(spec: str) -> list[tuple[int, str]]:
    """``--expose 80``, ``53/udp``, ``8000-8010`` (each port of a range, as docker)."""
    port, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    try:
        start, end = port_range(port, "port")
    except InvalidArgument:
        raise InvalidArgument(f"invalid range format for --expose: {spec}, error: invalid "
                              f"range specified for port: {port}") from None
    return [(p, proto) for p in range(start, end + 1)]


def family(host_ip: str) -> int:
    return socket.AF_INET6 if ":" in host_ip else socket.AF_INET


def _kind(proto: str) -> int:
    return socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM


def check_free(proto: str, host_ip: str, port: int) -> None:
    """Fail if a process on the host holds the port (binding it is the only sure test)."""
    s = socket.socket(family(host_ip), _kind(proto))
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not a user
        s.bind((host_ip or "0.0.0.0", port))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise Conflict(f"Bind for {where(host_ip, port)} failed: port is already "
                           "allocated") from err
        raise InvalidArgument(f"cannot publish {where(host_ip, port)}: "
                              f"{err.strerror}") from err
    finally:
        s.close()


def free_port(proto: str, host_ip: str, taken: set[int]) -> int:
    """A port the kernel calls free (bind to 0) that no container holds either."""
    for _ in range(64):  # bounded: the ephemeral range is large
        s = socket.socket(family(host_ip), _kind(proto))
        try:
            s.bind((host_ip or "0.0.0.0", 0))
            port = int(s.getsockname()[1])
        finally:
            s.close()
        if port not in taken:
            return port
    raise Conflict("no free host port found")


def where(host_ip: str, port: object) -> str:
    """Docker's words for a host address and port: 0.0.0.0:80, [::1]:80."""
    return f"[{host_ip}]:{port}" if ":" in host_ip else f"{host_ip or '0.0.0.0'}:{port}"
