"""The container's init: the child side of `create`, from clone to execve.

The runtime process clones this child with the new namespaces already made
(pid, mount, uts, ipc, net, user), then talks to it over a Channel:

    runtime                              init (this module)
    write uid/gid maps, start joining
    the cgroups in a thread
    "go" + state ─────────────────────▶  setsid, join namespaces by path,
                                         become root of the user ns,
                                         hostname, mounts
                 ◀───────────────────── "cgroup?"
    join that thread
    "cgroup" ─────────────────────────▶  unshare the cgroup namespace
                 ◀───────────────────── "hooks" (only if prestart/createRuntime exist)
    run those hooks
    "hooks-done" ─────────────────────▶  createContainer hooks, pivot_root,
                                         sysctl, masks, console, rlimits, user,
                                         capabilities, cwd, no_new_privs
                 ◀───────────────────── "ready"
    write state + pid file, exit         block reading the exec fifo ...
    ... `start` writes one byte ───────▶ signals, seccomp, execve
                                         (with startContainer hooks: seccomp, the
                                         hooks, their failure on start.fifo)

Any failure is sent back as {"type": "error", "msg": ...} and the child exits.
"""

from __future__ import annotations

import os
import sys

from tomato._sys import libc as c
from tomato._sys import userns
from tomato.oci.spec import Spec
from tomato.records import field, record
from tomato.runtime import dmz_exec
from tomato.runtime import process as proc_mod
from tomato.runtime import rootfs as rootfs_mod
from tomato.runtime.channel import Channel

TYPE_CHECKING = False  # importing typing costs ~2 ms on the start path
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from tomato.explain.trace import Explainer


@record(frozen=False)
class InitContext:
    spec: Spec
    rootfs: str
    bundle: str
    channel: Channel
    fifo_fd: int
    console_fd: int | None = None
    preserve_fds: int = 0
    no_pivot: bool = False
    new_userns: bool = False
    new_cgroupns: bool = False
    joined: list[tuple[str, str]] = field(default_factory=list)  # (type, path), user first
    cgroup_dirs: list[tuple[str, str]] = field(default_factory=list)
    cgroup_unified: bool = False
    caps: Any = None
    seccomp: Any = None
    start_fd: int | None = None  # start.fifo's write end, with startContainer hooks
    source_sock: int | None = None  # where the runtime sends bind sources (mountsources)
    explain: Explainer | None = None  # --explain: told of the chroot and the execve
    dmz: int | None = None  # a sealed copy of tomato-dmz, which makes the last execve


def container_init(ctx: InitContext) -> NoReturn:
    """Never returns: execs the container's process or exits non-zero."""
    c.set_comm("tomato-init")  # until execve, as runc's "runc:[2:INIT]"
    try:
        _init(ctx)
    except BaseException as err:  # noqa: BLE001 — everything must reach the runtime
        try:
            ctx.channel.send("error", msg=describe(err))
        except OSError:
            sys.stderr.write(f"tomato-runtime: {describe(err)}\n")
        os._exit(1)
    os._exit(1)


def describe(err: BaseException) -> str:
    """One line for the user: "mount /proc: permission denied" rather than "[Errno 13] ..."."""
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror.lower()}"
    return str(err) or type(err).__name__


def _report_start_failure(ctx: InitContext, msg: str) -> NoReturn:
    """Tell `start` (reading start.fifo, see lifecycle.start) why we will not exec."""
    if not _tell_start(ctx, msg):
        os.write(2, f"tomato-runtime: {msg}\n".encode())
    os._exit(1)


def _tell_start(ctx: InitContext, msg: str) -> bool:
    """Whether `start` got the message (it then reports it, so we stay quiet)."""
    if ctx.start_fd is None:
        return False
    try:
        os.write(ctx.start_fd, msg.encode()[:4096])
    except OSError:
        return False
    return True


def _warn(ctx: InitContext, msg: str) -> None:
    try:
        ctx.channel.send("warning", msg=msg)
    except OSError:
        pass


def _join_namespaces(ctx: InitContext) -> None:
    for kind, path in ctx.joined:
        if kind in ("pid", "time") or (ctx.new_userns and kind in (
                "network", "ipc", "uts", "cgroup")):
            continue  # joined by the runtime before clone (runtime/create.py)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise OSError(err.errno, f"cannot open {kind} namespace: {err.strerror}",
                          path) from err
        try:
            c.setns(fd, c.NAMESPACE_FLAGS[kind], path)
        finally:
            os.close(fd)


def _enter_cgroupns(ctx: InitContext) -> None:
    """Wait until the runtime has put us in our cgroups, then unshare the cgroup ns.

    Moving a process between v1 cgroups can stall for an RCU grace period
    (~10-20 ms); the runtime does it in a thread while we build the rootfs,
    and we only wait for it here, where it matters.
    """
    ctx.channel.send("cgroup?")
    ctx.channel.expect("cgroup")
    if ctx.new_cgroupns:
        c.unshare(c.CLONE_NEWCGROUP)


def _init(ctx: InitContext) -> None:
    spec = ctx.spec
    proc = spec.process
    assert proc is not None
    go = ctx.channel.expect("go")
    state_json: str = go["state"]
    # Until execve this process is the runtime's interpreter: nothing that later
    # joins the container may open /proc/<us>/exe or ptrace us (CVE-2019-5736).
    # Only now, the runtime having written our uid/gid maps, which needs us dumpable.
    c.prctl(c.PR_SET_DUMPABLE, 0)
    os.setsid()
    _join_namespaces(ctx)
    if ctx.new_userns:
        # We hold every capability in the new user namespace; become its root.
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    in_userns = ctx.new_userns or any(k == "user" for k, _ in ctx.joined) or \
        not userns.in_initial()  # (a rootless engine made us inside its own)
    if ctx.cgroup_unified:
        _enter_cgroupns(ctx)  # a cgroup2 mount must be made inside the new cgroupns
    if spec.hostname:
        c.sethostname(spec.hostname)
    if spec.domainname:
        c.setdomainname(spec.domainname)

    own_mount_ns = spec.linux.namespace("mount") is not None
    source_fds = None
    if ctx.source_sock is not None:
        from tomato.runtime import mountsources

        source_fds = mountsources.receive(ctx.source_sock)
    readonly_later = rootfs_mod.mount_all(spec, ctx.rootfs, ctx.bundle, ctx.cgroup_dirs,
                                          ctx.cgroup_unified, in_userns, own_mount_ns,
                                          source_fds)
    for fd in (source_fds or {}).values():
        os.close(fd)
    if not ctx.cgroup_unified:
        _enter_cgroupns(ctx)
    if spec.hooks.get("prestart") or spec.hooks.get("createRuntime"):
        ctx.channel.send("hooks")
        ctx.channel.expect("hooks-done")
    if spec.hooks.get("createContainer"):
        from tomato.runtime.hooks import run_hooks

        run_hooks("createContainer", spec.hooks["createContainer"], state_json)
    # The working directory is created if the image lacks it, as runc does.
    from tomato._sys.paths import mkdir_all_in_root

    mkdir_all_in_root(ctx.rootfs, proc.cwd)

    if not own_mount_ns:
        rootfs_mod.chroot_only(ctx.rootfs, ctx.explain)
    elif ctx.no_pivot:
        rootfs_mod.chroot_into(ctx.rootfs, ctx.explain)
    else:
        rootfs_mod.pivot_into(ctx.rootfs)
    if spec.linux.sysctl:
        rootfs_mod.apply_sysctls(spec.linux.sysctl)
    rootfs_mod.mask_paths(spec.linux.masked_paths, spec.linux.mount_label)
    rootfs_mod.readonly_paths(spec.linux.readonly_paths)
    rootfs_mod.readonly_later(readonly_later)
    # Last of the mounts: masks and read-only paths are binds, refused below an
    # unbindable "/" (runc applies it right after pivot_root, and fails so).
    rootfs_mod.apply_root_propagation(spec.linux.rootfs_propagation)
    if spec.root_readonly:
        rootfs_mod.readonly_root()

    if proc.terminal:
        from tomato.runtime import console

        master, slave, name = console.open_pty(proc.console_size)
        console.give_to(slave, proc.user.uid)
        assert ctx.console_fd is not None
        console.send_master(ctx.console_fd, master, name)
        os.close(master)
        os.close(ctx.console_fd)
        console.make_controlling(slave)
    elif ctx.console_fd is not None:
        os.close(ctx.console_fd)

    def warn(msg: str) -> None:
        _warn(ctx, msg)

    proc_mod.apply_rlimits(proc, warn)
    env = proc_mod.env_dict(proc.env)
    if "HOME" not in env:
        env["HOME"] = proc_mod.home_of(proc.user.uid)
    executable = proc_mod.find_executable(proc.args[0], env)
    load_seccomp = proc_mod.apply_security(proc, ctx.caps, ctx.seccomp, warn)
    proc_mod.close_fds_on_exec(3 + ctx.preserve_fds)

    ctx.channel.send("ready")
    # Block until `start` writes to the exec fifo (or the runtime, for `run`).
    while True:
        try:
            data = os.read(ctx.fifo_fd, 1)
            break
        except InterruptedError:
            continue
    os.close(ctx.fifo_fd)
    if not data:
        os._exit(1)
    if ctx.explain is not None:
        ctx.explain.execve([executable, *proc.args[1:]])
    start_hooks = spec.hooks.get("startContainer")
    if not start_hooks:
        proc_mod.restore_signals()
        load_seccomp()  # the last step before execve
    else:
        # The hooks run with the container's filter (as runc's), and with SIGPIPE
        # still ignored, so a hook closing its stdin cannot kill us.
        load_seccomp()
        from tomato.runtime.hooks import HookFailed, run_hooks

        try:
            run_hooks("startContainer", start_hooks, go.get("created") or state_json)
        except HookFailed as err:
            _report_start_failure(ctx, str(err))
        proc_mod.restore_signals()
    try:  # through tomato-dmz (dmz_exec.py), which reports its own execve's failure
        dmz_exec.execve(ctx.dmz, "init", -1 if ctx.start_fd is None else ctx.start_fd,
                        executable, list(proc.args), env)
    except OSError as err:
        # os.write: sys.stderr may be block-buffered (a monitor's), and _exit drops buffers
        why = proc_mod.exec_failure(executable, err)
        if not _tell_start(ctx, why):
            os.write(2, f"tomato-runtime: {why}\n".encode())
        os._exit(127 if err.errno == 2 else 126)
