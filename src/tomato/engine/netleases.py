"""A container's addresses and ports on the networks' records: a lease of the next
free address (round-robin, as Docker's IPAM: a freed address is the last to be
reused, never while its old netns may still be dying), or the one asked for;
published ports checked free (in our records and on the host) and recorded; and
the default network's subnet moved when a host route took it meanwhile."""

from __future__ import annotations

import json

from tomato import sqlitedb as sqlite3
from tomato.engine.netrecords import Lease, Network, NetworkRecords, network_of
from tomato.errors import Conflict, InvalidArgument

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any


class Leases(NetworkRecords):
    """Leases and ports, checked and recorded (Networks plugs the devices)."""

    def check_ports(self, specs: list[dict[str, Any]]) -> None:
        """Refuse ports in use before anything is created (attach checks again, locked).
        A host range (-p 8000-8010:80) is looked at when a port of it is taken."""
        from tomato.network import ports as portmod

        seen: set[tuple[str, str, int]] = set()
        with self.store.read() as db:
            for p in specs:
                if p["host_ip"] == "::1":
                    raise InvalidArgument(
                        f"cannot publish on {portmod.where('::1', p['host_port'] or '')}: the "
                        "kernel does not route IPv6 loopback traffic to a container (Docker "
                        "needs its userland proxy there); publish on [::] or another address")
                if not p["host_port"] or p.get("host_port_end"):
                    continue
                key = (p["proto"], p["host_ip"], p["host_port"])
                if key in seen or self._port_taken(db, p):
                    raise Conflict(f"Bind for {portmod.where(p['host_ip'], p['host_port'])} "
                                   "failed: port is already allocated")
                seen.add(key)
                portmod.check_free(p["proto"], p["host_ip"], p["host_port"])

    @staticmethod
    def _port_taken(db: sqlite3.Connection, p: dict[str, Any]) -> bool:
        return db.execute("SELECT 1 FROM ports WHERE proto=? AND host_port=? AND "
                          "(host_ip=? OR host_ip='' OR ?='')",
                          (p["proto"], p["host_port"], p["host_ip"],
                           p["host_ip"])).fetchone() is not None

    def _add_ports(self, db: sqlite3.Connection, cid: str, ip: str, ip6: str,
                   specs: list[dict[str, Any]]) -> None:
        from tomato.network import ports as portmod

        for p in specs:
            p = dict(p)
            if p.get("host_port_end"):
                p["host_port"] = self._port_of_range(db, p)
            elif not p["host_port"]:
                taken = {r[0] for r in db.execute("SELECT host_port FROM ports WHERE proto=?",
                                                  (p["proto"],))}
                p["host_port"] = portmod.free_port(p["proto"], p["host_ip"], taken)
            elif self._port_taken(db, p):
                raise Conflict(f"Bind for {portmod.where(p['host_ip'], p['host_port'])} "
                               "failed: port is already allocated")
            else:
                portmod.check_free(p["proto"], p["host_ip"], p["host_port"])
            db.execute("INSERT INTO ports VALUES (?,?,?,?,?,?,?)",
                       (cid, p["proto"], p["host_ip"], p["host_port"], ip,
                        p["container_port"], ip6))

    def _repoint_ports(self, cid: str) -> bool:
        """Published ports go to the container's first interface (eth0): after a
        disconnect and a connect (docker-compose v1 does both before every start, to set
        the aliases) that is another address.  Returns whether a port changed."""
        first = min(self.leases(cid), key=lambda lease: lease.ifname, default=None)
        if first is None:
            return False  # kept as they are until the container is connected again
        with self.store.write() as db:
            changed = db.execute("UPDATE ports SET container_ip=?, container_ip6=? WHERE "
                                 "container_id=? AND (container_ip!=? OR container_ip6!=?)",
                                 (first.ip, first.ip6, cid, first.ip, first.ip6)).rowcount
        return bool(changed)

    def _port_of_range(self, db: sqlite3.Connection, p: dict[str, Any]) -> int:
        """-p 8000-8010:80: the first port of the range nobody holds (docker's)."""
        from tomato.network import ports as portmod

        for port in range(p["host_port"], p["host_port_end"] + 1):
            q = {**p, "host_port": port}
            if self._port_taken(db, q):
                continue
            try:
                portmod.check_free(p["proto"], p["host_ip"], port)
            except Conflict:
                continue
            return port
        span = f"{p['host_port']}-{p['host_port_end']}"
        raise Conflict(f"Bind for {portmod.where(p['host_ip'], span)} failed: port is "
                       "already allocated")

    def _newlease_of(self, cid: str, n: Network, ifname: str, ip: str, aliases: list[str],
                     mac: str, ip6: str = "") -> Lease:
        import ipaddress

        from tomato.network import ipam

        net = ipaddress.IPv4Network(n.subnet)
        with self.store.write() as db:
            used = {r[0] for r in db.execute("SELECT ipnum FROM endpoints WHERE network_id=?",
                                             (n.id,))}
            used.add(int(ipaddress.IPv4Address(n.gateway)))
            if ip:
                addr = ipam.parse_ip(ip)
                if addr not in net or addr in (net.network_address, net.broadcast_address):
                    raise InvalidArgument(f"invalid address {ip}: it does not belong to "
                                          f"network {n.name} ({n.subnet})")
                if int(addr) in used:
                    raise Conflict(f"Address already in use: {ip} on network {n.name}")
            else:
                row = db.execute("SELECT last FROM ipam_cursor WHERE network_id=?",
                                 (n.id,)).fetchone()
                addr = ipam.next_free(net, used, row[0] if row else 0)
                db.execute("INSERT OR REPLACE INTO ipam_cursor VALUES (?,?)",
                           (n.id, int(addr)))
            addr6 = self._lease6(db, n, ip6)
            lease = Lease(n.id, cid, str(addr), mac or ipam.mac_for(addr), ifname,
                          f"tv{cid[:7]}{n.id[:6]}", tuple(aliases), addr6)
            try:
                db.execute("INSERT INTO endpoints VALUES (?,?,?,?,?,?,?,?,?)",
                           (n.id, cid, lease.ip, int(addr), lease.mac, ifname, lease.veth,
                            json.dumps(list(aliases)), addr6))
            except sqlite3.IntegrityError as err:
                raise Conflict(f"container {cid[:12]} is already attached to network "
                               f"{n.name}") from err
        return lease

    @staticmethod
    def _lease6(db: sqlite3.Connection, n: Network, ip6: str) -> str:
        """The container's IPv6 address on an IPv6 network ("" on others)."""
        import ipaddress

        from tomato.network import ipam

        if not n.subnet6:
            if ip6:
                raise InvalidArgument(f"invalid address {ip6}: network {n.name} has no IPv6 "
                                      "subnet (create it with --ipv6)")
            return ""
        net6 = ipaddress.IPv6Network(n.subnet6)
        used = {r[0] for r in db.execute("SELECT ip6 FROM endpoints WHERE network_id=? AND "
                                         "ip6 != ''", (n.id,))}
        used.add(n.gateway6)
        if not ip6:
            return str(ipam.next_free6(net6, used))
        addr = ipam.parse_ip6(ip6)
        if addr not in net6 or addr == net6.network_address:
            raise InvalidArgument(f"invalid address {ip6}: it does not belong to network "
                                  f"{n.name} ({n.subnet6})")
        if str(addr) in used:
            raise Conflict(f"Address already in use: {ip6} on network {n.name}")
        return str(addr)

    def _fit_default(self, n: Network) -> Network:
        """The default bridge, when it has to be made (first use, after a reboot): move
        its subnet first if a host route (another engine, a VPN) took it meanwhile and
        nobody uses it."""
        import ipaddress

        from tomato.network import ipam

        if not n.builtin or _link_exists(n.bridge):
            return n
        if self._config().get("default_subnet"):
            return n
        net = ipaddress.IPv4Network(n.subnet)
        if ipam.overlapping(net, ipam.host_routes()) is None:
            return n
        with self.store.write() as db:
            if db.execute("SELECT 1 FROM endpoints WHERE network_id=?", (n.id,)).fetchone():
                return n
            new = ipam.choose_subnet(self._taken(db, skip=n.bridge))
            db.execute("UPDATE networks SET subnet=?, gateway=? WHERE id=?",
                       (str(new), str(ipam.gateway_of(new)), n.id))
            return network_of(db.execute("SELECT * FROM networks WHERE id=?",
                                       (n.id,)).fetchone())


def _link_exists(name: str) -> bool:
    """In this process's netns (/sys/class/net shows the netns that mounted sysfs)."""
    import socket

    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True
