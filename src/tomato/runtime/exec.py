"""`exec`: a new process inside a running container (the study note's nsenter).

The runtime joins the container's pid (and time) namespace for its children
only, then forks; the child makes itself non-dumpable *before* entering the
container (so nothing inside can open its /proc/PID/exe — CVE-2019-5736),
joins the remaining namespaces and the cgroups, chroots to the container's
root, applies the same security settings as the container, and execs.
"""

from __future__ import annotations

import os
import sys

from tomato import fastjson as json  # the json module costs exec ~6 ms of imports (re, enum)
from tomato._sys import libc as c
from tomato.errors import Conflict, InvalidArgument, NotFound, TomatoError
from tomato.oci.spec import Process, parse_process, parse_spec
from tomato.oci.state import Status
from tomato.records import record
from tomato.runtime import process as proc_mod
from tomato.runtime import statedir
from tomato.runtime.lifecycle import load, manager_of
from tomato.runtime.log import RuntimeLog
from tomato.runtime.statedir import Record, StateDir

TYPE_CHECKING = False  # importing typing costs ~2 ms on the start path
if TYPE_CHECKING:
    from typing import Any

    from tomato.explain.trace import Explainer

# Join order: user first (it grants the rights for the rest), mount last but one.
_ORDER = ("user", "ipc", "uts", "network", "cgroup", "mount")


@record
class ExecOptions:
    process: dict[str, Any]
    detach: bool = False
    pid_file: str = ""
    console_socket: str = ""
    preserve_fds: int = 0
    sub_cgroups: dict[str, str] | None = None  # --cgroup: {controller or "": sub-path}
    explain: Explainer | None = None  # --explain: told of the cgroup moves and the execve


@record(frozen=False)
class Execed:
    pid: int
    console_master: int | None = None


def build_process(base: dict[str, Any], args: list[str], env: list[str], cwd: str,
                  user: str, caps: list[str], tty: bool,
                  no_new_privs: bool | None) -> dict[str, Any]:
    """A process.json from the container's own process and exec's flags (runc's rules)."""
    proc: dict[str, Any] = json.loads(json.dumps(base))
    proc["args"] = args
    proc["terminal"] = tty
    proc["env"] = list(proc.get("env") or []) + env
    if cwd:
        proc["cwd"] = cwd
    if user:
        uid, _, gid = user.partition(":")
        try:
            proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        except ValueError:
            raise InvalidArgument(f"invalid --user {user!r}: want UID[:GID]") from None
    if caps:
        sets = proc.setdefault("capabilities", {})
        for key in ("bounding", "effective", "permitted", "ambient"):
            sets[key] = sorted(set(sets.get(key) or []) | set(caps))
    if no_new_privs is not None:
        proc["noNewPrivileges"] = no_new_privs
    return proc


def exec_process(states: StateDir, container_id: str, opts: ExecOptions,
                 log: RuntimeLog, keep_master: bool = False, rec: Record | None = None) -> Execed:
    """Run ``opts.process`` in the container (``rec``: its record, if the caller read it)."""
    rec, status = load(states, container_id, rec)
    if status not in (Status.CREATED, Status.RUNNING):
        raise Conflict(f"cannot exec in a {status} container {container_id}")
    if opts.pid_file and not os.path.isdir(os.path.dirname(os.path.abspath(opts.pid_file))):
        # runc finds out once the process runs, and kills it: we look first.
        raise NotFound(f"--pid-file {opts.pid_file}: its directory does not exist")
    spec = parse_spec(rec.config)
    proc = parse_process(opts.process, "process")
    if proc.terminal and not opts.console_socket and not keep_master:
        raise InvalidArgument("process.terminal is true: --console-socket is required")
    warnings: list[str] = []
    caps = None
    cap_spec = proc.capabilities
    if cap_spec is None and spec.process is not None:
        # As runc: a process.json without capabilities gets the container's,
        # never the runtime's own full set.
        cap_spec = spec.process.capabilities
    if cap_spec is not None:
        from tomato._sys import caps as capmod

        caps = capmod.CapSets.from_oci(cap_spec, warnings)
    seccomp_filter = None
    if spec.linux.seccomp is not None:
        from tomato.runtime.seccomp_cache import load_filter

        seccomp_filter = load_filter(states.root, spec.linux.seccomp, warnings)
    for w in warnings:
        log.warning(w)

    pid = rec.pid
    kinds = {ns.type for ns in spec.linux.namespaces}
    ns_fds, for_children, root_fd = _open_init(rec, kinds, container_id)
    console_sock = master_side = None
    if opts.console_socket:
        from tomato.runtime import console

        try:
            console_sock = console.connect(opts.console_socket)
        except OSError as err:
            raise InvalidArgument(f"cannot connect to console socket "
                                  f"{opts.console_socket}: {err.strerror}") from err
    elif proc.terminal:
        import socket

        console_sock, master_side = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proc_mod.preload(proc)
    from tomato.runtime import dmz_exec

    dmz = dmz_exec.sealed()  # the host's file: copied before anything is entered
    if dmz is None:
        log.warning(dmz_exec.MISSING)
    from tomato.runtime import primer as front_primer

    primer = front_primer.take()  # started by the front end before Python (primer.py)
    # A close-on-exec pipe: EOF means exec succeeded, data is the error.
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    # pid and time namespaces apply to our children: join them for this one fork and
    # return to our own right after it, so that nothing this process forks later -- a
    # fork server, a monitor, a reaper: all trusted by the host -- is ever born inside
    # the container's pid namespace (issue 13: a fork server planted by exec).
    try:
        with _children_in(for_children, pid):
            child = os.fork()
    except BaseException:
        if dmz is not None:
            os.close(dmz)
        raise
    finally:
        for _, fd in for_children:  # (in the child too: it needs them no more)
            os.close(fd)
    if child == 0:
        os.close(err_r)
        os.close(go_w)
        try:
            _child(proc, ns_fds, root_fd, go_r, console_sock.fileno() if console_sock else None,
                   opts.preserve_fds, caps, seccomp_filter, pid, opts.explain, dmz, err_w)
        except BaseException as err:  # noqa: BLE001
            os.write(err_w, (str(err) or type(err).__name__).encode())
        os._exit(126)
    os.close(err_w)
    os.close(go_r)
    if dmz is not None:
        os.close(dmz)
    for _, fd in ns_fds:
        os.close(fd)
    os.close(root_fd)
    mgr = manager_of(rec, opts.explain)
    try:
        if mgr is not None and opts.sub_cgroups:
            mgr.apply_sub(child, opts.sub_cgroups)
        elif mgr is not None:
            mgr.apply(child)
    except BaseException:
        _kill(child)  # never a process left outside the cgroups asked for
        raise
    finally:
        if primer is not None:  # the front end's, which kept that move quick
            primer.finished()
        try:
            os.write(go_w, b"1")
        except OSError:
            pass  # the child is gone (killed above)
        os.close(go_w)
    log.debug(f"exec: process {child} joined container {container_id}")
    failure = b""
    while True:
        chunk = os.read(err_r, 4096)
        if not chunk:
            break
        failure += chunk
    os.close(err_r)
    if failure:
        os.waitpid(child, 0)
        raise TomatoError(failure.decode(errors="replace"))
    master = None
    if master_side is not None:
        from tomato.runtime.console import recv_master

        master = recv_master(master_side)
        master_side.close()
    if console_sock is not None:
        console_sock.close()
    if opts.pid_file:
        from tomato.runtime.statedir import write_pid_file

        try:
            write_pid_file(opts.pid_file, child)
        except TomatoError:
            _kill(child)  # as runc: the process is not left running unaccounted for
            if master is not None:
                os.close(master)
            raise
    return Execed(child, master)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _open_init(rec: Record, kinds: set[str], container_id: str,
               ) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    """The init's namespaces to join (in _ORDER), its pid and time namespaces (for our
    one fork), and its root: opened while its pid is pinned.

    A pidfd taken once the start time matched the record's names that very process;
    if it can still be signalled after the opens, the process never died in between,
    so its pid was never reused and every /proc/PID/... opened was the container's
    init's -- never those of a process that got the pid after it (a host process: the
    host's namespaces and root).  Otherwise, as any exec into a dead container:
    "not running"."""
    import _signal

    pid = rec.pid
    gone = NotFound(f"container {container_id} is not running")
    try:
        pin: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        raise gone from None
    except OSError:  # a kernel before 5.3: the start time, checked again after the opens
        pin = None
    opened: list[tuple[str, int]] = []
    try:
        if statedir.proc_start_time(pid) != rec.pid_start:
            raise gone
        for kind in (*_ORDER, "pid", "time"):
            if kind in kinds:
                opened.append((kind, os.open(f"/proc/{pid}/ns/{c.NAMESPACE_PROC_NAMES[kind]}",
                                             os.O_RDONLY | os.O_CLOEXEC)))
        opened.append(("root", os.open(f"/proc/{pid}/root",
                                       os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)))
        if pin is None:
            if statedir.proc_start_time(pid) != rec.pid_start:
                raise gone
        else:
            try:
                _signal.pidfd_send_signal(pin, 0)
            except ProcessLookupError:
                raise gone from None
            except PermissionError:
                pass  # there to be refused: alive
    except FileNotFoundError:
        for _, fd in opened:
            os.close(fd)
        raise gone from None
    except BaseException:
        for _, fd in opened:
            os.close(fd)
        raise
    finally:
        if pin is not None:
            os.close(pin)
    root_fd = opened.pop()[1]
    return ([(k, fd) for k, fd in opened if k not in ("pid", "time")],
            [(k, fd) for k, fd in opened if k in ("pid", "time")], root_fd)


class _children_in:
    """Within it, this process's children are born in the namespaces ``fds`` (the
    container's pid and time namespaces, opened by _open_init); on leaving (in the
    parent), they are ours again.  Joining back our own is always allowed: it is
    still the namespace we are active in."""

    def __init__(self, fds: list[tuple[str, int]], pid: int) -> None:
        self.fds, self.pid = fds, pid
        self.parent = os.getpid()
        self.own: list[tuple[str, int]] = []

    def __enter__(self) -> _children_in:
        try:
            for kind, fd in self.fds:
                name = c.NAMESPACE_PROC_NAMES[kind]
                self.own.append((kind, os.open(f"/proc/self/ns/{name}",
                                               os.O_RDONLY | os.O_CLOEXEC)))
                c.setns(fd, c.NAMESPACE_FLAGS[kind], f"/proc/{self.pid}/ns/{name}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        in_child = os.getpid() != self.parent  # the child stays where it was born
        while self.own:
            kind, fd = self.own.pop()
            try:
                if not in_child:
                    c.setns(fd, c.NAMESPACE_FLAGS[kind], f"/proc/self/ns/{kind}")
            except PermissionError:
                # The rootless engine (engine/rootless.py) is root of the user's namespace
                # only: the host's pid namespace we are active in is not its to join, so
                # our later children are born beside the container's processes.  They
                # are the same user's, with every capability of that namespace, which
                # the container's root lacks (no ptrace, no /proc/PID/root of them).
                from tomato._sys import userns

                if userns.in_initial():
                    raise
            finally:
                os.close(fd)


def _join_all(ns_fds: list[tuple[str, int]], pid: int) -> None:
    """setns into each; those the user namespace's root may not join yet (one the
    host's root made and the container joined: --userns-remap's network namespace)
    first, while we still have our own rights, then the user namespace, then the rest
    (runc's nsexec tries the same two passes)."""
    def join(kind: str, fd: int) -> None:
        c.setns(fd, c.NAMESPACE_FLAGS[kind], f"/proc/{pid}/ns/{c.NAMESPACE_PROC_NAMES[kind]}")

    later = []
    user = [(k, fd) for k, fd in ns_fds if k == "user"]
    for kind, fd in ns_fds:
        if kind == "user" or not user:
            continue
        try:
            join(kind, fd)
        except PermissionError:  # an unprivileged caller: its rights come with the user ns
            later.append((kind, fd))
            continue
        os.close(fd)
    for kind, fd in user + (later if user else ns_fds):
        join(kind, fd)
        os.close(fd)


def _child(proc: Process, ns_fds: list[tuple[str, int]], root_fd: int, go_r: int,
           console_fd: int | None, preserve_fds: int, caps: Any, seccomp_filter: Any,
           pid: int = 0, explain: Explainer | None = None, dmz: int | None = None,
           err_w: int = -1) -> None:
    proc_mod.set_dumpable(False)
    os.read(go_r, 1)  # wait until we are in the container's cgroups
    os.close(go_r)
    os.setsid()
    _join_all(ns_fds, pid)
    os.fchdir(root_fd)
    os.chroot(".")
    os.close(root_fd)
    os.chdir("/")
    if proc.terminal:
        from tomato.runtime import console

        master, slave, name = console.open_pty(proc.console_size)
        console.give_to(slave, proc.user.uid)
        assert console_fd is not None
        console.send_master(console_fd, master, name)
        os.close(master)
        console.make_controlling(slave)
    if console_fd is not None:
        os.close(console_fd)

    def warn(msg: str) -> None:
        sys.stderr.write(f"tomato-runtime: warning: {msg}\n")

    proc_mod.apply_rlimits(proc, warn)
    env = proc_mod.env_dict(proc.env)
    if "HOME" not in env:
        env["HOME"] = proc_mod.home_of(proc.user.uid)
    executable = proc_mod.find_executable(proc.args[0], env)
    load_seccomp = proc_mod.apply_security(proc, caps, seccomp_filter, warn)
    proc_mod.close_fds_on_exec(3 + preserve_fds)
    proc_mod.restore_signals()
    if explain is not None:
        explain.execve([executable, *proc.args[1:]])
    load_seccomp()  # the last step before execve
    from tomato.runtime.dmz_exec import execve

    try:  # through tomato-dmz, which reports its own execve's failure on err_w
        execve(dmz, "exec", err_w, executable, list(proc.args), env)
    except OSError as err:  # the caller reports it, as runc's "exec failed: ..."
        raise TomatoError(proc_mod.exec_failure(executable, err)) from None
