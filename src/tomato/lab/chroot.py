"""Plain chroot, as in the study note, and why containers use pivot_root instead.

``chroot(2)`` only changes how "/" is resolved for one process: its current
directory may stay outside, and any root process can chroot again (into a
subdirectory, keeping its cwd outside, then ``..`` up to the real root), or
reach the host through /proc/1/root.  A container instead gets a mount
namespace, pivot_root(2)s into the new root and unmounts the old one: the
host's tree is no longer mounted anywhere the process can name; with a pid
namespace, /proc/1 is the container's own init.

:func:`try_escape` runs both escapes in a forked child under either kind of
isolation and reports whether the host's root directory became visible.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tomato._sys import libc
from tomato.errors import InvalidArgument, NotFound

from .explain import NULL, Explainer


def chroot_exec(directory: str, argv: list[str], ex: Explainer = NULL) -> None:
    """``chroot DIR CMD``: chroot, cd /, exec (the command is looked up inside DIR)."""
    if not os.path.isdir(directory):
        raise NotFound(f"no such directory: {directory}")
    if not argv:
        argv = [os.environ.get("SHELL") or "/bin/sh", "-i"]
    ex.chroot(directory)
    os.chroot(directory)
    ex.chdir("/")
    os.chdir("/")
    ex.execve(argv)
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        os.write(2, f"tomato: chroot: {argv[0]}: no such file inside the new root\n".encode())
        os._exit(127)
    except OSError as err:
        os.write(2, f"tomato: chroot: cannot run {argv[0]}: {err.strerror}\n".encode())
        os._exit(126)


@dataclass(frozen=True)
class EscapeResult:
    isolation: str            # "chroot" or "pivot_root"
    dotdot_escaped: bool      # mkdir x; chroot x; cd ../../..; chroot .
    proc_escaped: bool        # mount proc; chroot /proc/1/root


ESCAPES = (
    ("dotdot", "mkdir x; chroot x (cwd stays outside); cd .. (x64); chroot ."),
    ("proc", "mount -t proc proc /proc; chroot /proc/PID/root of a process outside"),
)


def try_escape(rootfs: str, isolation: str, ex: Explainer = NULL) -> EscapeResult:
    """Isolate a child in ``rootfs`` (plain chroot, or mount+pid namespaces and
    pivot_root), then try both escapes; ``rootfs`` is left as it was."""
    if isolation not in ("chroot", "pivot_root"):
        raise InvalidArgument(f"unknown isolation {isolation!r}: chroot or pivot_root")
    if not os.path.isdir(rootfs):
        raise NotFound(f"no such directory: {rootfs}")
    host = os.stat("/")
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        code = 0
        try:
            code = _child(os.path.abspath(rootfs), isolation, (host.st_dev, host.st_ino), ex)
        except BaseException as err:  # the child must never return into the caller's code
            os.write(2, f"tomato: escape demo: {err}\n".encode())
            code = 100
        os.write(wfd, str(code).encode())
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd) as r:
        out = r.read()
    os.waitpid(pid, 0)
    if not out or int(out) >= 100:
        raise InvalidArgument(f"the escape demo could not set up {isolation} in {rootfs}")
    bits = int(out)
    return EscapeResult(isolation, bool(bits & 1), bool(bits & 2))


def _child(rootfs: str, isolation: str, host: tuple[int, int], ex: Explainer) -> int:
    if isolation == "chroot":
        # A private mount namespace only so the demo's proc mount never shows on the
        # host; it does nothing against these escapes (no pivot_root, no umount).
        libc.unshare(libc.CLONE_NEWNS)
        libc.mount("none", "/", None, libc.MS_REC | libc.MS_PRIVATE)
        ex.chroot(rootfs)
        os.chroot(rootfs)
        ex.chdir("/")
        os.chdir("/")
        return _attempts(host, ex)
    flags = libc.CLONE_NEWNS | libc.CLONE_NEWPID
    ex.unshare(flags)
    libc.unshare(flags)
    pid = os.fork()  # the first child of a new pid namespace is its pid 1
    if pid:
        _, status = os.waitpid(pid, 0)
        return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 100
    try:
        ex.mount("none", "/", None, libc.MS_REC | libc.MS_PRIVATE)
        libc.mount("none", "/", None, libc.MS_REC | libc.MS_PRIVATE)
        ex.mount(rootfs, rootfs, None, libc.MS_BIND | libc.MS_REC)
        libc.mount(rootfs, rootfs, None, libc.MS_BIND | libc.MS_REC)
        os.chdir(rootfs)
        ex.pivot_root(".", ".")
        libc.pivot_root(".", ".")  # runc's trick: the old root is stacked under the new one
        ex.umount(".", libc.MNT_DETACH)
        libc.umount2(".", libc.MNT_DETACH)
        ex.chdir("/")
        os.chdir("/")
        os._exit(_attempts(host, ex))
    except BaseException as err:
        os.write(2, f"tomato: escape demo: {err}\n".encode())
        os._exit(100)


def _attempts(host: tuple[int, int], ex: Explainer) -> int:
    bits = 0
    # Escape 1: chroot into a subdirectory without entering it, then walk up.
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            os.makedirs("/.escape", exist_ok=True)
            ex.step('chroot("/.escape") without chdir, then chdir("..") x64, chroot(".")',
                    "the classic escape of a root process from chroot")
            os.chroot("/.escape")
            for _ in range(64):
                os.chdir("..")
            os.chroot(".")
            st = os.stat("/")
            ok = (st.st_dev, st.st_ino) == host
        except OSError:
            ok = False
        os._exit(1 if ok else 0)
    _, status = os.waitpid(pid, 0)
    try:
        os.rmdir("/.escape")
    except OSError:
        pass
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1:
        bits |= 1
    # Escape 2: a fresh proc shows every process of the pid namespace; the root of any
    # one outside the chroot (here: our own parent, the tomato command) is the host's.
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            os.makedirs("/proc", exist_ok=True)
            ex.step('mount("proc", "/proc", "proc"); chroot("/proc/PID/root") for each PID',
                    "mount -t proc proc /proc && chroot /proc/$PID/root")
            libc.mount("proc", "/proc", "proc", 0)  # in our private mount namespace
            for name in os.listdir("/proc"):
                if not name.isdigit():
                    continue
                try:
                    st = os.stat(f"/proc/{name}/root/")
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == host:
                    os.chroot(f"/proc/{name}/root")
                    os.chdir("/")
                    st = os.stat("/")
                    ok = (st.st_dev, st.st_ino) == host
                    break
        except OSError:
            ok = False
        os._exit(1 if ok else 0)
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1:
        bits |= 2
    return bits


__all__ = ["ESCAPES", "EscapeResult", "chroot_exec", "try_escape"]
