"""Networks: the use cases (create/rm/prune/connect/disconnect), a container's
attach at create and teardown at rm, the devices (bridges, veths, the netns) and
nft rules they stand for, and the sweep after crashes.  The records are
netrecords.py's, the hosts files and inspect shapes nethosts.py's.

Lifetimes:
- a container's netns (``ROOT/netns/<id>``), its veths, its leases and its
  ports live from `create` to `rm` (a restart keeps its address);
- a user network's bridge lives until `network rm`; the default network's
  bridge (``tomato0``) is made with the first container on it and stays, as
  Docker's docker0 (making it and its rules again for every `run --rm` cost
  more than the container);
- Tomato's nft table (``ip tomato``) is rendered from these records whenever
  a bridge appears or goes, or ports change.

Every change to devices or rules happens under the ``network`` flock, and a
container being created holds ``ROOT/netns/.<id>.lock`` until its record
exists, so ``sweep`` (run by the next command) removes exactly what a killed
process left: netns without a record, leases and ports without a container.
"""

from __future__ import annotations

import fcntl
import functools
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from tomato import sqlitedb as sqlite3
from tomato.engine.nethosts import HostsFiles, network_json, pseudo_network
from tomato.engine.netleases import Leases
from tomato.engine.netrecords import (
    BUILTIN,
    Lease,
    Network,
    is_networked,
    network_of,
    validate_network_name,
)
from tomato.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NoSpace,
    TomatoError,
)

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["BUILTIN", "Lease", "Network", "Networks", "is_networked", "network_json",
           "pseudo_network", "sweep"]


def _in_user_netns(method: F) -> F:
    """A rootless engine's bridges, veths and nft table live in the user's network
    namespace (engine/rootless_net.py): the method runs there, in a child that joined
    it, and waits for its nft run before it returns (the child's process goes)."""

    @functools.wraps(method)
    def run(self: Networks, *args: Any, **kwargs: Any) -> Any:
        if not self.rootless:
            return method(self, *args, **kwargs)
        from tomato.engine import rootless_net

        def settled(*a: Any, **kw: Any) -> Any:
            try:
                return method(self, *a, **kw)
            finally:
                self.settle()

        return rootless_net.inside_user_netns(self.root, self.published, settled,
                                              *args, **kwargs)

    return run  # type: ignore[return-value]


class Networks(HostsFiles, Leases):
    """The networks and the devices they stand for: the use cases (create, rm, prune,
    connect, disconnect), a container's attach at create and teardown at rm, and the
    sweep of what killed commands left."""

    # -- locks and claims ------------------------------------------------------------------
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

    @property
    def rootless(self) -> bool:
        """A rootless engine's: devices in the user's network namespace."""
        from tomato._sys import userns

        return userns.rootless()

    def published(self, but: str = "") -> list[dict[str, Any]]:
        """Every published port of the records (the user's slirp4netns forwards them),
        but container ``but``'s."""
        with self.store.read() as db:
            rows = db.execute("SELECT proto, host_ip, host_port FROM ports "
                              "WHERE container_id != ?", (but,)).fetchall()
        return [{"proto": r[0], "host_ip": r[1], "host_port": r[2]} for r in rows]

    # -- network use cases -------------------------------------------------------------
    @_in_user_netns
    def create(self, name: str, subnet: str = "", gateway: str = "", internal: bool = False,
               labels: dict[str, str] | None = None, driver: str = "bridge",
               ipv6: bool = False, subnet6: str = "", gateway6: str = "") -> Network:
        """A bridge network; with ``ipv6`` dual-stack (``subnet6`` or a random ULA /64)."""
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
        if (subnet6 or gateway6) and not ipv6:
            raise InvalidArgument("an IPv6 subnet needs --ipv6 (EnableIPv6)")
        if gateway6 and not subnet6:
            raise InvalidArgument("an IPv6 gateway needs an IPv6 --subnet")
        net6 = ipam.parse_subnet6(subnet6) if subnet6 else None
        gw6 = ipam.gateway6_of(net6, gateway6) if net6 is not None else None
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
                if ipv6 and net6 is None:
                    net6 = ipam.choose_subnet6(self._taken6(db))
                    gw6 = ipam.gateway6_of(net6)
                elif net6 is not None:
                    clash6 = next((t for t in self._taken6(db) if net6.overlaps(t)), None)
                    if clash6 is not None:
                        raise Conflict(f"invalid pool request: pool {net6} overlaps with "
                                       f"{clash6} (another network)")
                n = Network(nid, name, str(net), str(gw), internal, f"tomato-{nid[:8]}",
                            time.time(), dict(labels or {}), False,
                            str(net6) if net6 else "", str(gw6) if gw6 else "")
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

    @_in_user_netns
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

    def prune(self, filters: dict[str, list[str]] | None = None) -> list[str]:
        """Unused user networks (that ``filters``' until, label and label! allow)."""
        from tomato.engine.listfilters import prune_matches

        removed = []
        for n in self.all():
            if not n.builtin and not self.leases(network_id=n.id) and \
                    prune_matches(n.created, n.labels or {}, filters or {}):
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

        with Netlink(self.explain) as nl:
            _, created = bridge.ensure_bridge(nl, n.bridge, n.gateway, n.prefixlen,
                                              not n.internal, n.gateway6, n.prefixlen6)
        return created

    def _bridge_down(self, n: Network) -> None:
        from tomato.network.netlink import Netlink

        with Netlink(self.explain) as nl:
            nl.delete_link(n.bridge)

    def _apply_rules(self) -> None:
        """Render Tomato's nft table from the records (caller holds the lock)."""
        from tomato.network import nft

        nft.finish(self._start_rules())

    def _start_rules(self) -> Any:
        """Start rendering the table; the nft child holds the network lock until done."""
        from tomato.network import nft

        with self.store.read() as db:
            rows = db.execute("SELECT bridge, subnet, internal, subnet6 FROM networks"
                              ).fetchall()
            ports = db.execute("SELECT proto, host_ip, host_port, container_ip, "
                               "container_port, container_ip6 FROM ports").fetchall()
        if self.rootless:  # the host's address is slirp4netns's bind; here every
            # forwarded port arrives at 10.0.2.100 (engine/rootless_net.py)
            ports = [(p[0], "", *p[2:]) for p in ports]
        script = nft.render(self.table, [nft.Net(r[0], r[1], bool(r[2]), r[3]) for r in rows],
                            [nft.Port(*p) for p in ports])
        return nft.start(script, (self._lock_fd,) if self._lock_fd >= 0 else ())

    @_in_user_netns
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
        setns, nothing that needs a single-threaded process.  A rootless engine's runs
        here (in the user's network namespace's child, not beside a thread)."""
        import threading

        if self.rootless:
            self.teardown(cid)
            return lambda: None

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
        if self.rootless:
            from tomato.engine import rootless_net

            rootless_net.unforward_ports(self.root, self.ports(cid), self.published(but=cid))
        with self.store.write() as db:
            had_ports = db.execute("SELECT 1 FROM ports WHERE container_id=?",
                                   (cid,)).fetchone() is not None
            db.execute("DELETE FROM endpoints WHERE container_id=?", (cid,))
            db.execute("DELETE FROM ports WHERE container_id=?", (cid,))
            # The default bridge stays when its last container goes, as Docker's docker0:
            # making it (and its nft rules) again for the next container cost more than
            # the container itself.
            row = db.execute("SELECT * FROM networks WHERE builtin=1").fetchone()
            default = network_of(row) if row is not None else None
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
                with Netlink(self.explain) as nl:
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
    def _plug(self, host: Any, inside: Any, cid: str, n: Network, ifname: str, ip: str,
              aliases: list[str], mac: str, default_route: bool,
              lease: Lease | None = None, ip6: str = "") -> Lease:
        """Lease (unless given), bridge, veth; returns the lease."""
        from tomato.network import bridge

        if n.builtin and (ip or ip6 or aliases):
            raise InvalidArgument("user specified IP address and network-scoped aliases are "
                                  "supported only for user defined networks")
        n = self._fit_default(n)
        if lease is None:
            lease = self._newlease_of(cid, n, ifname, ip, aliases, mac, ip6)
        index, created = bridge.ensure_bridge(host, n.bridge, n.gateway, n.prefixlen,
                                              not n.internal, n.gateway6, n.prefixlen6)
        self._made_bridge = self._made_bridge or created
        route = default_route and not n.internal
        bridge.plug(host, inside, self.netns_path(cid), index, bridge.Endpoint(
            lease.veth, lease.ifname, lease.ip, n.prefixlen, n.gateway, lease.mac,
            route, lease.ip6, n.prefixlen6, n.gateway6))
        return lease

    @_in_user_netns
    def attach(self, cid: str, ref: str, ip: str = "", aliases: list[str] | None = None,
               mac: str = "", ports: list[dict[str, Any]] | None = None, ip6: str = "",
               more: list[dict[str, Any]] | None = None) -> Network:
        """At create: the container's netns with lo and eth0 on network ``ref``, eth1...
        on the ``more`` networks ({"name", "ip", "ip6", "aliases"}), its ports (to its
        addresses on the first network, as Docker's)."""
        from tomato.network import bridge, netns
        from tomato.network.netlink import Netlink

        n = self.get(ref)
        others = [(self.get(m["name"]), m) for m in more or []]
        self.ns_dir.mkdir(mode=0o700, exist_ok=True)
        with self.locked():
            try:
                self._made_bridge = False
                with netns.create(self.netns_path(cid), self.explain) as inside, \
                        Netlink(self.explain) as host:
                    bridge.loopback_up(inside)
                    first = self._plug(host, inside, cid, n, "eth0", ip, aliases or [], mac,
                                       True, ip6=ip6)
                    for i, (other, m) in enumerate(others, start=1):
                        self._plug(host, inside, cid, other, f"eth{i}", m.get("ip", ""),
                                   list(m.get("aliases") or []), "", False,
                                   ip6=m.get("ip6", ""))
                if ports:
                    with self.store.write() as db:
                        self._add_ports(db, cid, first.ip, first.ip6, ports)
                    if self.rootless:  # the host's port to the user's namespace
                        from tomato.engine import rootless_net

                        rootless_net.forward_ports(self.root, self.ports(cid))
                if self._made_bridge or ports:
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

    @_in_user_netns
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
            with netns.create(self.netns_path(cid), self.explain) as inside, \
                    Netlink(self.explain) as host:
                bridge.loopback_up(inside)
                for i, lease in enumerate(leases):
                    host.delete_link(lease.veth)
                    self._plug(host, inside, cid, self.get(lease.network_id), lease.ifname,
                               "", [], "", i == 0, lease=lease)
            self._apply_rules()

    @_in_user_netns
    def connect(self, cid: str, ref: str, ip: str = "", aliases: list[str] | None = None,
                ip6: str = "") -> Network:
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
                self._made_bridge = False
                with netns.entered(path, self.explain) as inside, Netlink(self.explain) as host:
                    self._plug(host, inside, cid, n, ifname, ip, aliases or [], "",
                               not leases, ip6=ip6)
            except BaseException:
                with self.store.write() as db:
                    db.execute("DELETE FROM endpoints WHERE network_id=? AND container_id=?",
                               (n.id, cid))
                raise
            if self._repoint_ports(cid) or self._made_bridge:
                self._apply_rules()
        self.refresh_hosts({n.id})
        self._event("connect", n, container=cid)
        return n

    @_in_user_netns
    def disconnect(self, cid: str, ref: str) -> Network:
        from tomato.network.netlink import Netlink

        n = self.get(ref)
        with self.locked():
            lease = next((x for x in self.leases(cid) if x.network_id == n.id), None)
            if lease is None:
                raise Conflict(f"container {cid[:12]} is not connected to network {n.name}")
            with Netlink(self.explain) as nl:
                nl.delete_link(lease.veth)
            # Bridges stay (the default one as Docker's docker0, a user network's until
            # `network rm`): only the endpoint goes.
            with self.store.write() as db:
                db.execute("DELETE FROM endpoints WHERE network_id=? AND container_id=?",
                           (n.id, cid))
            if self._repoint_ports(cid):
                self._apply_rules()
        self.refresh_hosts({n.id}, also=[cid])
        self._event("disconnect", n, container=cid)
        return n


def sweep(root: Path) -> list[str]:
    """The cheap reconcile every command may run: only when some netns is pinned."""
    try:
        if not os.listdir(root / "netns"):
            return []
    except FileNotFoundError:
        return []
    return Networks(root).sweep()


