"""Container use cases shared by the CLI and (later) the API: create, start,
stop, kill, rm, ps, inspect, logs, wait, exec, pause, rename.

Each takes the EngineConfig and returns data; nothing here prints.  Every
operation that reads a container first reconciles its record with the
kernel (see containers.py), so a crashed tomato process never leaves a lie.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from tomato.engine import events
from tomato.engine import images as image_service
from tomato.engine.containers import (
    CREATED,
    EXITED,
    PAUSED,
    RESTARTING,
    RUNNING,
    STOP_MARKER,
    Container,
    Containers,
    State,
    ensure_dir,
    forget_exit,
    new_id,
    random_name,
    read_exit,
    validate_name,
)
from tomato.engine.images import EngineConfig
from tomato.engine.options import RunOptions
from tomato.errors import Conflict, InvalidArgument, NoSpace, NotFound, TomatoError
from tomato.files import write_private

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any, NoReturn

CGROUP_PARENT = "tomato"


def runtime_root(cfg: EngineConfig) -> Path:
    return cfg.root / "runtime"


def _records(cfg: EngineConfig) -> Containers:
    return Containers(cfg.root)


# -- create -------------------------------------------------------------------------
def _volume_dir(cfg: EngineConfig, name: str) -> Path:
    from tomato.engine import volumes

    return volumes.ensure(cfg.root, name).path / "_data"


def _volume_mounts(cfg: EngineConfig, opts: RunOptions, image_config: dict[str, Any],
                   cid: str) -> tuple[list[dict[str, Any]], list[str]]:
    """OCI mounts for -v/--mount and the image's VOLUMEs; and the anonymous volumes made."""
    mounts: list[dict[str, Any]] = []
    anonymous: list[str] = []
    taken: set[str] = set()

    def add(dest: str, source: str, ro: bool, kind: str = "bind") -> None:
        taken.add(dest.rstrip("/") or "/")
        options = ["rbind", "ro" if ro else "rw"] if kind == "bind" else []
        mounts.append({"destination": dest, "type": "bind", "source": source,
                       "options": options})

    for spec in opts.volumes:
        parts = spec.split(":")
        ro = len(parts) == 3 and "ro" in parts[2].split(",")
        if len(parts) == 1:
            name = new_id()
            anonymous.append(name)
            add(parts[0], str(_volume_dir(cfg, name)), False)
        elif parts[0].startswith("/"):
            if not os.path.lexists(parts[0]):  # docker creates a missing bind source (a
                os.makedirs(parts[0], exist_ok=True)  # dir); a file is bound as a file
            add(parts[1], parts[0], ro)
        else:
            add(parts[1], str(_volume_dir(cfg, parts[0])), ro)
    for m in opts.mounts:
        from tomato.engine.options import parse_mount

        fields = parse_mount(m)
        ro = fields.get("readonly", fields.get("ro", "false")) in ("true", "1", "")
        if fields["type"] == "bind":
            if not os.path.exists(fields["source"]):
                raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path "
                                      f"does not exist: {fields['source']}")
            add(fields["target"], fields["source"], ro)
        elif fields["type"] == "tmpfs":
            size = fields.get("tmpfs-size")
            mounts.append({"destination": fields["target"], "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev"] + ([f"size={size}"] if size else [])})
        else:
            name = fields.get("source") or new_id()
            if not fields.get("source"):
                anonymous.append(name)
            add(fields["target"], str(_volume_dir(cfg, name)), ro)
    for dest in (image_config.get("Volumes") or {}):
        if (dest.rstrip("/") or "/") not in taken:
            name = new_id()
            anonymous.append(name)
            add(dest, str(_volume_dir(cfg, name)), False)
    return mounts, anonymous


def _write_etc_files(cfg: EngineConfig, cdir: Path, cid: str, opts: RunOptions,
                     net: Any) -> dict[str, Path]:
    hostname = opts.hostname or cid[:12]
    files = {"hosts": cdir / "hosts", "hostname": cdir / "hostname",
             "resolv.conf": cdir / "resolv.conf"}
    if opts.network.startswith("container:"):
        # The joined container's files: same addresses, same resolvers.
        import shutil

        other = _records(cfg).path(opts.network.partition(":")[2])
        for name in ("hosts", "resolv.conf"):
            try:
                shutil.copyfile(other / name, files[name])
            except OSError:
                files[name].write_text("")
        files["hostname"].write_text(hostname + "\n")
        return files
    from tomato.network import files as netfiles

    if net is not None:
        hosts = net.hosts_text(cid, hostname, opts.add_hosts)
    else:
        extra = [(h.partition(":")[0], h.partition(":")[2]) for h in opts.add_hosts
                 if not h.endswith(":host-gateway")]
        hosts = netfiles.render_hosts(hostname, [], extra, [])
        if opts.network == "host":
            hosts = hosts.replace(f"127.0.1.1\t{hostname}\n", "")
    files["hosts"].write_text(hosts)
    files["hostname"].write_text(hostname + "\n")
    try:
        with open("/etc/resolv.conf") as f:
            host_resolv = f.read()
    except OSError:
        host_resolv = ""
    if opts.network == "host" and not (opts.dns or opts.dns_search or opts.dns_options):
        resolv = host_resolv
    else:
        resolv = netfiles.render_resolv(host_resolv, opts.dns, opts.dns_search,
                                        opts.dns_options)
    files["resolv.conf"].write_text(resolv)
    return files


def _mount_rootfs(mounts: list[Any], target: Path) -> None:
    from tomato._sys import libc

    target.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(target):
        return
    for m in mounts:
        if m.type == "bind":
            libc.mount(m.source, str(target), None, libc.MS_BIND | libc.MS_REC)
        else:
            libc.mount(m.source or m.type, str(target), m.type, 0, ",".join(m.options))


def _unmount_rootfs(target: Path) -> None:
    from tomato._sys import libc

    for _ in range(10):
        if not os.path.ismount(target):
            return
        try:
            libc.umount2(str(target), libc.MNT_DETACH)
        except OSError:
            return


def _rmtree(path: Path) -> None:
    import shutil  # ~2 ms (with bz2, lzma): only when a directory goes

    shutil.rmtree(path, ignore_errors=True)


# A cgroups.prime_migration this process started (None: none): `run` primes at the
# start of create; start lets it finish on its own; settle waits before we exit.
_primer: Any = None


def _prime() -> None:
    global _primer
    if _primer is None and os.geteuid() == 0:
        from tomato import cgroups

        _primer = cgroups.prime_migration()


def _reap_primer(wait: bool = True) -> None:
    global _primer
    if _primer is not None and _primer.finished(wait):
        _primer = None


#: monitors this process forked (its children until it exits)
_monitors: list[int] = []


def settle() -> None:
    """Before the process exits: wait for the primer, reap monitors already done."""
    _reap_primer()
    for pid in list(_monitors):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done == pid:
            _monitors.remove(pid)


def create(cfg: EngineConfig, opts: RunOptions, then_start: bool = False) -> Container:
    """A container record, bundle and rootfs; ``then_start``: `start` follows at once
    (the cgroup move it will make is primed now, see cgroups.prime_migration)."""
    if then_start:
        _prime()
    try:
        return _create(cfg, opts)
    except BaseException:
        _reap_primer()
        raise
    finally:
        if not then_start:
            _reap_primer()


def _create(cfg: EngineConfig, opts: RunOptions) -> Container:
    from tomato.engine.options import validate_resources

    validate_resources(opts)  # the daemon's checks (CLI and API), before a pull
    records = _records(cfg)
    try:
        img = image_service.get_image(cfg, opts.image)
    except NotFound:
        image_service.pull(cfg, opts.image)
        img = image_service.get_image(cfg, opts.image)
    image_config = image_service.inspect(cfg, img.id).config or {}
    cid = new_id()
    name = validate_name(opts.name) if opts.name else random_name(records.names())
    if opts.name and name in records.names():
        from tomato.errors import AlreadyExists

        raise AlreadyExists(f'Conflict. The container name "/{name}" is already in use by '
                            "another container. You have to remove (or rename) that "
                            "container to be able to reuse that name.")
    net = _network_plan(cfg, opts, image_config)  # bad network or busy port: nothing made yet
    cdir = records.path(cid)
    with ExitStack() as undo:
        # Claimed until the record exists: what a killed create leaves has neither
        # (engine/leftovers.py removes it), what a live one is making has the claim.
        from tomato.engine.claims import claim
        from tomato.engine.leftovers import claim_path

        undo.enter_context(claim(claim_path(cfg.root, cid)))
        if net is not None:
            undo.enter_context(net.claim(cid))  # held until the record exists (see sweep)
        with ExitStack() as rollback:
            ensure_dir(cdir)
            rollback.callback(_rmtree, cdir)
            netns_path = ""
            if net is not None:  # first: its nft rules commit while the rootfs is made
                net.attach(cid, opts.network, ip=opts.ip, aliases=opts.network_aliases,
                           mac=opts.mac_address, ports=opts.publish)
                rollback.callback(net.teardown, cid)
                netns_path = net.netns_path(cid)
            elif opts.network.startswith("container:"):
                netns_path = _joined_netns(cfg, opts.network.partition(":")[2])
            mounts = image_service.prepare_rootfs(cfg, img.id, cid)
            rollback.callback(image_service.release_rootfs, cfg, cid)
            rootfs = records.bundle(cid) / "rootfs"
            _mount_rootfs(mounts, rootfs)
            rollback.callback(_unmount_rootfs, rootfs)
            volume_mounts, anonymous = _volume_mounts(cfg, opts, image_config, cid)
            files = _write_etc_files(cfg, cdir, cid, opts, net)
            from tomato.engine.specgen import build_spec

            spec = build_spec(opts, image_config, cid, rootfs, files, volume_mounts,
                              CGROUP_PARENT, netns_path)
            # Compact: with indent=, json encodes in Python (~1.5 ms for a spec)
            write_private(records.bundle(cid) / "config.json", json.dumps(spec))
            options = opts.to_dict()
            options["anonymous_volumes"] = anonymous
            c = Container(cid, name, opts.image, img.id, time.time(), options, spec, State())
            if net is not None:
                net.settle()
            records.add(c, pick_name=not opts.name)
            rollback.pop_all()
    if net is not None and opts.network != "bridge":
        net.refresh_hosts({net.get(opts.network).id})  # peers learn our name
    events.container(cfg.root, c, "create")
    return c


def _network_plan(cfg: EngineConfig, opts: RunOptions, image_config: dict[str, Any]) -> Any:
    """Validate the network options; the Networks store when the container gets a netns."""
    from tomato.engine import networks

    mode = opts.network
    if mode.startswith("container:"):
        other = get(cfg, mode.partition(":")[2])
        if opts.publish or opts.publish_all:
            raise Conflict("conflicting options: port publishing and the container type "
                           "network mode")
        opts.network = f"container:{other.id}"
        return None
    if not networks.is_networked(mode):
        if opts.publish or opts.publish_all:
            opts.publish, opts.publish_all = [], False  # Docker ignores them, with a warning
        return None
    net = networks.Networks(cfg.root)
    net.sweep()
    net.get(mode)  # NotFound for an unknown network
    if opts.publish_all:
        from tomato.network.ports import parse_expose

        have = {(p["container_port"], p["proto"]) for p in opts.publish}
        exposed = [*(image_config.get("ExposedPorts") or {}), *opts.expose]
        for item in exposed:
            port, proto = parse_expose(item)
            if (port, proto) not in have:
                have.add((port, proto))
                opts.publish.append({"proto": proto, "host_ip": "", "host_port": 0,
                                     "container_port": port})
    net.check_ports(opts.publish)
    return net


def _joined_netns(cfg: EngineConfig, other_id: str) -> str:
    """--network container:X joins X's netns: ours if X has one, else its init's."""
    from tomato.engine import networks

    other = get(cfg, other_id)
    mode = other.options.get("network", "none")
    if mode == "host":
        raise Conflict("cannot join the network of a container that uses the host's")
    if networks.is_networked(mode):
        return networks.Networks(cfg.root).netns_path(other.id)
    if mode.startswith("container:"):
        return _joined_netns(cfg, mode.partition(":")[2])
    if other.state.status not in (RUNNING, PAUSED) or not other.state.pid:
        raise Conflict(f"cannot join network of a non running container: {other.id}")
    return f"/proc/{other.state.pid}/ns/net"


# -- reconcile ----------------------------------------------------------------------
def reconcile(cfg: EngineConfig, c: Container) -> Container:
    """Make the record tell the truth about the kernel (after crashes of anything)."""
    from tomato.runtime.statedir import alive

    st = c.state
    if st.status not in (RUNNING, PAUSED, RESTARTING):
        return c
    monitor_alive = alive(st.monitor_pid, st.monitor_start)
    container_alive = alive(st.pid, st.pid_start)
    if container_alive and not monitor_alive:
        return _monitor_lost(cfg, c)
    if container_alive:
        frozen = _is_paused(cfg, c)
        if frozen and st.status != PAUSED:
            _note(cfg, c, status=PAUSED)
        elif not frozen and st.status == PAUSED:
            _note(cfg, c, status=RUNNING)
        return c
    if monitor_alive:
        # The monitor is recording the exit; tomato-shim has already written it.
        info = read_exit(_records(cfg).path(c.id))
        if not info:
            # Between restarts, or about to record the exit itself -- or it just did:
            # it writes the record before it unlinks exit.json, so read that again.
            return _records(cfg).get(c.id)
        c.state.status = EXITED
        c.state.exit_code = int(info.get("exit_code", 0))
        c.state.finished_at = float(info.get("finished_at", 0.0))
        c.state.oom_killed = bool(info.get("oom_killed", False))
        c.state.pid = 0
        return c
    # Nobody is left to record the exit: the monitor died with or after the container
    # (tomato-shim may have written the exit down before it went).
    _runtime_delete(cfg, c.id)
    info = read_exit(_records(cfg).path(c.id))
    finished = float(info.get("finished_at", 0.0)) or st.finished_at
    _note(cfg, c, status=EXITED, pid=0, pid_start=0, finished_at=finished or time.time(),
          exit_code=int(info.get("exit_code", st.exit_code if finished else 255)),
          oom_killed=bool(info.get("oom_killed", False)))
    return c


#: State.Error of a container whose monitor died under it
MONITOR_LOST = "the container's monitor died: killed, as its output had nowhere to go"


def _monitor_lost(cfg: EngineConfig, c: Container) -> Container:
    """The monitor was killed and the container lives on: nobody reads its output or
    will record its exit.  As containerd does when a shim dies, the container is
    killed and recorded exited (137); a supervisor (`tomato daemon`) then applies its
    restart policy."""
    _runtime_delete(cfg, c.id)  # SIGKILL to everything in it (thawed first), cgroup gone
    _note(cfg, c, status=EXITED, pid=0, pid_start=0, finished_at=time.time(),
          exit_code=128 + signal.SIGKILL, error=MONITOR_LOST)
    events.container(cfg.root, c, "die", exitCode=str(c.state.exit_code))
    return c


def _note(cfg: EngineConfig, c: Container, **changes: Any) -> None:
    """Record what the kernel says of ``c`` -- and on a full disk, only tell it: a read
    (ps, inspect, logs) never needs a write to tell the truth."""
    try:
        c.state = _records(cfg).set_state(c.id, **changes)
    except NoSpace:
        for name, value in changes.items():
            setattr(c.state, name, value)


def _request_stop(cfg: EngineConfig, c: Container) -> None:
    """Tell the monitor not to restart ``c`` when it exits: in the record, or on a full
    disk as an empty marker file (a new name needs no free block on most filesystems;
    the monitor looks for both).  Never a reason not to signal the container."""
    try:
        _records(cfg).set_state(c.id, stop_requested=True)
    except NoSpace:
        try:
            os.close(os.open(_records(cfg).path(c.id) / STOP_MARKER,
                             os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError:
            pass


def _runtime_delete(cfg: EngineConfig, cid: str) -> None:
    from tomato.runtime.lifecycle import delete
    from tomato.runtime.log import RuntimeLog
    from tomato.runtime.statedir import StateDir

    try:
        delete(StateDir(str(runtime_root(cfg))), cid, True, RuntimeLog())
    except NotFound:
        pass


def _is_paused(cfg: EngineConfig, c: Container) -> bool:
    from tomato.runtime.lifecycle import load
    from tomato.runtime.statedir import StateDir

    try:
        _, status = load(StateDir(str(runtime_root(cfg))), c.id)
    except NotFound:
        return False
    return status == "paused"


def get(cfg: EngineConfig, ref: str) -> Container:
    return reconcile(cfg, _records(cfg).get(ref))


def list_containers(cfg: EngineConfig, all_states: bool = False) -> list[Container]:
    from tomato.engine.networks import sweep

    sweep(cfg.root)  # what a killed `tomato run` left of its network
    out = []
    found = _records(cfg).all()
    from tomato.engine import leftovers

    leftovers.sweep(cfg, {c.id for c in found})  # ...and of everything else
    for c in found:
        c = reconcile(cfg, c)
        if all_states or c.state.status in (RUNNING, PAUSED, RESTARTING):
            out.append(c)
    return out


# -- start / stop -------------------------------------------------------------------
def start(cfg: EngineConfig, ref: str, attach_wait: bool = False,
          handoff: Any = None) -> Container:
    """Start a created container under a new monitor.

    ``handoff(code, text)``: this process becomes the monitor instead of forking one
    (a fork server's child running `run -d`, which has nothing else to do): once the
    container has started, or failed to, ``handoff`` tells the user (the id, or the
    error) and lets the client go; start then never returns.  One process fewer per
    container, and none of its copy-on-write faults.
    """
    _prime()  # unless create just did: the monitor's cgroup move, primed
    try:
        return _start(cfg, ref, attach_wait, handoff)
    finally:
        # Its write may still wait out its grace period (it holds cgroup_mutex while it
        # does): not worth waiting for here; ``settle`` reaps it before we exit.
        _reap_primer(wait=False)


def _start(cfg: EngineConfig, ref: str, attach_wait: bool, handoff: Any = None) -> Container:
    records = _records(cfg)
    c = get(cfg, ref)
    if c.state.status in (RUNNING, PAUSED, RESTARTING):
        return c
    opts = RunOptions.from_dict(c.options)
    rootfs = records.bundle(c.id) / "rootfs"
    if not os.path.ismount(rootfs):  # after a reboot the overlay is gone: mount it again
        _mount_rootfs(image_service.rootfs_mounts(cfg, c.id), rootfs)
    from tomato.engine import networks

    if networks.is_networked(opts.network):
        from tomato.network.netns import is_mounted

        nets = networks.Networks(cfg.root)
        if not is_mounted(nets.netns_path(c.id)):  # after a reboot: the same leases again
            nets.replug(c.id)
    _wait_monitor_gone(c)  # the last run's monitor may still be cleaning up after it
    _runtime_delete(cfg, c.id)  # a leftover from a crashed monitor would block the id
    monitor_cfg = {
        "primed": _primer is not None,
        "bundle": str(records.bundle(c.id)), "runtime_root": str(runtime_root(cfg)),
        "tty": opts.tty, "stdin": opts.interactive, "restart": opts.restart,
        "restart_max": opts.restart_max, "auto_remove": opts.auto_remove,
        "attach_wait": attach_wait, "log_max_size": opts.log_max_size,
        "log_max_file": opts.log_max_file,
        "event_attributes": events.container_attributes(c.name, c.image, opts.labels),
    }
    write_private(records.path(c.id) / "monitor.json", json.dumps(monitor_cfg))
    records.set_state(c.id, stop_requested=False, error="")
    forget_exit(records.path(c.id))
    if handoff is not None:
        _become_monitor(cfg, c, handoff)
    report = _spawn_monitor(cfg.root, c.id, records.path(c.id) / "monitor.log")
    if "pid" not in report:
        detail = report.get("error") or _tail(records.path(c.id) / "monitor.log")
        raise TomatoError(f"failed to start container {c.short_id}: {detail}")
    c = records.get(c.id)
    events.container(cfg.root, c, "start")
    return c


def _become_monitor(cfg: EngineConfig, c: Container, handoff: Any) -> NoReturn:
    """This process turns into the container's monitor (see ``start``'s handoff)."""
    from tomato.engine.store import forget_connections

    records = _records(cfg)
    log = records.path(c.id) / "monitor.log"
    forget_connections()  # the monitor's own, from here on
    _reap_primer()  # no thread may live on: the runtime clones through ctypes
    _new_monitor_session()

    def reported(msg: dict[str, Any]) -> None:
        if "pid" in msg:
            started = records.get(c.id)
            events.container(cfg.root, started, "start")
            handoff(0, started.id)
        else:
            detail = msg.get("error") or _tail(log)
            handoff(125, f"failed to start container {c.short_id}: {detail}")
        _monitor_stdio(log, -1)  # from now on a monitor like any other: nothing of the user's

    _run_as_monitor(cfg.root, c.id, reported)


def _new_monitor_session() -> None:
    from tomato._sys.libc import set_comm

    os.setsid()
    set_comm("tomato-monitor")


def _monitor_stdio(log: Path, report_fd: int) -> None:
    """A monitor's stdio: /dev/null in, ``report_fd`` (or /dev/null) out, its log as stderr."""
    null = os.open("/dev/null", os.O_RDWR)
    err = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    os.dup2(null, 0)
    os.dup2(report_fd if report_fd >= 0 else null, 1)
    os.dup2(err, 2)
    os.close(null)
    os.close(err)


def _run_as_monitor(root: Path, cid: str, on_report: Any = None) -> NoReturn:
    code = 1
    try:
        from tomato.engine.monitor import run_monitor

        code = run_monitor(root, cid, on_report=on_report)
    except BaseException as exc:  # noqa: BLE001
        try:
            os.write(2, f"monitor: {exc}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def _spawn_monitor(root: Path, cid: str, log: Path) -> dict[str, Any]:
    """Fork the container's monitor from this process and wait for its first report.

    Forking (rather than starting a new interpreter) costs no Python start-up
    or imports: everything the monitor needs is already loaded here.  One fork,
    not two: in a session of its own it outlives us, and until we exit it is
    our child, reaped by ``settle`` if it is done by then (a second fork would
    copy this whole process again only to exit at once).  After us its reaper
    is our subreaper: the CLI's fork server, the API's zygote.
    """
    from tomato.engine.store import forget_connections

    forget_connections()  # the monitor opens its own
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover — runs in the forked monitor
        try:
            os.close(r)
            _new_monitor_session()
            _monitor_stdio(log, w)
            # Nothing else of our caller's may live on in the monitor (a pipe it
            # waits on, a terminal): only 0, 1 (the report pipe) and 2 stay.
            from tomato._sys import libc

            keep = getattr(libc.TRACE, "fd", None)  # --explain's copy of the CLI's stderr
            if isinstance(keep, int) and keep > 2:
                os.closerange(3, keep)
                os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
            else:
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        except BaseException as exc:  # noqa: BLE001
            try:
                os.write(2, f"monitor: {exc}\n".encode())
            finally:
                os._exit(1)
        _run_as_monitor(root, cid)
    os.close(w)
    _monitors.append(pid)
    chunks = []
    while True:
        chunk = os.read(r, 4096)
        if not chunk or b"\n" in chunk:
            chunks.append(chunk)
            break
        chunks.append(chunk)
    os.close(r)
    line = b"".join(chunks).split(b"\n")[0]
    try:
        report: dict[str, Any] = json.loads(line) if line else {}
    except ValueError:
        report = {}
    return report


def _wait_monitor_gone(c: Container, timeout: float = 15.0) -> None:
    """A container that just exited still has its monitor recording that and
    deleting the runtime's state; starting it again must not race that."""
    from tomato.runtime.statedir import alive

    deadline = time.monotonic() + timeout
    while alive(c.state.monitor_pid, c.state.monitor_start) and time.monotonic() < deadline:
        time.sleep(0.005)


def _tail(path: Path) -> str:
    try:
        lines = path.read_text().strip().splitlines()
    except OSError:
        return "the monitor exited"
    return lines[-1] if lines else "the monitor exited"


def _signal_number(value: str | int) -> int:
    from tomato.runtime.lifecycle import parse_signal

    try:
        return value if isinstance(value, int) else parse_signal(str(value))
    except TomatoError as err:
        raise InvalidArgument(f"invalid signal: {value}") from err


def kill(cfg: EngineConfig, ref: str, sig: str | int = "KILL") -> Container:
    c = get(cfg, ref)
    if c.state.status not in (RUNNING, PAUSED, RESTARTING):
        raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
    num = _signal_number(sig)
    _request_stop(cfg, c)
    _runtime_kill(cfg, c, num)
    events.container(cfg.root, c, "kill", signal=str(num))
    return c


def _runtime_kill(cfg: EngineConfig, c: Container, sig: int) -> None:
    from tomato.runtime.lifecycle import kill as rt_kill
    from tomato.runtime.statedir import StateDir

    try:
        rt_kill(StateDir(str(runtime_root(cfg))), c.id, sig)
    except (NotFound, Conflict):
        pass


def wait_exit(cfg: EngineConfig, ref: str, timeout: float | None = None) -> Container:
    deadline = None if timeout is None else time.monotonic() + timeout
    c = get(cfg, ref)
    while c.state.status in (RUNNING, PAUSED, RESTARTING):
        if deadline is not None and time.monotonic() > deadline:
            break
        time.sleep(0.02)
        c = get(cfg, c.id)
    return c


def stop(cfg: EngineConfig, ref: str, timeout: int | None = None,
         sig: str | None = None) -> Container:
    """``sig`` first (the image's STOPSIGNAL, else SIGTERM), SIGKILL after ``timeout``."""
    c = get(cfg, ref)
    if c.state.status not in (RUNNING, PAUSED, RESTARTING):
        return c
    opts = RunOptions.from_dict(c.options)
    grace = timeout if timeout is not None else (opts.stop_timeout
                                                 if opts.stop_timeout is not None else 10)
    _request_stop(cfg, c)
    sig = sig or c.spec.get("annotations", {}).get("org.opencontainers.image.stopSignal",
                                                   "SIGTERM")
    if c.state.status == PAUSED:
        _runtime_kill(cfg, c, _signal_number(sig))
        unpause(cfg, c.id)
    else:
        _runtime_kill(cfg, c, _signal_number(sig))
    events.container(cfg.root, c, "kill", signal=str(_signal_number(sig)))
    c = wait_exit(cfg, c.id, grace)
    if c.state.status in (RUNNING, PAUSED, RESTARTING):
        _runtime_kill(cfg, c, signal.SIGKILL)
        events.container(cfg.root, c, "kill", signal=str(int(signal.SIGKILL)))
        c = wait_exit(cfg, c.id, 30)
    _wait_recorded(cfg, c.id)
    events.container(cfg.root, c, "stop")
    return c


def _wait_recorded(cfg: EngineConfig, cid: str, timeout: float = 5.0) -> None:
    """Until the monitor has recorded the exit (and reported "die"): the kernel and
    exit.json tell `wait_exit` a little earlier.  A dead monitor records nothing."""
    from tomato.runtime.statedir import alive

    records = _records(cfg)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = records.get(cid).state
        except NotFound:
            return
        if st.status not in (RUNNING, PAUSED, RESTARTING) or not alive(st.monitor_pid,
                                                                        st.monitor_start):
            return
        time.sleep(0.01)


def restart(cfg: EngineConfig, ref: str, timeout: int | None = None,
            sig: str | None = None) -> Container:
    c = stop(cfg, ref, timeout, sig)
    c = start(cfg, c.id)
    events.container(cfg.root, c, "restart")
    return c


def pause(cfg: EngineConfig, ref: str) -> None:
    from tomato.runtime.lifecycle import pause as rt_pause
    from tomato.runtime.statedir import StateDir

    c = get(cfg, ref)
    if c.state.status != RUNNING:
        raise Conflict(f"Container {c.id} is not running")
    rt_pause(StateDir(str(runtime_root(cfg))), c.id)
    _note(cfg, c, status=PAUSED)
    events.container(cfg.root, c, "pause")


def unpause(cfg: EngineConfig, ref: str) -> None:
    from tomato.runtime.lifecycle import resume
    from tomato.runtime.statedir import StateDir

    c = get(cfg, ref)
    if c.state.status != PAUSED:
        raise Conflict(f"Container {c.id} is not paused")
    resume(StateDir(str(runtime_root(cfg))), c.id)
    _note(cfg, c, status=RUNNING)
    events.container(cfg.root, c, "unpause")


# -- remove ---------------------------------------------------------------------------
def remove(cfg: EngineConfig, ref: str, force: bool = False, volumes: bool = False) -> str:
    c = get(cfg, ref)
    if c.state.status in (RUNNING, PAUSED, RESTARTING):
        if not force:
            raise Conflict(f"You cannot remove a running container {c.id}. Stop the "
                           "container before attempting removal or force remove")
        _request_stop(cfg, c)
        _runtime_kill(cfg, c, signal.SIGKILL)
        events.container(cfg.root, c, "kill", signal=str(int(signal.SIGKILL)))
        wait_exit(cfg, c.id, 30)
    remove_files(cfg.root, c.id, volumes=volumes)
    return c.id


def remove_files(root: Path, cid: str, volumes: bool = False) -> None:
    """Everything a container owns: runtime state, rootfs mount, snapshot, dir, record."""
    import shutil

    cfg = EngineConfig(root=root)
    records = _records(cfg)
    try:
        c = records.get(cid)
    except NotFound:
        return
    from tomato.engine import networks

    network_done = None
    if networks.is_networked(c.options.get("network", "none")):
        # veths, netns, leases, ports, nft rules: the kernel's link deletion sleeps, so
        # it overlaps the rest of the removal (on a thread; joined before the record goes)
        network_done = networks.Networks(root).teardown_started(cid)
    try:
        _runtime_delete(cfg, cid)
        _unmount_rootfs(records.bundle(cid) / "rootfs")
        # Files before records: on a full disk the space the logs and the container's
        # layer free is what lets the records be written (and a removal cut short
        # here is finished by the next one).
        shutil.rmtree(records.path(cid), ignore_errors=True)
        _freeing(cfg, image_service.release_rootfs, cfg, cid)
    finally:
        if network_done is not None:
            network_done()
    _freeing(cfg, records.delete, cid)
    events.container(root, c, "destroy")
    if volumes:
        from tomato.engine import volumes as vol

        for name in c.options.get("anonymous_volumes", []):
            try:
                vol.remove(root, name)
            except TomatoError:
                pass


def _freeing(cfg: EngineConfig, step: Any, *args: Any) -> None:
    """A step of a removal that must record what it freed: on a full disk, the engine
    gives back its reserve (tomato.files) and tries once more."""
    try:
        step(*args)
    except NoSpace:
        from tomato.files import release_reserve

        if not release_reserve(cfg.root):
            raise
        step(*args)


def prune(cfg: EngineConfig) -> list[str]:
    removed = []
    for c in list_containers(cfg, all_states=True):
        if c.state.status in (CREATED, EXITED, "dead"):
            remove_files(cfg.root, c.id)
            removed.append(c.id)
    return removed


def rename(cfg: EngineConfig, ref: str, new_name: str) -> None:
    c = get(cfg, ref)
    _records(cfg).rename(c.id, new_name)
    events.container(cfg.root, c, "rename", oldName="/" + c.name, name=new_name)


# -- exec ---------------------------------------------------------------------------
def exec_in(cfg: EngineConfig, ref: str, command: list[str], *, tty: bool = False,
            detach: bool = False, env: list[str] | None = None, user: str = "",
            workdir: str = "", privileged: bool = False) -> int:
    """Run a command in the container with our stdio; returns its exit code (or 0 if -d)."""
    from tomato.runtime.exec import ExecOptions, exec_process
    from tomato.runtime.log import RuntimeLog
    from tomato.runtime.statedir import StateDir

    c = get(cfg, ref)
    if c.state.status != RUNNING:
        raise Conflict(f"Container {c.id} is not running")
    if not command:
        raise InvalidArgument("exec needs a command")
    proc = json.loads(json.dumps(c.spec["process"]))
    proc["args"] = command
    proc["terminal"] = tty
    base_env = {e.partition("=")[0]: e for e in proc.get("env", [])}
    for e in env or []:
        base_env[e.partition("=")[0]] = e
    proc["env"] = list(base_env.values())
    if workdir:
        proc["cwd"] = workdir
    if user:
        from tomato.engine.specgen import lookup_user

        uid, gid, extra = lookup_user(_records(cfg).bundle(c.id) / "rootfs", user)
        proc["user"] = {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})}
    proc.pop("consoleSize", None)
    states = StateDir(str(runtime_root(cfg)))
    if detach:
        _exec_detached(states, c.id, proc)
        return 0
    result = exec_process(states, c.id, ExecOptions(process=proc), RuntimeLog(),
                          keep_master=True)
    from tomato.runtime.waiting import forward_signals, wait_for

    forward_signals(result.pid)
    return wait_for(result.pid, result.console_master)


def _exec_detached(states: Any, cid: str, proc: dict[str, Any]) -> None:
    """`exec -d`: the process gets a parent that stays to reap it.

    Orphaned, it would be reparented outside the container's pid namespace,
    and while it sat there unreaped the container's init could not finish
    dying.  A small session leader of ours execs it and waits; errors from the
    runtime still come back to the caller through a pipe.
    """
    from tomato.runtime.exec import ExecOptions, exec_process
    from tomato.runtime.log import RuntimeLog

    r, w = os.pipe2(os.O_CLOEXEC)
    reaper = os.fork()
    if reaper == 0:  # pragma: no cover — runs in the forked reaper
        code = 1
        try:
            os.close(r)
            os.setsid()
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            result = exec_process(states, cid, ExecOptions(process=proc, detach=True),
                                  RuntimeLog())
            os.write(w, b"ok")
            os.close(w)
            os.waitpid(result.pid, 0)
            code = 0
        except BaseException as err:  # noqa: BLE001 — told to the caller
            try:
                os.write(w, (str(err) or type(err).__name__).encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(w)
    answer = b""
    while chunk := os.read(r, 4096):
        answer += chunk
    os.close(r)
    if answer != b"ok":
        os.waitpid(reaper, 0)
        raise TomatoError(answer.decode(errors="replace") or "exec failed")


# -- logs ------------------------------------------------------------------------------
def log_path(cfg: EngineConfig, ref: str) -> tuple[Container, Path]:
    c = get(cfg, ref)
    return c, _records(cfg).log_path(c.id)


def is_running(cfg: EngineConfig, cid: str) -> bool:
    try:
        return get(cfg, cid).state.status in (RUNNING, PAUSED, RESTARTING)
    except NotFound:
        return False
