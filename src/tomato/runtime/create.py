"""`create`: everything up to a container init blocked before execve.

Every resource made here (state dir, exec fifo, cgroups, the init process)
is registered on an Undo and rolled back in reverse order if any later
step fails, so bad input leaves nothing behind.
"""

from __future__ import annotations

import os
import time

from tomato import fastjson as json
from tomato._sys import libc as c
from tomato._sys import userns
from tomato.errors import InvalidArgument, NotFound, TomatoError
from tomato.oci.spec import IdMapping, Spec, parse_spec
from tomato.oci.state import validate_id
from tomato.records import record
from tomato.runtime.channel import Channel, ChannelClosed
from tomato.runtime.log import RuntimeLog
from tomato.runtime.statedir import (
    EXEC_FIFO,
    Record,
    StateDir,
    oci_state,
    proc_start_time,
    write_pid_file,
)
from tomato.runtime.undo import Undo

TYPE_CHECKING = False  # importing typing costs ~2 ms on the start path
if TYPE_CHECKING:
    from typing import Any

    from tomato.explain.trace import Explainer


@record
class CreateOptions:
    bundle: str
    pid_file: str = ""
    console_socket: str = ""
    no_pivot: bool = False
    preserve_fds: int = 0
    no_new_keyring: bool = False
    prime_cgroups: bool = True  # False: the caller already did (cgroups.prime_migration)
    systemd_cgroup: bool = False  # --systemd-cgroup: the cgroup is a systemd scope unit
    #: --explain: told of the config, the cgroups made and the init's execve (the kernel
    #: calls of _sys tell the explainer libc.explain_syscalls installed)
    explain: Explainer | None = None


@record(frozen=False)
class Created:
    """A created container; ``pid`` is the host pid of its init."""

    record: Record
    console_master: int | None = None


def load_bundle(bundle: str,
                explain: Explainer | None = None) -> tuple[dict[str, Any], Spec]:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
        raw = json.loads(data)
    except FileNotFoundError:
        raise NotFound(f"config.json not found in bundle {bundle}") from None
    except ValueError as err:
        raise InvalidArgument(f"config.json in {bundle} is not valid JSON: {err}") from err
    # arrays or objects thousands deep: the decoder's recursion guard (SystemError: _json's
    # for a bad string when json.decoder is not imported, as statedir.load says)
    except (RecursionError, SystemError) as err:
        raise InvalidArgument(f"config.json in {bundle} is not valid JSON: nested too "
                              "deeply" if isinstance(err, RecursionError) else
                              f"config.json in {bundle} is not valid JSON") from err
    from tomato.runtime.statedir import lone_surrogate

    if b"\\u" in data and lone_surrogate(raw):  # valid JSON, but no text: the record
        # made of it could then be neither read nor deleted (state.json's own test)
        raise InvalidArgument(f"config.json in {bundle} holds a lone surrogate")
    if explain is not None:  # --explain's summary draws its [security] group from it
        explain.config(raw)
    return raw, parse_spec(raw)


def now_rfc3339() -> str:
    """Go's time.RFC3339Nano, as runc's state and list show it: no trailing zeros."""
    ns = time.time_ns()
    fraction = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        (f".{fraction}Z" if fraction else "Z")


def _write_mappings(pid: int, uid_maps: tuple[IdMapping, ...],
                    gid_maps: tuple[IdMapping, ...]) -> None:
    """Map the new user namespace (from outside, as its parent must)."""
    def fmt(maps: tuple[IdMapping, ...]) -> str:
        return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)

    if os.geteuid() == 0:
        for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
            try:
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(fmt(maps))
            except OSError as err:
                raise InvalidArgument(f"cannot write {name} {fmt(maps).strip()!r}: "
                                      f"{err.strerror}") from err
        return
    from tomato.runtime import rootless

    rootless.write_mappings(pid, uid_maps, gid_maps)


def _delegated(cgroups_path: str) -> bool:
    """cgroupsPath (absolute) in a cgroup v2 tree whose nearest existing directory we
    may write: delegated to this user (the engine's rootless containers_cgroup)."""
    if not cgroups_path.startswith("/") or \
            not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return False
    path = os.path.normpath("/sys/fs/cgroup/" + cgroups_path.strip("/"))
    while not os.path.isdir(path) and path != "/sys/fs/cgroup":
        path = os.path.dirname(path)
    return path != "/sys/fs/cgroup" and os.access(os.path.join(path, "cgroup.procs"), os.W_OK)


#: Devices every container may use whatever its device rules say (runc's list).
DEFAULT_DEVICE_RULES = (
    ("c", None, None, "m"), ("b", None, None, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"),
)


def _with_default_devices(spec: Spec) -> dict[str, Any] | None:
    return with_default_devices(spec.linux.resources, spec.linux.devices)


def with_default_devices(res: dict[str, Any] | None,
                         devices: tuple[Any, ...]) -> dict[str, Any] | None:
    """linux.resources with the default devices and linux.devices allowed after the
    spec's own rules, as runc does, so a deny-all list still leaves /dev/null usable
    (at create, and at an update of the device rules)."""
    if res is None or res.get("devices") is None:
        return res
    rules = list(res["devices"])
    for kind, major, minor, access in DEFAULT_DEVICE_RULES:
        rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
        if major is not None:
            rule["major"] = major
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    for dev in devices:
        if dev.type in ("c", "b", "u"):
            rules.append({"allow": True, "type": "c" if dev.type == "u" else dev.type,
                          "major": dev.major, "minor": dev.minor, "access": "rwm"})
    return {**res, "devices": rules}


def _time_offsets(spec: Spec) -> None:
    """A new time namespace is made by the runtime itself and applies to its children."""
    c.unshare(c.CLONE_NEWTIME)
    lines = []
    for clock, off in spec.linux.time_offsets.items():
        name = {"monotonic": "monotonic", "boottime": "boottime"}.get(clock)
        if name is None:
            raise InvalidArgument(f"config.json: unknown time offset clock {clock!r}")
        lines.append(f"{name} {int(off.get('secs', 0))} {int(off.get('nanosecs', 0))}\n")
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write("".join(lines))


def create(states: StateDir, container_id: str, opts: CreateOptions,
           log: RuntimeLog, keep_master: bool = False) -> Created:
    validate_id(container_id)
    bundle = os.path.abspath(opts.bundle)
    if not os.path.isdir(bundle):
        raise NotFound(f"bundle {opts.bundle} does not exist")
    raw, spec = load_bundle(bundle, opts.explain)
    from tomato.runtime import primer as front_primer

    primer: Any = front_primer.take()  # started by the front end before Python (primer.py)
    if primer is not None:
        log.debug(f"create: cgroup moves primed since before Python started (pid {primer.pid})")
    elif opts.prime_cgroups and not userns.rootless():
        from tomato import cgroups

        # A helper process, not a thread: we clone through ctypes (see prime_migration)
        primer = cgroups.prime_migration(in_thread=False)  # its grace period passes meanwhile
    try:
        return _create(states, container_id, opts, log, keep_master, bundle, raw, spec)
    finally:
        if primer is not None:
            primer.finished()


def _create(states: StateDir, container_id: str, opts: CreateOptions,
            log: RuntimeLog, keep_master: bool, bundle: str, raw: dict[str, Any],
            spec: Spec) -> Created:
    if spec.process is None:
        raise InvalidArgument("config.json: process is required to create a container")
    rootfs = os.path.join(bundle, spec.root_path)
    if not os.path.isdir(rootfs):
        raise NotFound(f"rootfs {rootfs} does not exist")
    rootfs = os.path.realpath(rootfs)
    if opts.no_pivot and spec.linux.rootfs_propagation in ("private", "rprivate"):
        # runc's words: MS_MOVE of a private root leaves the host's mounts reachable
        raise InvalidArgument("linux.rootfsPropagation of [r]private is not safe without "
                              "pivot_root (--no-pivot)")
    if spec.process.terminal and not opts.console_socket and not keep_master:
        raise InvalidArgument("process.terminal is true: --console-socket is required")
    if opts.console_socket and not spec.process.terminal:
        raise InvalidArgument("--console-socket given but process.terminal is false")

    # Parse everything other packages own before making anything.
    warnings: list[str] = []
    caps = None
    if spec.process.capabilities is not None:
        from tomato._sys import caps as capmod

        caps = capmod.CapSets.from_oci(spec.process.capabilities, warnings)
    seccomp_filter = None
    seccomp_warnings: list[str] = []
    if spec.linux.seccomp is not None:
        from tomato.runtime.seccomp_cache import load_filter

        seccomp_filter = load_filter(states.root, spec.linux.seccomp, seccomp_warnings)
        warnings.extend(seccomp_warnings)
    resources = None
    use_cgroups = True
    from tomato import cgroups

    resources = cgroups.Resources.from_oci(_with_default_devices(spec))
    if userns.rootless() and not _delegated(spec.linux.cgroups_path):
        # a user, or root of a user namespace: the host's cgroups are not ours, unless a
        # cgroup v2 subtree was delegated (chowned) to us and cgroupsPath is inside it
        use_cgroups = False
        warnings.append("running rootless: cgroups are not set up")
    elif userns.rootless():
        # A delegated subtree: limits yes, but no device program (bpf(2) wants the host's
        # CAP_SYS_ADMIN; inside a user namespace no device node can be made anyway: runc's
        # rootless choice too).
        from tomato.records import replace

        resources = replace(resources, devices=None)
    for w in warnings:
        log.warning(w)

    user_ns = spec.linux.namespace("user")
    new_userns = user_ns is not None and not user_ns.path
    cgroupns = spec.linux.namespace("cgroup")
    joined = [(ns.type, ns.path) for ns in spec.linux.namespaces if ns.path]
    joined.sort(key=lambda kp: kp[0] != "user")  # the user namespace first
    flags = 0
    for ns in spec.linux.namespaces:
        if not ns.path and ns.type not in ("cgroup", "time"):
            flags |= c.NAMESPACE_FLAGS[ns.type]

    with Undo() as undo:
        states.reserve(container_id)
        undo.callback(states.remove, container_id)
        rec = Record(id=container_id, bundle=bundle, rootfs=rootfs, created=now_rfc3339(),
                     creator_pid=os.getpid(), creator_start=proc_start_time(os.getpid()),
                     annotations=spec.annotations, config=raw, owner="",
                     no_pivot=opts.no_pivot)
        manager = None
        cgroup_dirs: list[tuple[str, str]] = []
        unified = False
        if use_cgroups:
            found = cgroups.hierarchies()  # once: the kernel renders every mount for it
            manager = cgroups.new_manager(spec.linux.cgroups_path, container_id, found,
                                          opts.systemd_cgroup, spec.annotations, opts.explain)
            # Recorded before it exists: a create killed half-way through making it
            # leaves cgroups that `delete --force` then knows to remove.
            rec.cgroup = manager.to_dict()
        states.save(rec)
        if spec.linux.seccomp is not None:  # for the front end's exec (front/exec.c)
            from tomato.runtime.seccomp_cache import save_for_exec

            save_for_exec(states.path(container_id), seccomp_filter, seccomp_warnings)
        fifo = os.path.join(states.path(container_id), EXEC_FIFO)
        os.mkfifo(fifo, 0o622)

        if manager is not None:
            manager.create()
            undo.callback(manager.destroy)
            manager.set(resources)
            rec.cgroup = manager.to_dict()
            unified = manager.version == 2
            from tomato.runtime.rootfs import cgroup_mount_dirs

            cgroup_dirs = (list(manager.paths.items())[:1] if unified
                           else cgroup_mount_dirs(manager.paths, found))

        console_sock = None
        if opts.console_socket:
            from tomato.runtime import console

            try:
                console_sock = console.connect(opts.console_socket)
            except OSError as err:
                raise InvalidArgument(f"cannot connect to console socket "
                                      f"{opts.console_socket}: {err.strerror}") from err
            undo.callback(console_sock.close)
        elif spec.process.terminal:
            import socket

            console_sock, master_side = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            undo.callback(master_side.close)
            undo.callback(console_sock.close)

        # Joining a pid namespace is for our children only, and for the init alone: a
        # caller that goes on (the engine's monitor calls us in-process) must fork and
        # start threads in its own again, so we return to it right after the clone.
        own_pidns = -1
        back_home: list[tuple[int, int, str]] = []  # (fd, flag, name) to setns back to
        for kind, path in joined:
            if kind == "pid":
                if own_pidns < 0:
                    own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
                    undo.callback(os.close, own_pidns)
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    c.setns(fd, c.CLONE_NEWPID, path)
                finally:
                    os.close(fd)
        if new_userns:
            # A namespace the host's user namespace owns cannot be joined from inside a
            # new one (setns wants CAP_SYS_ADMIN over its owner): we join it for the
            # clone to inherit, as runc's nsexec joins before it unshares the user ns.
            for kind, path in joined:
                if kind in _INHERITED_BY_A_NEW_USERNS:
                    flag = c.NAMESPACE_FLAGS[kind]
                    proc_name = _PROC_NAMES[kind]
                    own = os.open(f"/proc/thread-self/ns/{proc_name}",
                                  os.O_RDONLY | os.O_CLOEXEC)
                    undo.callback(os.close, own)
                    undo.callback(c.setns, own, flag, f"/proc/self/ns/{proc_name}")
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        c.setns(fd, flag, path)
                    finally:
                        os.close(fd)
                    back_home.append((own, flag, proc_name))
        tns = spec.linux.namespace("time")
        if tns is not None and not tns.path:
            _time_offsets(spec)
        elif tns is not None:
            fd = os.open(tns.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                c.setns(fd, c.CLONE_NEWTIME, tns.path)
            finally:
                os.close(fd)

        own_mount_ns = spec.linux.namespace("mount") is not None
        if not own_mount_ns:
            # The init mounts in our namespace (hostmounts): a failure takes them away,
            # once the init is gone (callbacks run last to first).
            from tomato.runtime import hostmounts

            rec.host_mounts = hostmounts.record(rootfs, before=True)
            states.save(rec)  # before any mount: a killed create is cleaned by delete
            undo.callback(hostmounts.detach_new, rootfs, rec.host_mounts["before"])
        sources, source_indexes = None, []
        if new_userns:
            # Bind sources the namespace's root cannot reach: opened by us (mountsources).
            from tomato.runtime import mountsources

            source_indexes = mountsources.bind_indexes(spec)
            if source_indexes:
                sources = mountsources.pair()
                undo.callback(sources[0].close)
                undo.callback(sources[1].close)
        parent_ch, child_ch = Channel.pair()
        undo.callback(parent_ch.close)
        fifo_fd = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
        start_fd = None
        if spec.hooks.get("startContainer"):
            # The init reports a failing startContainer hook to `start` here (hooks.py).
            from tomato.runtime.statedir import START_FIFO

            start_fifo = os.path.join(states.path(container_id), START_FIFO)
            os.mkfifo(start_fifo, 0o600)
            start_fd = os.open(start_fifo, os.O_RDWR | os.O_CLOEXEC)
        from tomato.runtime import dmz_exec
        from tomato.runtime.init import InitContext, container_init
        from tomato.runtime.process import preload

        preload(spec.process, hooks=bool(spec.hooks))
        dmz = dmz_exec.sealed()  # the host's file: copied before the init leaves our root
        if dmz is None:
            log.warning(dmz_exec.MISSING)

        ctx = InitContext(
            spec=spec, rootfs=rootfs, bundle=bundle, channel=child_ch, fifo_fd=fifo_fd,
            console_fd=console_sock.fileno() if console_sock else None,
            preserve_fds=opts.preserve_fds, no_pivot=opts.no_pivot, new_userns=new_userns,
            new_cgroupns=cgroupns is not None and not cgroupns.path, joined=joined,
            cgroup_dirs=cgroup_dirs, cgroup_unified=unified, caps=caps, seccomp=seccomp_filter,
            start_fd=start_fd, source_sock=sources[1].fileno() if sources else None,
            explain=opts.explain, dmz=dmz,
        )
        pid = -1
        try:
            pid = c.clone(flags)
        except OSError as err:
            os.close(fifo_fd)
            if start_fd is not None:
                os.close(start_fd)
            child_ch.close()
            raise TomatoError(f"cannot create namespaces: {err.strerror}") from err
        finally:
            if dmz is not None and pid != 0:  # (the init keeps it for its execve)
                os.close(dmz)
        if pid == 0:
            parent_ch.close()
            container_init(ctx)
        if own_pidns >= 0:  # back to the namespace we run in (always allowed)
            c.setns(own_pidns, c.CLONE_NEWPID, "/proc/self/ns/pid")
        for own, flag, proc_name in back_home:  # (the monitor goes on in its own)
            c.setns(own, flag, f"/proc/self/ns/{proc_name}")
        os.close(fifo_fd)
        if start_fd is not None:
            os.close(start_fd)
        child_ch.close()
        undo.callback(_reap, pid)

        if new_userns and user_ns is not None:
            _write_mappings(pid, spec.linux.uid_mappings, spec.linux.gid_mappings)
        if sources is not None:  # before the placement thread: setns needs us alone
            sources[1].close()
            mountsources.send(sources[0], pid, spec, bundle, source_indexes)
        placing = _Placement(manager, pid, threaded=not any(k == "pid" for k, _ in joined))
        undo.callback(placing.settle)
        from tomato.runtime.process import set_oom_score_adj

        set_oom_score_adj(pid, spec.process.oom_score_adj, log.warning)
        rec.pid = pid
        rec.pid_start = proc_start_time(pid)
        states.save(rec)

        state = json.dumps(oci_state(rec, "creating"))
        if spec.hooks.get("startContainer"):
            parent_ch.send("go", state=state, created=json.dumps(oci_state(rec, "created")))
        else:
            parent_ch.send("go", state=state)
        _await_ready(parent_ch, spec, state, log, placing)
        placing.wait()
        # After the placement: the systemd driver writes the files once its unit exists.
        for w in getattr(manager, "warnings", []):
            log.warning(w)

        master = None
        if console_sock is not None and not opts.console_socket:
            from tomato.runtime.console import recv_master

            master = recv_master(master_side)
        if not own_mount_ns:
            rec.host_mounts["id"] = hostmounts.top_mount(rootfs)  # type: ignore[index]
        rec.status = "created"
        states.save(rec)
        log.debug(f"create: container {container_id} created, init pid {pid}")
        rec._spec = spec  # saves lifecycle.spec_of a re-parse
        if opts.pid_file:
            write_pid_file(opts.pid_file, pid)
        undo.pop_all()
    parent_ch.close()
    if console_sock is not None:
        console_sock.close()
    return Created(rec, master)


class _Placement:
    """Moves the init into its cgroups on a thread (see init._enter_cgroupns).

    After joining another pid namespace (setns for our children) the kernel
    refuses to start threads, so then the move happens right here, inline.
    """

    def __init__(self, manager: Any, pid: int, threaded: bool = True) -> None:
        self.error: BaseException | None = None
        self.done = None
        if manager is None:
            return
        if not threaded:
            try:
                manager.apply(pid)
            except BaseException as err:  # noqa: BLE001 — re-raised by wait()
                self.error = err
            return
        import _thread

        self.done = _thread.allocate_lock()
        self.done.acquire()

        def run() -> None:
            try:
                manager.apply(pid)
            except BaseException as err:  # noqa: BLE001 — re-raised by wait()
                self.error = err
            finally:
                self.done.release()  # type: ignore[union-attr]

        try:
            _thread.start_new_thread(run, ())
        except RuntimeError:  # no thread to be had (resource limits): move it here
            run()

    def settle(self) -> None:
        """Wait for the thread without raising (used when rolling back)."""
        if self.done is not None:
            self.done.acquire()
            self.done.release()

    def wait(self) -> None:
        self.settle()
        if self.error is not None:
            raise self.error


def _await_ready(ch: Channel, spec: Spec, state: str, log: RuntimeLog,
                 placing: _Placement) -> None:
    while True:
        try:
            msg = ch.recv()
        except ChannelClosed:
            raise TomatoError("container init exited before it was ready") from None
        kind = msg.get("type")
        if kind == "ready":
            return
        if kind == "cgroup?":
            placing.wait()
            ch.send("cgroup")
        if kind == "warning":
            log.warning(msg.get("msg", ""))
        elif kind == "hooks":
            from tomato.runtime.hooks import run_hooks

            run_hooks("prestart", spec.hooks.get("prestart", ()), state)
            run_hooks("createRuntime", spec.hooks.get("createRuntime", ()), state)
            ch.send("hooks-done")
        elif kind == "error":
            raise TomatoError(msg.get("msg", "container init failed"))


#: namespaces the runtime joins before cloning into a new user namespace
_INHERITED_BY_A_NEW_USERNS = ("network", "ipc", "uts", "cgroup")
_PROC_NAMES = {"network": "net", "ipc": "ipc", "uts": "uts", "cgroup": "cgroup"}


def _reap(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
