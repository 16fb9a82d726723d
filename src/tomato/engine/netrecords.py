"""The networks' records in the engine's store: the ``networks`` table (the default
``bridge`` made on first use), each container's leases (``endpoints``: its address
on each network, its veth) and published ports.  Names of host devices and of the
nft table carry a tag of the root, so two engine roots on one host (test
sessions) never share them.  Nothing here touches the kernel's devices: that is
networks.py's."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tomato import sqlitedb as sqlite3
from tomato.engine.config import DEFAULT_ROOT
from tomato.engine.store import Store
from tomato.errors import InvalidArgument, NotFound
from tomato.hashing import sha256 as _sha256  # no OpenSSL load (~3 ms) for short ids
from tomato.records import record

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.explain.trace import Explainer

BUILTIN = ("bridge", "host", "none")


@record
class Network:
    id: str
    name: str
    subnet: str
    gateway: str
    internal: bool
    bridge: str
    created: float
    labels: dict[str, str]
    builtin: bool
    subnet6: str = ""   #: with --ipv6: the second subnet, and its gateway
    gateway6: str = ""

    @property
    def prefixlen(self) -> int:
        return int(self.subnet.split("/")[1])

    @property
    def prefixlen6(self) -> int:
        return int(self.subnet6.split("/")[1]) if self.subnet6 else 0


@record
class Lease:
    network_id: str
    container_id: str
    ip: str
    mac: str
    ifname: str
    veth: str
    aliases: tuple[str, ...]
    ip6: str = ""


def network_of(row: tuple[Any, ...]) -> Network:
    return Network(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6],
                   json.loads(row[7]), bool(row[8]), row[9], row[10])


def lease_of(row: tuple[Any, ...]) -> Lease:
    return Lease(row[0], row[1], row[2], row[4], row[5], row[6], tuple(json.loads(row[7])),
                 row[8])


def validate_network_name(name: str) -> str:
    if not name or not name[0].isalnum() or not all(c.isalnum() or c in "_.-" for c in name):
        raise InvalidArgument(f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] '
                              "are allowed")
    return name


def is_networked(mode: str) -> bool:
    """Whether the container owns a netns of ours (bridge or a user network); a rootless
    engine's slirp4netns namespace is engine/rootless_net.py's."""
    return mode not in ("none", "host") and not mode.startswith(("container:", "slirp4netns"))


class NetworkRecords:
    """The tables, read and written (Networks adds the devices)."""

    def __init__(self, root: Path, explain: Explainer | None = None) -> None:
        self.root = root
        #: --explain: told of each device made or removed (None: nobody)
        self.explain = explain
        self.store = Store(root)
        self.ns_dir = root / "netns"
        self._lock_fd = -1
        self._pending: Any = None  # an nft run started by attach, see settle()
        self._made_bridge = False  # a plug made a bridge: the rules must be rendered
        own = root == DEFAULT_ROOT
        tag = "" if own else _sha256(str(root).encode()).hexdigest()[:7]
        # Another engine root on the same host (a test session) gets its own names.
        self.table = "tomato" if own else f"tomato_{tag}"
        self.default_bridge = "tomato0" if own else f"tomato0-{tag}"  # tables: MIGRATIONS

    def netns_path(self, cid: str) -> str:
        return str(self.ns_dir / cid)

    def all(self) -> list[Network]:
        with self.store.write() as db:
            self._default(db)
            rows = db.execute("SELECT * FROM networks ORDER BY created").fetchall()
        return [network_of(r) for r in rows]

    def get(self, ref: str) -> Network:
        with self.store.write() as db:
            if ref == "bridge":
                return self._default(db)
            return self._find(db, ref)

    def _find(self, db: sqlite3.Connection, ref: str) -> Network:
        row = db.execute("SELECT * FROM networks WHERE name=? OR id=?", (ref, ref)).fetchone()
        if row is None and ref and all(c in "0123456789abcdef" for c in ref):
            rows = db.execute("SELECT * FROM networks WHERE id LIKE ?", (ref + "%",)).fetchall()
            if len(rows) > 1:
                raise InvalidArgument(f"network {ref} is ambiguous ({len(rows)} matches found "
                                      "based on ID prefix)")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"network {ref} not found")
        return network_of(row)

    def _default(self, db: sqlite3.Connection) -> Network:
        row = db.execute("SELECT * FROM networks WHERE name='bridge'").fetchone()
        if row is not None:
            return network_of(row)
        from tomato.network import ipam

        subnet = self._config().get("default_subnet")
        if subnet:
            net = ipam.parse_subnet(subnet)
        else:
            net = ipam.choose_subnet(self._taken(db))
        n = Network(os.urandom(32).hex(), "bridge", str(net), str(ipam.gateway_of(net)), False,
                    self.default_bridge, time.time(), {}, True)
        self._insert(db, n)
        return n

    def _config(self) -> dict[str, Any]:
        """``ROOT/network.json``: {"default_subnet": "10.99.0.0/16"} and the like."""
        try:
            with open(self.root / "network.json") as f:
                raw: dict[str, Any] = json.load(f)
        except (OSError, ValueError):
            return {}
        return raw

    def _taken(self, db: sqlite3.Connection, skip: str = "") -> list[Any]:
        import ipaddress

        from tomato.network import ipam

        ours = {r[0]: r[1] for r in db.execute("SELECT subnet, bridge FROM networks")
                if r[1] != skip}
        nets = [ipaddress.IPv4Network(s) for s in ours]
        return nets + ipam.host_routes()

    @staticmethod
    def _taken6(db: sqlite3.Connection) -> list[Any]:
        import ipaddress

        return [ipaddress.IPv6Network(r[0]) for r in
                db.execute("SELECT subnet6 FROM networks WHERE subnet6 != ''")]

    @staticmethod
    def _insert(db: sqlite3.Connection, n: Network) -> None:
        db.execute("INSERT INTO networks VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                   (n.id, n.name, n.subnet, n.gateway, int(n.internal), n.bridge, n.created,
                    json.dumps(n.labels), int(n.builtin), n.subnet6, n.gateway6))

    def leases(self, cid: str | None = None, network_id: str | None = None) -> list[Lease]:
        q, args = "SELECT * FROM endpoints", []
        if cid is not None:
            q, args = q + " WHERE container_id=?", [cid]
        elif network_id is not None:
            q, args = q + " WHERE network_id=?", [network_id]
        with self.store.read() as db:
            return [lease_of(r) for r in db.execute(q, args).fetchall()]

    def ports(self, cid: str) -> list[dict[str, Any]]:
        """A container's published ports, one entry an address family: a port published
        on every address of a dual-stack container is listed on 0.0.0.0 (host_ip "")
        and on :: (as Docker lists it)."""
        with self.store.read() as db:
            rows = db.execute("SELECT proto, host_ip, host_port, container_port, container_ip6 "
                              "FROM ports WHERE container_id=? ORDER BY container_port",
                              (cid,)).fetchall()
        out = []
        for r in rows:
            out.append({"proto": r[0], "host_ip": r[1], "host_port": r[2],
                        "container_port": r[3]})
            if not r[1] and r[4]:
                out.append({**out[-1], "host_ip": "::"})
        return out
