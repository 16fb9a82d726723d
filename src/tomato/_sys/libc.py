"""libc and raw syscalls through ctypes: the kernel primitives a runtime needs.

Every wrapper raises ``OSError(errno, strerror, path)`` on failure, so
callers see one error shape.  This module is on the runtime's start path:
it imports only ctypes and os, and looks nothing up until first use.
"""

from __future__ import annotations

import ctypes
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.explain.trace import Explainer

# x86_64 syscall numbers (the only architecture Tomato targets today).
SYS_CLONE = 56
SYS_PIVOT_ROOT = 155
SYS_SETNS = 308
SYS_OPENAT2 = 437
SYS_PIDFD_OPEN = 434

# clone(2) / unshare(2) / setns(2) flags
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MNT_FORCE = 1
MNT_DETACH = 2

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

SIGCHLD = 17

_libc: ctypes.CDLL | None = None
_pylibc: ctypes.PyDLL | None = None

#: ``--explain``: the explainer told about every kernel step of the wrappers below,
#: or None.  Private to this module, installed by ``explain_syscalls`` at the edge that
#: parsed --explain, which hands the same explainer on explicitly to everything above
#: _sys that reports a step (the runtime's CreateOptions/ExecOptions, the cgroup
#: manager's ``explain``, Netlink's, the EngineConfig's): nothing else reads it.  The
#: wrappers themselves check this one variable (a global load when off) instead of
#: taking an explainer on every call of the start path; a fork or clone inherits it.
_trace: Explainer | None = None


def explain_syscalls(explainer: Explainer | None) -> None:
    """Tell ``explainer`` (None: nobody) about each kernel step of this module's wrappers."""
    global _trace
    _trace = explainer


def libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _pylib() -> ctypes.PyDLL:
    """libc whose calls keep the GIL held (needed around clone)."""
    global _pylibc
    if _pylibc is None:
        _pylibc = ctypes.PyDLL(None, use_errno=True)
    return _pylibc


def _check(ret: int, path: str | None = None) -> int:
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return ret


def _b(s: str | bytes | None) -> bytes | None:
    if s is None:
        return None
    return s.encode() if isinstance(s, str) else s


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(libc().mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
           target)
    if _trace is not None:  # a pinned destination (/proc/self/fd/N) shown by its path
        shown = os.readlink(target) if target.startswith("/proc/self/fd/") else target
        _trace.mount(source, shown, fstype, flags, data)


PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572


def fs_type(path: str) -> int:
    """statfs(2)'s f_type of the filesystem holding ``path`` (PROC_SUPER_MAGIC ...)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs: f_type is its first long
    _check(libc().statfs(_b(path), buf), path)
    return int.from_bytes(buf.raw[:ctypes.sizeof(ctypes.c_long)], sys.byteorder) & 0xFFFFFFFF


def umount2(target: str, flags: int = 0) -> None:
    _check(libc().umount2(_b(target), flags), target)
    if _trace is not None:
        _trace.umount(target, flags)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(libc().syscall(SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), new_root)
    if _trace is not None:
        _trace.pivot_root(new_root, put_old)


def unshare(flags: int) -> None:
    _check(libc().unshare(flags))
    if _trace is not None:
        _trace.unshare(flags)


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    _check(libc().setns(fd, nstype), path)
    if _trace is not None:
        _trace.setns(path or f"/proc/self/fd/{fd}", nstype)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(libc().sethostname(raw, len(raw)))
    if _trace is not None:
        _trace.sethostname(name)


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(libc().setdomainname(raw, len(raw)))


def set_comm(name: str) -> None:
    """This process's name in ps and top (15 bytes at most): what a fork of a Python
    process is for ("tomato-monitor", ...) rather than "python3" everywhere."""
    try:
        with open("/proc/thread-self/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(libc().prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                               ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)))


def clone(flags: int) -> int:
    """fork(2) with namespace flags: returns the child's pid, or 0 in the child.

    A raw clone with no new stack behaves like fork.  CPython's own fork
    bookkeeping (import lock, thread state, at-fork hooks) is run around it
    so the child is a sound interpreter.  The caller must be single-threaded,
    and that is checked, not hoped for: the ctypes call releases the GIL, and a
    thread that takes it then leaves the child waiting for a GIL nobody will
    release (threads only after the clone, or os.fork, which hands it over).
    """
    threading = sys.modules.get("threading")  # never imported: no thread was started
    others = threading.active_count() - 1 if threading is not None else 0
    if others:  # (threading's count: _thread's keeps the threads a fork left behind)
        raise RuntimeError(f"clone() with {others} other Python thread(s) running: "
                           "the child could wait forever for the GIL")
    if _trace is not None and flags:
        from tomato.explain.shell import ns_flag_names, ns_options

        _trace.step(f"clone({ns_flag_names(flags)}|SIGCHLD)",
                   f"unshare --fork {ns_options(flags)}")
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    ret = _pylib().syscall(SYS_CLONE, ctypes.c_ulong(flags | SIGCHLD), None, None, None, None)
    if ret == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if ret == -1:
        raise OSError(err, os.strerror(err))
    return int(ret)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, resolve)
    return _check(libc().syscall(SYS_OPENAT2, dirfd, _b(path), ctypes.byref(how),
                                 ctypes.sizeof(how)), path)


def pidfd_open(pid: int) -> int:
    return _check(libc().syscall(SYS_PIDFD_OPEN, pid, 0))


NAMESPACE_FLAGS = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}

#: OCI namespace type → the name of its link under /proc/PID/ns.
NAMESPACE_PROC_NAMES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}
