"""``tomato unshare`` and ``tomato nsenter``: util-linux's two tools, step by step.

Same semantics as util-linux 2.38's: ``unshare`` calls unshare(2) with the
chosen flags, writes the user namespace maps (-r, --map-user, --map-group),
forks when asked (-f; the child is then PID 1 of a new pid namespace), makes
the mounts private (util-linux's default --propagation private), mounts a
fresh /proc (--mount-proc) and execs the program (default $SHELL or /bin/sh).
``nsenter`` opens /proc/PID/ns/* first, then setns(2)s in util-linux's order
(user, cgroup, ipc, uts, net, pid, mnt, time), becomes root in an entered user
namespace and forks when it entered a pid namespace (setns on a pid namespace
only moves the children).

These functions end in execve; the parent of a fork returns the child's wait
status (an exit code, or minus the signal that killed it, as subprocess
reports).  The caller must be single threaded (unshare of a user namespace
and setns refuse threaded callers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tomato._sys import libc
from tomato.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from tomato.runtime import dmz_exec

from .explain import NULL, Explainer

#: util-linux's order of namespaces for setns (user first: it grants the rights).
NSENTER_ORDER = ("user", "cgroup", "ipc", "uts", "net", "pid", "mnt", "time")

FLAG_OF = {
    "mnt": libc.CLONE_NEWNS, "uts": libc.CLONE_NEWUTS, "ipc": libc.CLONE_NEWIPC,
    "net": libc.CLONE_NEWNET, "pid": libc.CLONE_NEWPID, "user": libc.CLONE_NEWUSER,
    "cgroup": libc.CLONE_NEWCGROUP, "time": libc.CLONE_NEWTIME,
}


@dataclass(frozen=True)
class UnshareOptions:
    namespaces: frozenset[str] = frozenset()   # names of FLAG_OF
    fork: bool = False
    mount_proc: str | None = None              # where to mount proc, usually /proc
    map_root: bool = False
    map_user: int | None = None
    map_group: int | None = None
    propagation: str = "private"               # private, shared, slave, unchanged

    @property
    def flags(self) -> int:
        names = set(self.namespaces)
        if self.map_root or self.map_user is not None or self.map_group is not None:
            names.add("user")
        if self.mount_proc:
            names.add("mnt")
        out = 0
        for n in names:
            out |= FLAG_OF[n]
        return out


def _exec(argv: list[str], ex: Explainer, dmz: int | None = None) -> None:
    """execvp; with ``dmz`` (nsenter into another's mount namespace) through tomato-dmz
    run from its sealed copy, so a "#!/proc/self/exe" program there never wakes our
    interpreter (CVE-2019-5736, runtime/dmz_exec.py)."""
    if not argv:
        shell = os.environ.get("SHELL") or "/bin/sh"
        argv = [shell]
    ex.execve(argv)
    if dmz is not None:
        found = _lookup(argv[0])
        if found is None:
            os._exit(127)
        try:
            dmz_exec.execve(dmz, "exec", -1, found, argv, dict(os.environ))
        except OSError:
            os._exit(126)
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        os._exit(127)  # like util-linux: "failed to execute": 127 (no shell left to tell)
    except OSError:
        os._exit(126)


def _lookup(name: str) -> str | None:
    """execvp's PATH search, done here (the dmz takes a path): no imports."""
    if "/" in name:
        return name
    for d in (os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin").split(":"):
        path = os.path.join(d or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _write(path: str, value: str, ex: Explainer) -> None:
    ex.write(path, value)
    with open(path, "w") as f:
        f.write(value)


def _wait(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)  # as subprocess does: the caller may re-raise it
    return os.WEXITSTATUS(status)


def _oserror(err: OSError, what: str) -> Exception:
    import errno
    reason = os.strerror(err.errno or 0).lower()
    if err.errno in (errno.EPERM, errno.EACCES):
        return PermissionDenied(f"{what}: {reason}")
    if err.errno == errno.EINVAL:
        return InvalidArgument(f"{what}: {reason} (is the caller multi-threaded, or is the "
                               f"namespace type unsupported by this kernel?)")
    return Unavailable(f"{what}: {reason}")


def unshare(opts: UnshareOptions, argv: list[str], ex: Explainer = NULL) -> int:
    """Run ``argv`` in new namespaces; returns only in the parent of a fork."""
    flags = opts.flags
    euid, egid = os.geteuid(), os.getegid()
    ex.unshare(flags)
    try:
        libc.unshare(flags)
    except OSError as err:
        raise _oserror(err, "unshare failed") from err
    if flags & libc.CLONE_NEWUSER:
        uid = 0 if opts.map_root else opts.map_user
        gid = 0 if opts.map_root else opts.map_group
        if gid is not None:
            _write("/proc/self/setgroups", "deny", ex)  # a gid map needs it without CAP_SETGID
            _write("/proc/self/gid_map", f"{gid} {egid} 1", ex)
        if uid is not None:
            _write("/proc/self/uid_map", f"{uid} {euid} 1", ex)
    if opts.fork:
        ex.fork("fork()", "unshare --fork")
        pid = os.fork()
        if pid:
            return _wait(pid)
    try:
        if flags & libc.CLONE_NEWNS and opts.propagation != "unchanged":
            prop = {"private": libc.MS_PRIVATE, "shared": libc.MS_SHARED,
                    "slave": libc.MS_SLAVE}.get(opts.propagation)
            if prop is None:
                raise InvalidArgument(f"unsupported propagation mode: {opts.propagation}")
            ex.mount("none", "/", None, libc.MS_REC | prop)
            libc.mount("none", "/", None, libc.MS_REC | prop)
        if opts.mount_proc:
            flags_proc = libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC
            ex.mount("proc", opts.mount_proc, "proc", flags_proc)
            libc.mount("proc", opts.mount_proc, "proc", flags_proc)
    except OSError as err:
        if opts.fork:
            os.write(2, f"tomato: mount failed: {err.strerror}\n".encode())
            os._exit(1)
        raise _oserror(err, "mount failed") from err
    except BaseException:
        if opts.fork:
            os._exit(1)
        raise
    _exec(argv, ex)
    return 0  # not reached


@dataclass(frozen=True)
class NsenterOptions:
    target: int
    namespaces: frozenset[str] = frozenset()   # names of FLAG_OF
    all: bool = False
    root: bool = False                         # -r: chroot to the target's root
    wd: bool = False                           # -w: cd to the target's cwd
    fork: bool = True                          # -F turns off the fork after a pid setns
    preserve_credentials: bool = False


def _same(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def nsenter_plan(opts: NsenterOptions) -> list[str]:
    """The namespaces to enter, in order (``-a`` leaves out those we are already in)."""
    if not os.path.exists(f"/proc/{opts.target}"):
        raise NotFound(f"no such process: {opts.target}")
    wanted = set(opts.namespaces)
    if opts.all:
        for n in NSENTER_ORDER:
            if not os.path.exists(f"/proc/{opts.target}/ns/{n}"):
                continue  # a kernel without this namespace type
            if _same(f"/proc/{opts.target}/ns/{n}", f"/proc/self/ns/{n}"):
                # As util-linux: -a leaves out what we are already in (a user namespace
                # cannot be re-entered, and once in the target's user namespace we have
                # no right to setns into the host's own cgroup or time namespace).
                continue
            wanted.add(n)
    if not wanted and not opts.root and not opts.wd:
        raise InvalidArgument("no namespace specified: give -a or some of -m -u -i -n -p -U "
                              "-C -T")
    return [n for n in NSENTER_ORDER if n in wanted]


def nsenter(opts: NsenterOptions, argv: list[str], ex: Explainer = NULL) -> int:
    order = nsenter_plan(opts)
    # the host's file, copied before another mount namespace or root hides it
    dmz = dmz_exec.sealed() if "mnt" in order or opts.root else None
    fds: list[tuple[str, int, str]] = []
    try:
        for n in order:
            path = f"/proc/{opts.target}/ns/{n}"
            try:
                fds.append((n, os.open(path, os.O_RDONLY | os.O_CLOEXEC), path))
            except FileNotFoundError as err:
                raise NotFound(f"no such process: {opts.target}") from err
            except OSError as err:
                raise _oserror(err, f"cannot open {path}") from err
        root_fd = os.open(f"/proc/{opts.target}/root", os.O_RDONLY | os.O_CLOEXEC) \
            if opts.root else None
        wd_fd = os.open(f"/proc/{opts.target}/cwd", os.O_RDONLY | os.O_CLOEXEC) \
            if opts.wd else None
        for n, fd, path in fds:
            ex.setns(path, FLAG_OF[n])
            try:
                libc.setns(fd, FLAG_OF[n], path)
            except OSError as err:
                raise _oserror(err, f"reassociate to namespace '{n}' failed") from err
    finally:
        for _n, fd, _p in fds:
            os.close(fd)
    if root_fd is not None:
        ex.step(f'fchdir(open("/proc/{opts.target}/root")); chroot(".")', "nsenter -r")
        os.fchdir(root_fd)
        os.chroot(".")
        os.close(root_fd)
    if wd_fd is not None:
        ex.step(f'fchdir(open("/proc/{opts.target}/cwd"))', "nsenter -w")
        os.fchdir(wd_fd)
        os.close(wd_fd)
    elif root_fd is not None:
        os.chdir("/")
    if "user" in order and not opts.preserve_credentials:
        # util-linux becomes root of the entered user namespace (-S 0 -G 0).
        ex.step("setgroups(0, NULL); setgid(0); setuid(0)", "nsenter -S 0 -G 0")
        try:
            os.setgroups([])
        except OSError:
            pass  # setgroups is denied in this user namespace: keep the groups
        os.setgid(0)
        os.setuid(0)
    if "pid" in order and opts.fork:
        ex.fork("fork()", "nsenter (forks: a pid namespace holds only the children)")
        pid = os.fork()
        if pid:
            return _wait(pid)
    _exec(argv, ex, dmz)
    return 0  # not reached


__all__ = ["FLAG_OF", "NSENTER_ORDER", "NsenterOptions", "UnshareOptions", "nsenter",
           "nsenter_plan", "unshare"]
