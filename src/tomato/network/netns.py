"""Named network namespaces: a netns bind-mounted on a file, as `ip netns` does, but
under the engine's own run directory (``ROOT/netns/<id>``), never /run/netns.

``create`` briefly moves the calling thread into a fresh netns to bind-mount
it and to open a netlink socket there, then moves back: the socket keeps
acting on the new netns, so the container side (lo, eth0, routes) is
configured without forking a helper process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from tomato._sys import libc
from tomato.network.netlink import Netlink

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.explain.trace import Explainer


def is_mounted(path: str) -> bool:
    try:
        return os.path.ismount(path)
    except OSError:
        return False


def create(path: str, explain: Explainer | None = None) -> Netlink:
    """Make a netns pinned at ``path``; returns a netlink socket that acts inside it
    (telling ``explain`` of its steps).

    On failure nothing is left: the file is removed and the thread is back home.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    inside: Netlink | None = None
    try:
        libc.unshare(libc.CLONE_NEWNET)
        try:
            _no_ipv6()
            libc.mount("/proc/thread-self/ns/net", path, None, libc.MS_BIND)
            inside = Netlink(explain)
        finally:
            libc.setns(home, libc.CLONE_NEWNET, "/proc/thread-self/ns/net")
    except BaseException:
        if inside is not None:
            inside.close()
        remove(path)
        raise
    finally:
        os.close(home)
    return inside


def _no_ipv6() -> None:
    """IPv6 off on the interfaces the new netns will get (eth0...), as Docker's default
    for IPv4 networks: no link-local addresses, duplicate-address detection or router
    solicitations; lo, made already, keeps ::1.  /proc/sys/net answers for the netns
    of the thread that opens it: this one, now."""
    try:
        with open("/proc/sys/net/ipv6/conf/default/disable_ipv6", "w") as f:
            f.write("1")
    except OSError:
        pass  # a kernel without IPv6


def write_sysctl(path: str, key: str, value: str) -> None:
    """Write ``/proc/sys/<key>`` of the netns pinned at ``path`` (the calling thread goes
    there for the open, and back): IPv6 on one interface of a dual-stack container."""
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc.setns(target, libc.CLONE_NEWNET, path)
        try:
            fd = os.open(f"/proc/sys/{key}", os.O_WRONLY | os.O_CLOEXEC)
        finally:
            libc.setns(home, libc.CLONE_NEWNET, "/proc/thread-self/ns/net")
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    finally:
        os.close(target)
        os.close(home)


@contextmanager
def entered(path: str, explain: Explainer | None = None) -> Iterator[Netlink]:
    """A netlink socket acting in the netns pinned at ``path`` (telling ``explain``)."""
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc.setns(target, libc.CLONE_NEWNET, path)
        try:
            nl = Netlink(explain)
        finally:
            libc.setns(home, libc.CLONE_NEWNET, "/proc/thread-self/ns/net")
    finally:
        os.close(target)
        os.close(home)
    try:
        yield nl
    finally:
        nl.close()


def open_fd(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def remove(path: str) -> None:
    """Unpin and delete; the kernel frees the netns (and its veth ends) once unused."""
    for _ in range(4):  # bounded: a path can be mounted over more than once
        if not is_mounted(path):
            break
        try:
            libc.umount2(path, libc.MNT_DETACH)
        except OSError:
            break
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
