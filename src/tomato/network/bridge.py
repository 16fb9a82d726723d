"""Bridge networks on the host: the bridge device, and one veth pair per container.

The engine decides *what* (names, addresses) and keeps the records; this
module only does it to the kernel, and undoes it.
"""

from __future__ import annotations

import os

from tomato.network import netns
from tomato.network.netlink import Netlink
from tomato.records import record

IFNAMSIZ = 15


@record
class Endpoint:
    veth: str          # the host end, a port of the bridge
    ifname: str        # the container end: eth0, eth1, ...
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    default_route: bool
    ip6: str = ""         # on a network with an IPv6 subnet: the second address
    prefixlen6: int = 0
    gateway6: str = ""


def _sysctl(path: str, value: str) -> None:
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError:
        pass  # a read-only /proc/sys (in a container) leaves the kernel's default


def ensure_bridge(nl: Netlink, name: str, gateway: str, prefixlen: int,
                  forward: bool, gateway6: str = "", prefixlen6: int = 0) -> tuple[int, bool]:
    """The bridge, up, with the gateway address (and the IPv6 one); returns (ifindex,
    created).  Forwarding is switched on in this process's netns, as Docker does
    (the engine's caller's: the tests run in a netns of their own)."""
    created = False
    try:
        index = nl.link_index(name)
    except OSError:
        nl.add_bridge(name)
        created = True
        index = nl.link_index(name)
    nl.add_address(index, gateway, prefixlen)
    # The host reaches published ports on 127.0.0.1: DNAT in the output hook sends those
    # packets to the bridge, which the kernel allows only with route_localnet there.
    _sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
    if forward:
        _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    if gateway6:
        _sysctl(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "0")
        nl.add_address(index, gateway6, prefixlen6)
        if forward:
            _sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")
    return index, created


def delete_link(nl: Netlink, name: str) -> bool:
    return nl.delete_link(name)


def plug(host: Netlink, inside: Netlink, netns_path: str, bridge_index: int,
         ep: Endpoint, mtu: int = 0) -> None:
    """Create the veth pair, the container end in the netns, addressed and routed."""
    fd = netns.open_fd(netns_path)
    try:
        host.add_veth(ep.veth, ep.ifname, fd, master=bridge_index, peer_mac=ep.mac, mtu=mtu)
    finally:
        os.close(fd)
    try:
        index = inside.link_index(ep.ifname)
        inside.add_address(index, ep.ip, ep.prefixlen)
        if ep.ip6:  # the netns was made with IPv6 off on new interfaces (netns.create)
            netns.write_sysctl(netns_path, f"net/ipv6/conf/{ep.ifname}/disable_ipv6", "0")
            inside.add_address(index, ep.ip6, ep.prefixlen6)
        inside.set_up(index)
        if ep.default_route:
            inside.add_default_route(ep.gateway, index)
            if ep.ip6:
                inside.add_default_route(ep.gateway6, index)
    except BaseException:
        host.delete_link(ep.veth)
        raise


def loopback_up(inside: Netlink) -> None:
    inside.set_up(1)  # lo is always ifindex 1 in a new netns
