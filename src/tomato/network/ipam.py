"""Subnets and addresses: pure logic (the engine persists leases in sqlite).

Subnets are chosen from a pool so they do not overlap the host's routes
(read from /proc/net/route, no netlink needed) nor another network.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable

from tomato.errors import Conflict, InvalidArgument

#: Docker's default address pools: the default bridge first, then user networks.
POOL = [f"172.{n}.0.0/16" for n in range(17, 32)] + \
       [f"192.168.{n}.0/20" for n in range(0, 256, 16)]


def host_routes(path: str = "/proc/net/route") -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination the host routes to (except the default route)."""
    nets = []
    try:
        with open(path) as f:
            next(f, None)
            for line in f:
                cols = line.split()
                if len(cols) < 8:
                    continue
                dest = socket.inet_ntoa(struct.pack("<I", int(cols[1], 16)))
                mask = socket.inet_ntoa(struct.pack("<I", int(cols[7], 16)))
                if mask == "0.0.0.0":
                    continue
                nets.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    except OSError:
        pass
    return nets


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as err:
        raise InvalidArgument(f"invalid subnet {text}: {err}") from err
    if net.prefixlen > 30:
        raise InvalidArgument(f"invalid subnet {text}: too small for a network")
    return net


def parse_ip(text: str, what: str = "IP address") -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError as err:
        raise InvalidArgument(f"invalid {what}: {text}") from err


def overlapping(net: ipaddress.IPv4Network,
                taken: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network | None:
    for t in taken:
        if net.overlaps(t):
            return t
    return None


def choose_subnet(taken: list[ipaddress.IPv4Network],
                  pool: Iterable[str] = POOL) -> ipaddress.IPv4Network:
    for candidate in pool:
        net = ipaddress.IPv4Network(candidate)
        if overlapping(net, taken) is None:
            return net
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among "
                   "the defaults to assign to the network")


def gateway_of(net: ipaddress.IPv4Network, gateway: str = "") -> ipaddress.IPv4Address:
    if not gateway:
        return net.network_address + 1
    gw = parse_ip(gateway, "gateway")
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"no matching subnet for gateway {gateway}: it is not inside "
                              f"{net}")
    return gw


def next_free(net: ipaddress.IPv4Network, used: set[int],
              after: int = 0) -> ipaddress.IPv4Address:
    """The first free host address after ``after`` (the last one handed out), wrapping
    around: an address just released is the last to be given again, as Docker's
    IPAM does.  ``used`` holds the gateway too."""
    first = int(net.network_address) + 1
    last = int(net.broadcast_address) - 1
    start = after + 1 if first <= after < last else first
    for value in (*range(start, last + 1), *range(first, start)):  # the subnet, once
        if value not in used:
            return ipaddress.IPv4Address(value)
    raise Conflict(f"no available IPv4 addresses on network {net}")


def mac_for(ip: ipaddress.IPv4Address) -> str:
    """Docker's MAC: 02:42 then the four bytes of the address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


def validate_mac(text: str) -> str:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                  for p in parts):
        raise InvalidArgument(f"{text} is not a valid mac address")
    if int(parts[0], 16) & 1:
        raise InvalidArgument(f"{text} is a multicast mac address")
    return text.lower()


# -- IPv6 (a network's second subnet, with --ipv6) ------------------------------------------
def parse_subnet6(text: str) -> ipaddress.IPv6Network:
    try:
        net = ipaddress.IPv6Network(text, strict=True)
    except ValueError as err:
        raise InvalidArgument(f"invalid subnet {text}: {err}") from err
    if net.prefixlen > 124:
        raise InvalidArgument(f"invalid subnet {text}: too small for a network")
    return net


def parse_ip6(text: str, what: str = "IPv6 address") -> ipaddress.IPv6Address:
    try:
        return ipaddress.IPv6Address(text)
    except ValueError as err:
        raise InvalidArgument(f"invalid {what}: {text}") from err


def choose_subnet6(taken: Iterable[ipaddress.IPv6Network]) -> ipaddress.IPv6Network:
    """A unique local /64 (fd00::/8 with 40 random bits, RFC 4193), as Docker 27 gives
    an IPv6 network created without a subnet."""
    import os

    taken = list(taken)
    for _ in range(16):  # bounded: a clash of 40 random bits is already unlikely
        prefix = (0xFD << 120) | (int.from_bytes(os.urandom(7), "big") << 64)
        net = ipaddress.IPv6Network((prefix & ~((1 << 64) - 1), 64))
        if not any(net.overlaps(t) for t in taken):
            return net
    raise Conflict("could not find an available IPv6 address pool")


def gateway6_of(net: ipaddress.IPv6Network, gateway: str = "") -> ipaddress.IPv6Address:
    if not gateway:
        return net.network_address + 1
    gw = parse_ip6(gateway, "gateway")
    if gw not in net or gw == net.network_address:
        raise InvalidArgument(f"no matching subnet for gateway {gateway}: it is not inside "
                              f"{net}")
    return gw


def next_free6(net: ipaddress.IPv6Network, used: set[str]) -> ipaddress.IPv6Address:
    """The lowest free address (Docker's IPv6 IPAM hands them out in order); ``used``
    holds the gateway too, as text."""
    first = int(net.network_address) + 1
    for value in range(first, first + len(used) + 2):  # bounded: one of these is free
        addr = ipaddress.IPv6Address(value)
        if addr in net and str(addr) not in used:
            return addr
    raise Conflict(f"no available IPv6 addresses on network {net}")
