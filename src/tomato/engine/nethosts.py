"""What a container learns of its networks: its /etc/hosts (its peers by name,
alias and short id on user networks; the default bridge has no name resolution,
as Docker's), rewritten when peers come and go; and Docker's shapes of a network
(`network inspect`) and of a container's endpoints (NetworkSettings.Networks)."""

from __future__ import annotations

import json
from pathlib import Path

from tomato.engine.netrecords import Network, NetworkRecords, network_of
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
                    "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0}
        return out

    def hosts_text(self, cid: str, hostname: str, add_hosts: list[str]) -> str:
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
                        "SELECT e.ip, e.aliases, c.name, e.container_id FROM endpoints e "
                        "LEFT JOIN containers c "
                        "ON c.id=e.container_id WHERE e.network_id=? AND e.container_id!=?",
                        (lease.network_id, cid)).fetchall():
                    # Docker's embedded DNS answers the name, the aliases, the short id.
                    names = ([other[2]] if other[2] else []) + json.loads(other[1]) + \
                        [other[3][:12]]
                    peers.append((other[0], names))
        extra = []
        for item in add_hosts:
            name, _, ip = item.partition(":")
            extra.append((name, gateway if ip == "host-gateway" else ip))
        return files.render_hosts(hostname, [lease.ip for lease in leases], extra, peers)

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
                                   opts.get("add_hosts", []))
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
                "IPv4Address": f"{lease.ip}/{n.prefixlen}", "IPv6Address": ""}
    return {"Name": n.name, "Id": n.id, "Created": iso(n.created), "Scope": "local",
            "Driver": "bridge", "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None,
                     "Config": [{"Subnet": n.subnet, "Gateway": n.gateway}]},
            "Internal": n.internal, "Attachable": False, "Ingress": False,
            "Containers": containers,
            "Options": {"com.docker.network.bridge.name": n.bridge,
                        **({"com.docker.network.bridge.default_bridge": "true"}
                           if n.builtin else {})},
            "Labels": n.labels}


def pseudo_network(root: Path, name: str) -> dict[str, Any]:
    """`host` and `none` are modes, not records; listed as Docker lists them."""
    nid = _sha256(f"{root}:{name}".encode()).hexdigest()
    return {"Name": name, "Id": nid, "Created": "0001-01-01T00:00:00Z", "Scope": "local",
            "Driver": "host" if name == "host" else "null", "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": []}, "Internal": False,
            "Attachable": False, "Ingress": False, "Containers": {}, "Options": {},
            "Labels": {}}
