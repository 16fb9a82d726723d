"""A small rtnetlink client: just the link, address and route messages Tomato needs.

Why not pyroute2 here: importing ``pyroute2`` (0.9) costs 85-130 ms on this
machine, more than the whole budget of `tomato run --rm` on the default
bridge.  The engine's hot path (one veth pair, one address, one route per
container) needs five message types, encoded below with ``struct``; the
tests check the results with pyroute2 as an independent reader.

A ``Netlink`` socket acts on the network namespace it was *created* in, so
a socket opened while the thread sat in a container's netns keeps acting on
that netns after the thread went back (see netns.py).  Every request asks
for an ACK; a kernel error becomes ``OSError(errno, strerror, what)``.
"""

from __future__ import annotations

import os
import socket
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.explain.trace import Explainer

# message types
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
NLMSG_ERROR, NLMSG_DONE = 2, 3
# flags
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
# link attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_GROUP, IFLA_NET_NS_FD = 18, 27, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFF_UP = 0x1
# address and route attributes
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFA_F_NODAD = 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
RT_SCOPE_UNIVERSE = 0

_HDR = struct.Struct("=LHHLL")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def attr_str(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"invalid MAC address: {mac}")
    return bytes(int(p, 16) for p in parts)


class Netlink:
    """One NETLINK_ROUTE socket, bound to the netns it was opened in; ``explain``
    (--explain) is told of each change it makes, with its ip(8) equivalent."""

    def __init__(self, explain: Explainer | None = None) -> None:
        self.explain = explain
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  0)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------
    def request(self, kind: int, flags: int, body: bytes, what: str) -> list[bytes]:
        """Send one request; return the payloads of the replies before the ACK."""
        self.seq += 1
        seq = self.seq
        msg = _HDR.pack(_HDR.size + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK, seq,
                        0) + body
        self.sock.send(msg)
        replies: list[bytes] = []
        for _ in range(1000):  # bounded: an ACK always ends a request
            data = self.sock.recv(65536)
            off = 0
            while off + _HDR.size <= len(data):
                length, mtype, _flags, mseq, _pid = _HDR.unpack_from(data, off)
                if length < _HDR.size:
                    raise OSError(0, "malformed netlink reply", what)
                payload = data[off + _HDR.size:off + length]
                off += (length + 3) & ~3
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    code = struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(-code, os.strerror(-code), what)
                    return replies
                if mtype == NLMSG_DONE:
                    return replies
                replies.append(payload)
        raise OSError(0, "no netlink acknowledgement", what)

    # -- links ---------------------------------------------------------------------------
    def link_index(self, name: str) -> int:
        replies = self.request(RTM_GETLINK, 0, ifinfo() + attr_str(IFLA_IFNAME, name), name)
        if not replies:
            raise OSError(19, os.strerror(19), name)
        return int(_IFINFO.unpack_from(replies[0])[2])

    def add_bridge(self, name: str, mac: str | None = None) -> None:
        attrs = attr_str(IFLA_IFNAME, name) + attr(IFLA_LINKINFO,
                                                   attr_str(IFLA_INFO_KIND, "bridge"))
        if mac:
            attrs += attr(IFLA_ADDRESS, mac_bytes(mac))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                     ifinfo(flags=IFF_UP, change=IFF_UP) + attrs, name)
        self._explain(["ip", "link", "add", name, "type", "bridge"],
                      f"RTM_NEWLINK({name}, kind=bridge, up)")

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, master: int = 0,
                 peer_mac: str | None = None, mtu: int = 0) -> None:
        """A veth pair: ``name`` here (up, in bridge ``master``), ``peer`` in the netns."""
        peer_attrs = attr_str(IFLA_IFNAME, peer) + attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
        if peer_mac:
            peer_attrs += attr(IFLA_ADDRESS, mac_bytes(peer_mac))
        if mtu:
            peer_attrs += attr_u32(IFLA_MTU, mtu)
        info = attr_str(IFLA_INFO_KIND, "veth") + attr(
            IFLA_INFO_DATA, attr(VETH_INFO_PEER, ifinfo() + peer_attrs))
        attrs = attr_str(IFLA_IFNAME, name) + attr(IFLA_LINKINFO, info)
        if master:
            attrs += attr_u32(IFLA_MASTER, master)
        if mtu:
            attrs += attr_u32(IFLA_MTU, mtu)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                     ifinfo(flags=IFF_UP, change=IFF_UP) + attrs, name)
        self._explain(["ip", "link", "add", name, *(["master", str(master)] if master else []),
                       "type", "veth", "peer", "name", peer, "netns",
                       f"/proc/self/fd/{peer_netns_fd}"],
                      f"RTM_NEWLINK({name}, kind=veth, peer={peer} in netns fd {peer_netns_fd})")

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, ifinfo(index, IFF_UP, IFF_UP), f"link {index}")
        self._explain(["ip", "link", "set", "dev", f"#{index}", "up"], f"RTM_NEWLINK(#{index}, up)")

    def delete_link(self, name: str) -> bool:
        """Delete a link by name; False if there was none."""
        try:
            self.request(RTM_DELLINK, 0, ifinfo() + attr_str(IFLA_IFNAME, name), name)
        except OSError as err:
            if err.errno == 19:  # ENODEV
                return False
            raise
        self._explain(["ip", "link", "delete", name], f"RTM_DELLINK({name})")
        return True

    def delete_links(self, names: list[str]) -> None:
        """Delete several links in one kernel batch: each deletion waits for an RCU
        grace period (20-50 ms here), a batch waits once.  The links are put in a
        fresh random group, then the group is deleted."""
        group = 0x10000000 | int.from_bytes(os.urandom(4), "little") & 0x6FFFFFFF
        found = 0
        for name in names:
            try:
                self.request(RTM_NEWLINK, 0, ifinfo() + attr_str(IFLA_IFNAME, name)
                             + attr_u32(IFLA_GROUP, group), name)
                found += 1
            except OSError as err:
                if err.errno != 19:  # ENODEV: already gone
                    raise
        if found:
            self.request(RTM_DELLINK, 0, ifinfo() + attr_u32(IFLA_GROUP, group),
                         f"links {', '.join(names)}")
            self._explain(["ip", "link", "delete", "group", str(group)],
                          f"RTM_DELLINK(group {group}: {', '.join(names)})")

    # -- addresses and routes --------------------------------------------------------------
    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        """An IPv4 or IPv6 address; an IPv6 one without duplicate address detection
        (as Docker's: the addresses are leased, and DAD would leave it unusable,
        "tentative", for a second)."""
        if ":" in address:
            raw = socket.inet_pton(socket.AF_INET6, address)
            body = _IFADDR.pack(socket.AF_INET6, prefixlen, IFA_F_NODAD, RT_SCOPE_UNIVERSE,
                                index) + attr(IFA_ADDRESS, raw) + attr_u32(IFA_FLAGS,
                                                                          IFA_F_NODAD)
        else:
            raw = socket.inet_aton(address)
            body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index) + \
                attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
        try:
            self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, address)
        except OSError as err:
            if err.errno != 17:  # EEXIST: already there
                raise
        self._explain(["ip", "addr", "add", f"{address}/{prefixlen}", "dev", f"#{index}",
                       *(["nodad"] if ":" in address else [])],
                      f"RTM_NEWADDR({address}/{prefixlen} on #{index})")

    def add_default_route(self, gateway: str, index: int) -> None:
        six = ":" in gateway
        fam = socket.AF_INET6 if six else socket.AF_INET
        body = _RTMSG.pack(fam, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                           RT_SCOPE_UNIVERSE, RTN_UNICAST, 0) + \
            attr(RTA_GATEWAY, socket.inet_pton(fam, gateway)) + attr_u32(RTA_OIF, index)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, f"default via {gateway}")
        self._explain(["ip", *(["-6"] if six else []), "route", "add", "default", "via",
                       gateway], f"RTM_NEWROUTE(default via {gateway} on #{index})")

    def _explain(self, command: list[str], call: str) -> None:
        """--explain: a network step, once it happened, with its ip(8) equivalent."""
        if self.explain is not None:
            self.explain.link(command, call)
