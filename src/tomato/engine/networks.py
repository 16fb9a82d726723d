"""Networks: records, IP leases and published ports in the engine's store, and the
use cases (create/ls/inspect/rm/prune/connect/disconnect, attach at container
create, detach at rm, reconcile after crashes).

Lifetimes:
- a container's netns (``ROOT/netns/<id>``), its veths, its leases and its
  ports live from `create` to `rm` (a restart keeps its address);
- a user network's bridge lives until `network rm`; the default network's
  bridge (``tomato0``) exists while a container is attached to it, so an
  idle engine leaves no device behind;
- Tomato's nft table (``ip tomato``) is rendered from these records whenever
  a bridge appears or goes, or ports change, and is deleted when empty.

Every change to devices or rules happens under the ``network`` flock, and a
container being created holds ``ROOT/netns/.<id>.lock`` until its record
exists, so ``sweep`` (run by the next command) removes exactly what a killed
process left: netns without a record, leases and ports without a container.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from tomato import sqlitedb as sqlite3
from tomato.engine.store import Store
from tomato.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NoSpace,
    NotFound,
    TomatoError,
)
from tomato.hashing import sha256 as _sha256  # no OpenSSL load (~3 ms) for short ids
from tomato.records import record

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = Path("/var/lib/tomato")
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

    @property
    def prefixlen(self) -> int:
        return int(self.subnet.split("/")[1])


@record
class Lease:
    network_id: str
    container_id: str
    ip: str
    mac: str
    ifname: str
    veth: str
    aliases: tuple[str, ...]


def _network(row: tuple[Any, ...]) -> Network:
    return Network(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6],
                   json.loads(row[7]), bool(row[8]))


def _lease(row: tuple[Any, ...]) -> Lease:
    return Lease(row[0], row[1], row[2], row[4], row[5], row[6], tuple(json.loads(row[7])))


def validate_network_name(name: str) -> str:
    if not name or not name[0].isalnum() or not all(c.isalnum() or c in "_.-" for c in name):
        raise InvalidArgument(f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] '
                              "are allowed")
    return name


class Networks:
    """The networks, endpoints and ports tables, and the devices they stand for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = Store(root)
        self.ns_dir = root / "netns"
        self._lock_fd = -1
        self._pending: Any = None  # an nft run started by attach, see settle()
        own = root == DEFAULT_ROOT
        tag = "" if own else _sha256(str(root).encode()).hexdigest()[:7]
        # Another engine root on the same host (a test session) gets its own names.
        self.table = "tomato" if own else f"tomato_{tag}"
        self.default_bridge = "tomato0" if own else f"tomato0-{tag}"  # tables: MIGRATIONS

    # -- paths and locks ---------------------------------------------------------------
    def netns_path(self, cid: str) -> str:
        return str(self.ns_dir / cid)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The ``network`` flock (as Store.lock), its fd kept so an nft child can hold it."""
        fd = os.open(self.store.lock_dir / "network.lock",
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
            yield
        finally:
            self._lock_fd = -1
            os.close(fd)

    def claim(self, cid: str) -> AbstractContextManager[None]:
        """Held by a create from before its netns exists until its record does."""
        from tomato.engine.claims import claim

        return claim(self.ns_dir / f".{cid}.lock")

    def _claimed(self, cid: str) -> bool:
        """Whether a live create holds the claim; a stale lock file (kill -9) goes."""
        from tomato.engine.claims import claimed

        return claimed(self.ns_dir / f".{cid}.lock")

    # -- records -----------------------------------------------------------------------
    def all(self) -> list[Network]:
        with self.store.write() as db:
            self._default(db)
            rows = db.execute("SELECT * FROM networks ORDER BY created").fetchall()
        return [_network(r) for r in rows]

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
        return _network(row)

    def _default(self, db: sqlite3.Connection) -> Network:
        row = db.execute("SELECT * FROM networks WHERE name='bridge'").fetchone()
        if row is not None:
            return _network(row)
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
    def _insert(db: sqlite3.Connection, n: Network) -> None:
        db.execute("INSERT INTO networks VALUES (?,?,?,?,?,?,?,?,?)",
                   (n.id, n.name, n.subnet, n.gateway, int(n.internal), n.bridge, n.created,
                    json.dumps(n.labels), int(n.builtin)))

    def leases(self, cid: str | None = None, network_id: str | None = None) -> list[Lease]:
        q, args = "SELECT * FROM endpoints", []
        if cid is not None:
            q, args = q + " WHERE container_id=?", [cid]
        elif network_id is not None:
            q, args = q + " WHERE network_id=?", [network_id]
        with self.store.read() as db:
            return [_lease(r) for r in db.execute(q, args).fetchall()]

    def ports(self, cid: str) -> list[dict[str, Any]]:
        with self.store.read() as db:
            rows = db.execute("SELECT proto, host_ip, host_port, container_port FROM ports "
                              "WHERE container_id=? ORDER BY container_port", (cid,)).fetchall()
        return [{"proto": r[0], "host_ip": r[1], "host_port": r[2], "container_port": r[3]}
                for r in rows]

    # -- network use cases -------------------------------------------------------------
    def create(self, name: str, subnet: str = "", gateway: str = "", internal: bool = False,
               labels: dict[str, str] | None = None, driver: str = "bridge") -> Network:
        from tomato.network import ipam

        validate_network_name(name)
        if driver != "bridge":
            raise InvalidArgument(f"plugin \"{driver}\" not found: only the bridge driver "
                                  "is supported")
        if name in BUILTIN:
            raise Conflict(f"{name} is a pre-defined network and cannot be created")
        net = ipam.parse_subnet(subnet) if subnet else None
        if gateway and net is None:
            raise InvalidArgument("a gateway needs a --subnet")
        gw = ipam.gateway_of(net, gateway) if net is not None else None
        nid = os.urandom(32).hex()
        with self.locked():
            with self.store.write() as db:
                self._default(db)
                if db.execute("SELECT 1 FROM networks WHERE name=?", (name,)).fetchone():
                    raise AlreadyExists(f"network with name {name} already exists")
                taken = self._taken(db)
                if net is None:
                    net = ipam.choose_subnet(taken)
                    gw = ipam.gateway_of(net)
                else:
                    clash = ipam.overlapping(net, taken)
                    if clash is not None:
                        raise Conflict(f"invalid pool request: pool {net} overlaps with "
                                       f"{clash} (another network or a host route)")
                n = Network(nid, name, str(net), str(gw), internal, f"tomato-{nid[:8]}",
                            time.time(), dict(labels or {}), False)
                self._insert(db, n)
            try:
                self._bridge_up(n)
                self._apply_rules()
            except BaseException:
                self._bridge_down(n)
                with self.store.write() as db:
                    db.execute("DELETE FROM networks WHERE id=?", (n.id,))
                raise
        self._event("create", n)
        return n

    def _event(self, action: str, n: Network, **extra: str) -> None:
        from tomato.engine import events

        events.emit(self.root, "network", action, n.id,
                    {"name": n.name, "type": "bridge", **extra})

    def remove(self, ref: str) -> Network:
        n = self.get(ref)
        if n.builtin or ref in BUILTIN:
            raise Conflict(f"{n.name} is a pre-defined network and cannot be removed")
        with self.locked():
            with self.store.read() as db:
                users = db.execute("SELECT container_id FROM endpoints WHERE network_id=?",
                                   (n.id,)).fetchall()
            if users:
                raise Conflict(f"error while removing network: network {n.name} id {n.id} "
                               "has active endpoints")
            # The device before the record: killed in between, `network rm` still works.
            self._bridge_down(n)
            with self.store.write() as db:
                db.execute("DELETE FROM networks WHERE id=?", (n.id,))
                db.execute("DELETE FROM ipam_cursor WHERE network_id=?", (n.id,))
            self._apply_rules()
        self._event("destroy", n)
        return n

    def prune(self) -> list[str]:
        removed = []
        for n in self.all():
            if not n.builtin and not self.leases(network_id=n.id):
                try:
                    self.remove(n.id)
                    removed.append(n.name)
                except Conflict:
                    continue
        return removed

    # -- devices -------------------------------------------------------------------------
    def _bridge_up(self, n: Network) -> bool:
        from tomato.network import bridge
        from tomato.network.netlink import Netlink

        with Netlink() as nl:
            _, created = bridge.ensure_bridge(nl, n.bridge, n.gateway, n.prefixlen,
                                              forward=not n.internal)
        return created

    def _bridge_down(self, n: Network) -> None:
        from tomato.network.netlink import Netlink

        with Netlink() as nl:
            nl.delete_link(n.bridge)

    def _apply_rules(self) -> None:
        """Render Tomato's nft table from the records (caller holds the lock)."""
        from tomato.network import nft

        nft.finish(self._start_rules())

    def _start_rules(self) -> Any:
        """Start rendering the table; the nft child holds the network lock until done."""
        from tomato.network import nft

        with self.store.read() as db:
            rows = db.execute("SELECT bridge, subnet, internal FROM networks").fetchall()
            ports = db.execute("SELECT proto, host_ip, host_port, container_ip, "
                               "container_port FROM ports").fetchall()
        script = nft.render(self.table, [nft.Net(r[0], r[1], bool(r[2])) for r in rows],
                            [nft.Port(*p) for p in ports])
        return nft.start(script, (self._lock_fd,) if self._lock_fd >= 0 else ())

    def teardown(self, cid: str) -> None:
        """Everything the container's networking holds; idempotent (also for sweep)."""
        try:
            self.settle()  # a create that failed after attach: reap its nft run first
        except TomatoError:
            pass
        with self.locked():
            user_nets = self._teardown_locked(cid)
        if user_nets:
            self.refresh_hosts(user_nets)

    def teardown_started(self, cid: str) -> Any:
        """``teardown`` on a thread; returns a function that waits for it (and re-raises).

        Deleting a link waits for RCU grace periods in the kernel (20-50 ms here) while
        this process sleeps in send(): the caller unmounts and deletes the container's
        files meanwhile.  Only netlink, sqlite and nft run on the thread: no fork, no
        setns, nothing that needs a single-threaded process."""
        import threading

        failure: list[BaseException] = []

        def work() -> None:
            try:
                self.teardown(cid)
            except BaseException as err:  # noqa: BLE001 — handed to the joiner
                failure.append(err)

        thread = threading.Thread(target=work, name=f"net-{cid[:12]}", daemon=True)
        thread.start()

        def join() -> None:
            thread.join()
            if failure:
                raise failure[0]
        return join

    def _teardown_locked(self, cid: str) -> set[str]:
        from tomato.network import netns
        from tomato.network.netlink import Netlink

        leases = self.leases(cid)
        with self.store.write() as db:
            had_ports = db.execute("SELECT 1 FROM ports WHERE container_id=?",
                                   (cid,)).fetchone() is not None
            db.execute("DELETE FROM endpoints WHERE container_id=?", (cid,))
            db.execute("DELETE FROM ports WHERE container_id=?", (cid,))
            # The default bridge stays when its last container goes, as Docker's docker0:
            # making it (and its nft rules) again for the next container cost more than
            # the container itself.
            row = db.execute("SELECT * FROM networks WHERE builtin=1").fetchone()
            default = _network(row) if row is not None else None
        # Records first: if we are killed now, sweep finds the netns without a record and
        # removes the devices; the other order could leave leases nobody owns.  The nft
        # commit and the link deletion both sleep in the kernel: side by side.
        # A teardown killed half-way left no records but maybe rules: render them again.
        stale = not leases and os.path.lexists(self.netns_path(cid))
        rules = self._start_rules() if had_ports or stale else None
        try:
            # Unpinning the netns is enough for the veths: the kernel destroys it (and
            # the pairs inside, host ends too) in its own worker once unused, where
            # deleting each link here would sleep ~20 ms in RCU grace periods.  Only
            # links with no pinned netns to go with are deleted by name.
            pinned = netns.is_mounted(self.netns_path(cid))
            netns.remove(self.netns_path(cid))
            doomed = [] if pinned else [lease.veth for lease in leases]
            if doomed:
                with Netlink() as nl:
                    nl.delete_links(doomed)
        finally:
            if rules is not None:
                from tomato.network import nft

                nft.finish(rules)
        # Peers on user networks forget our name; the default bridge has no names.
        return {lease.network_id for lease in leases} - (
            {default.id} if default is not None else set())

    def sweep(self) -> list[str]:
        """Remove what killed tomato processes left: netns, leases and ports whose
        container has no record (and whose create is not still running)."""
        try:
            entries = os.listdir(self.ns_dir)
        except FileNotFoundError:
            entries = []
        with self.store.read() as db:
            cids = {e[1:-5] if e.startswith(".") and e.endswith(".lock") else e
                    for e in entries}
            cids |= {r[0] for r in db.execute("SELECT DISTINCT container_id FROM endpoints")}
            cids |= {r[0] for r in db.execute("SELECT DISTINCT container_id FROM ports")}
            if not cids:
                return []
            try:
                known = {r[0] for r in db.execute("SELECT id FROM containers")}
            except sqlite3.OperationalError:
                known = set()
        orphans = []
        for c in sorted(cids):
            claimed = self._claimed(c)  # also removes a lock file a killed create left
            if c in known or claimed:
                continue
            # Asked again after the claim: a create releases its claim only once its
            # record exists, so a record missing now is missing for good.
            with self.store.read() as db:
                if db.execute("SELECT 1 FROM containers WHERE id=?", (c,)).fetchone():
                    continue
            orphans.append(c)
        for cid in orphans:
            try:
                self.teardown(cid)
            except NoSpace:
                break  # housekeeping: a full disk must not fail the read that asked for it
        return orphans

    # -- containers ----------------------------------------------------------------------
    def check_ports(self, specs: list[dict[str, Any]]) -> None:
        """Refuse ports in use before anything is created (attach checks again, locked)."""
        from tomato.network import ports as portmod

        seen: set[tuple[str, str, int]] = set()
        with self.store.read() as db:
            for p in specs:
                if not p["host_port"]:
                    continue
                key = (p["proto"], p["host_ip"], p["host_port"])
                if key in seen or self._port_taken(db, p):
                    raise Conflict(f"Bind for {p['host_ip'] or '0.0.0.0'}:{p['host_port']} "
                                   "failed: port is already allocated")
                seen.add(key)
                portmod.check_free(p["proto"], p["host_ip"], p["host_port"])

    @staticmethod
    def _port_taken(db: sqlite3.Connection, p: dict[str, Any]) -> bool:
        return db.execute("SELECT 1 FROM ports WHERE proto=? AND host_port=? AND "
                          "(host_ip=? OR host_ip='' OR ?='')",
                          (p["proto"], p["host_port"], p["host_ip"],
                           p["host_ip"])).fetchone() is not None

    def _add_ports(self, db: sqlite3.Connection, cid: str, ip: str,
                   specs: list[dict[str, Any]]) -> None:
        from tomato.network import ports as portmod

        for p in specs:
            p = dict(p)
            if not p["host_port"]:
                taken = {r[0] for r in db.execute("SELECT host_port FROM ports WHERE proto=?",
                                                  (p["proto"],))}
                p["host_port"] = portmod.free_port(p["proto"], p["host_ip"], taken)
            elif self._port_taken(db, p):
                raise Conflict(f"Bind for {p['host_ip'] or '0.0.0.0'}:{p['host_port']} "
                               "failed: port is already allocated")
            else:
                portmod.check_free(p["proto"], p["host_ip"], p["host_port"])
            db.execute("INSERT INTO ports VALUES (?,?,?,?,?,?)",
                       (cid, p["proto"], p["host_ip"], p["host_port"], ip,
                        p["container_port"]))

    def _new_lease(self, cid: str, n: Network, ifname: str, ip: str, aliases: list[str],
                   mac: str) -> Lease:
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
            lease = Lease(n.id, cid, str(addr), mac or ipam.mac_for(addr), ifname,
                          f"tv{cid[:7]}{n.id[:6]}", tuple(aliases))
            try:
                db.execute("INSERT INTO endpoints VALUES (?,?,?,?,?,?,?,?)",
                           (n.id, cid, lease.ip, int(addr), lease.mac, ifname, lease.veth,
                            json.dumps(list(aliases))))
            except sqlite3.IntegrityError as err:
                raise Conflict(f"container {cid[:12]} is already attached to network "
                               f"{n.name}") from err
        return lease

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
            return _network(db.execute("SELECT * FROM networks WHERE id=?",
                                       (n.id,)).fetchone())

    def _plug(self, host: Any, inside: Any, cid: str, n: Network, ifname: str, ip: str,
              aliases: list[str], mac: str, default_route: bool,
              lease: Lease | None = None) -> bool:
        """Lease (unless given), bridge, veth; returns whether the bridge was made."""
        from tomato.network import bridge

        if n.builtin and (ip or aliases):
            raise InvalidArgument("user specified IP address and network-scoped aliases are "
                                  "supported only for user defined networks")
        n = self._fit_default(n)
        if lease is None:
            lease = self._new_lease(cid, n, ifname, ip, aliases, mac)
        index, created = bridge.ensure_bridge(host, n.bridge, n.gateway, n.prefixlen,
                                              forward=not n.internal)
        bridge.plug(host, inside, self.netns_path(cid), index, bridge.Endpoint(
            lease.veth, lease.ifname, lease.ip, n.prefixlen, n.gateway, lease.mac,
            default_route and not n.internal))
        return created

    def attach(self, cid: str, ref: str, ip: str = "", aliases: list[str] | None = None,
               mac: str = "", ports: list[dict[str, Any]] | None = None) -> Network:
        """At create: the container's netns with lo and eth0 on network ``ref``, its ports."""
        from tomato.network import bridge, netns
        from tomato.network.netlink import Netlink

        n = self.get(ref)
        self.ns_dir.mkdir(mode=0o700, exist_ok=True)
        with self.locked():
            try:
                with netns.create(self.netns_path(cid)) as inside, Netlink() as host:
                    bridge.loopback_up(inside)
                    created = self._plug(host, inside, cid, n, "eth0", ip, aliases or [], mac,
                                         True)
                if ports:
                    lease = self.leases(cid)[0]
                    with self.store.write() as db:
                        self._add_ports(db, cid, lease.ip, ports)
                if created or ports:
                    # Not waited for here: settle() does, before the record is written.
                    self._pending = self._start_rules()
            except BaseException:
                self._teardown_locked(cid)
                raise
        return n

    def settle(self) -> None:
        """Wait for the rules attach started (their nft child held the lock till done)."""
        proc, self._pending = self._pending, None
        if proc is not None:
            from tomato.network import nft

            nft.finish(proc)

    def replug(self, cid: str) -> None:
        """After a reboot the netns is gone but the leases remain: make it again."""
        from tomato.network import bridge, netns
        from tomato.network.netlink import Netlink

        with self.locked():
            if netns.is_mounted(self.netns_path(cid)):
                return
            netns.remove(self.netns_path(cid))
            self.ns_dir.mkdir(mode=0o700, exist_ok=True)
            leases = sorted(self.leases(cid), key=lambda lease: lease.ifname)
            with netns.create(self.netns_path(cid)) as inside, Netlink() as host:
                bridge.loopback_up(inside)
                for i, lease in enumerate(leases):
                    host.delete_link(lease.veth)
                    self._plug(host, inside, cid, self.get(lease.network_id), lease.ifname,
                               "", [], "", i == 0, lease=lease)
            self._apply_rules()

    def connect(self, cid: str, ref: str, ip: str = "", aliases: list[str] | None = None
                ) -> Network:
        from tomato.network import netns
        from tomato.network.netlink import Netlink

        n = self.get(ref)
        path = self.netns_path(cid)
        if not netns.is_mounted(path):
            raise Conflict(f"container {cid[:12]} has no network of its own to connect "
                           "(its network mode is none, host or container:)")
        with self.locked():
            leases = self.leases(cid)
            if any(lease.network_id == n.id for lease in leases):
                raise Conflict(f"endpoint with name {cid[:12]} already exists in network "
                               f"{n.name}")
            names = {lease.ifname for lease in leases}
            ifname = next(f"eth{i}" for i in range(len(names) + 1) if f"eth{i}" not in names)
            try:
                with netns.entered(path) as inside, Netlink() as host:
                    created = self._plug(host, inside, cid, n, ifname, ip, aliases or [], "",
                                         not leases)
            except BaseException:
                with self.store.write() as db:
                    db.execute("DELETE FROM endpoints WHERE network_id=? AND container_id=?",
                               (n.id, cid))
                raise
            if created:
                self._apply_rules()
        self.refresh_hosts({n.id})
        self._event("connect", n, container=cid)
        return n

    def disconnect(self, cid: str, ref: str) -> Network:
        from tomato.network.netlink import Netlink

        n = self.get(ref)
        with self.locked():
            lease = next((x for x in self.leases(cid) if x.network_id == n.id), None)
            if lease is None:
                raise Conflict(f"container {cid[:12]} is not connected to network {n.name}")
            with Netlink() as nl:
                nl.delete_link(lease.veth)
            # Bridges stay (the default one as Docker's docker0, a user network's until
            # `network rm`): only the endpoint goes.
            with self.store.write() as db:
                db.execute("DELETE FROM endpoints WHERE network_id=? AND container_id=?",
                           (n.id, cid))
        self.refresh_hosts({n.id}, also=[cid])
        self._event("disconnect", n, container=cid)
        return n

    def settings(self, cid: str) -> dict[str, Any]:
        """Docker's NetworkSettings.Networks for one container."""
        out: dict[str, Any] = {}
        with self.store.read() as db:
            for lease in self.leases(cid):
                row = db.execute("SELECT * FROM networks WHERE id=?",
                                 (lease.network_id,)).fetchone()
                if row is None:
                    continue
                n = _network(row)
                out[n.name] = {"NetworkID": n.id, "EndpointID": _sha256(
                    (n.id + cid).encode()).hexdigest(), "Gateway": n.gateway,
                    "IPAddress": lease.ip, "IPPrefixLen": n.prefixlen,
                    "MacAddress": lease.mac, "Aliases": list(lease.aliases) or None,
                    "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0}
        return out

    # -- hosts files -----------------------------------------------------------------------
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


__all__ = ["Networks", "Network", "Lease", "BUILTIN", "sweep", "is_networked"]


def sweep(root: Path) -> list[str]:
    """The cheap reconcile every command may run: only when some netns is pinned."""
    try:
        if not os.listdir(root / "netns"):
            return []
    except FileNotFoundError:
        return []
    return Networks(root).sweep()


def is_networked(mode: str) -> bool:
    """Whether the container owns a netns of ours (bridge or a user network)."""
    return mode not in ("none", "host") and not mode.startswith("container:")


def _link_exists(name: str) -> bool:
    """In this process's netns (/sys/class/net shows the netns that mounted sysfs)."""
    import socket

    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def network_json(store: Networks, n: Network) -> dict[str, Any]:
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
