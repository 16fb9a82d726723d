"""What a container learns of its networks: its /etc/hosts (its peers by name,
alias and short id on user networks; the default bridge has no name resolution,
as Docker's), rewritten when peers come and go; and Docker's shapes of a network
(`network inspect`) and of a container's endpoints (NetworkSettings.Networks)."""

from __future__ import annotations

import json
from pathlib import Path

from tomato import sqlitedb as sqlite3
from tomato.engine.netrecords import Lease, Network, NetworkRecords, network_of
from tomato.hashing import sha256 as _sha256

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any


class HostsFiles(NetworkRecords):
    """The hosts files and endpoint settings of the containers on these records."""

    def settings(self, cid: str) -> dict[str, Any]:
        """Docker's NetworkSettings.Networks for one container."""
        out: dict[str, Any] = {}
        with self.store.read() as db:
            for lease in self.leases(cid):
                row = db.execute("SELECT * FROM networks WHERE id=?",
                                 (lease.network_id,)).fetchone()
                if row is None:
                    continue
                n = network_of(row)
                out[n.name] = {"NetworkID": n.id, "EndpointID": _sha256(
                    (n.id + cid).encode()).hexdigest(), "Gateway": n.gateway,
                    "IPAddress": lease.ip, "IPPrefixLen": n.prefixlen,
                    "MacAddress": lease.mac, "Aliases": list(lease.aliases) or None,
                    "IPv6Gateway": n.gateway6 if lease.ip6 else "",
                    "GlobalIPv6Address": lease.ip6,
                    "GlobalIPv6PrefixLen": n.prefixlen6 if lease.ip6 else 0,
                    "IPAMConfig": None, "Links": None, "DNSNames": None}
        return out

    def hosts_text(self, cid: str, hostname: str, add_hosts: list[str],
                   links: list[str] | None = None) -> str:
        """Docker's /etc/hosts: the container's own addresses, --add-host (host-gateway:
        the first network's gateway), its peers on user networks (name, aliases, short
        id), and --link's NAME:ALIAS (legacy links, on any network: name resolution)."""
        from tomato.network import files

        leases = self.leases(cid)
        gateway = ""
        peers: list[tuple[str, list[str]]] = []
        with self.store.read() as db:
            for lease in leases:
                row = db.execute("SELECT gateway, builtin FROM networks WHERE id=?",
                                 (lease.network_id,)).fetchone()
                if row is None:
                    continue
                gateway = gateway or row[0]
                if row[1]:
                    continue  # the default bridge has no name resolution, as Docker's
                for other in db.execute(
                        "SELECT e.ip, e.aliases, c.name, e.container_id, e.ip6 FROM endpoints "
                        "e LEFT JOIN containers c "
                        "ON c.id=e.container_id WHERE e.network_id=? AND e.container_id!=?",
                        (lease.network_id, cid)).fetchall():
                    # Docker's embedded DNS answers the name, the aliases, the short id.
                    names = ([other[2]] if other[2] else []) + json.loads(other[1]) + \
                        [other[3][:12]]
                    peers += [(ip, names) for ip in (other[0], other[4]) if ip]
            peers = self._linked(db, leases, links or []) + peers
        extra = []
        for item in add_hosts:
            name, _, ip = item.partition(":")
            extra.append((name, gateway if ip == "host-gateway" else ip))
        own = [ip for lease in leases for ip in (lease.ip, lease.ip6) if ip]
        return files.render_hosts(hostname, own, extra, peers)

    def _linked(self, db: sqlite3.Connection, leases: list[Lease],
                links: list[str]) -> list[tuple[str, list[str]]]:
        """--link NAME:ALIAS: the linked container's address on a network both share (else
        its first), as "IP ALIAS ID NAME" (Docker's legacy links file entry)."""
        mine = {lease.network_id for lease in leases}
        out: list[tuple[str, list[str]]] = []
        for link in links:
            name, _, alias = link.partition(":")
            row = db.execute("SELECT id FROM containers WHERE name=? OR id=?",
                             (name, name)).fetchone()
            if row is None:
                continue  # removed since: its entry goes, as Docker's
            theirs = sorted(self.leases(row[0]), key=lambda x: (x.network_id not in mine,
                                                                 x.ifname))
            if theirs:
                out.append((theirs[0].ip, [alias, row[0][:12], name]))
        return out

    def refresh_hosts(self, network_ids: set[str], also: list[str] | None = None) -> None:
        """Rewrite the hosts file of every container on these networks (and ``also``)."""
        from tomato.network import files

        with self.store.read() as db:
            marks = ",".join("?" * len(network_ids))
            rows = db.execute(
                f"SELECT DISTINCT c.id, c.options, c.spec FROM endpoints e JOIN containers c "
                f"ON c.id=e.container_id WHERE e.network_id IN ({marks})",
                list(network_ids)).fetchall()
            for cid in also or []:
                rows += db.execute("SELECT id, options, spec FROM containers WHERE id=?",
                                   (cid,)).fetchall()
        for cid, options, spec in rows:
            path = self.root / "containers" / cid / "hosts"
            if not path.exists():
                continue
            opts = json.loads(options)
            text = self.hosts_text(cid, json.loads(spec).get("hostname", cid[:12]),
                                   opts.get("add_hosts", []), opts.get("links", []))
            try:
                files.rewrite(str(path), text)
            except OSError:
                continue


def network_json(store: NetworkRecords, n: Network) -> dict[str, Any]:
    """`network inspect`: the shape Docker's CLI and docker-py read."""
    from tomato.engine.containers import iso

    containers = {}
    with store.store.read() as db:
        for lease in store.leases(network_id=n.id):
            row = db.execute("SELECT name FROM containers WHERE id=?",
                             (lease.container_id,)).fetchone()
            containers[lease.container_id] = {
                "Name": row[0] if row else "", "MacAddress": lease.mac,
                "EndpointID": _sha256((n.id + lease.container_id).encode()).hexdigest(),
                "IPv4Address": f"{lease.ip}/{n.prefixlen}",
                "IPv6Address": f"{lease.ip6}/{n.prefixlen6}" if lease.ip6 else ""}
    config = [{"Subnet": n.subnet, "Gateway": n.gateway}]
    if n.subnet6:
        config.append({"Subnet": n.subnet6, "Gateway": n.gateway6})
    return {"Name": n.name, "Id": n.id, "Created": iso(n.created), "Scope": "local",
            "Driver": "bridge", "EnableIPv6": bool(n.subnet6), "EnableIPv4": True,
            "IPAM": {"Driver": "default", "Options": None, "Config": config},
            "Internal": n.internal, "Attachable": False, "Ingress": False,
            "Containers": containers,
            # Docker names the device of its default bridge only: docker-compose 1.29
            # wants a user network "recreated" for any com.docker.network.* option it
            # did not ask for (a second `up` failed).
            "Options": ({"com.docker.network.bridge.name": n.bridge,
                         "com.docker.network.bridge.default_bridge": "true"}
                        if n.builtin else {}),
            "Labels": n.labels}


def pseudo_network(root: Path, name: str) -> dict[str, Any]:
    """`host` and `none` are modes, not records; listed as Docker lists them."""
    nid = _sha256(f"{root}:{name}".encode()).hexdigest()
    return {"Name": name, "Id": nid, "Created": "0001-01-01T00:00:00Z", "Scope": "local",
            "Driver": "host" if name == "host" else "null", "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": []}, "Internal": False,
            "Attachable": False, "Ingress": False, "Containers": {}, "Options": {},
            "Labels": {}}
