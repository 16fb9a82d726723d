"""Bind sources opened by the runtime, for an init that enters a user namespace.

In a new user namespace the init's root is an unprivileged host uid: a bind source
that uid cannot reach (a 0700 directory of another user, a path under one) could
not be mounted, though the runtime, root on the host, asked for it.  As runc does
(nsexec's send_mountsources), the runtime joins the init's new mount namespace right
after the clone, opens every bind source O_PATH there (a mount can only be bound
from the namespace it is in), returns to its own, and hands the fds to the init
over a socketpair (SCM_RIGHTS); the init binds /proc/self/fd/N.

Only when it is needed: a new user and a new mount namespace, a root runtime, and
bind mounts (runc's shouldSendMountSources); the socket module is imported then.
"""

from __future__ import annotations

import os

from tomato._sys import libc as c
from tomato.oci.spec import Spec
from tomato.runtime.mountopts import parse_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def bind_indexes(spec: Spec) -> list[int]:
    """Which mounts' sources the runtime must open for the init ([] for none)."""
    user, mnt = spec.linux.namespace("user"), spec.linux.namespace("mount")
    if user is None or mnt is None or mnt.path or os.geteuid() != 0:
        return []
    return [i for i, m in enumerate(spec.mounts)
            if m.type == "bind" or parse_options(m.options).is_bind]


def pair() -> tuple[Any, Any]:
    """(runtime's end, init's end)."""
    import socket

    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def send(sock: Any, pid: int, spec: Spec, bundle: str, indexes: list[int]) -> None:
    """Open each source in the mount namespace of ``pid`` and send the fds.

    Must run single-threaded (setns of a mount namespace refuses a process sharing
    its fs_struct with threads): before the cgroup placement thread starts.  A source
    that cannot be opened is left out: the init then names it as it always has.
    """
    import socket

    from tomato.runtime.rootfs import bind_source

    own = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # setns resets our cwd
    theirs = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    opened: list[tuple[int, int]] = []
    try:
        c.setns(theirs, c.CLONE_NEWNS, f"/proc/{pid}/ns/mnt")
        try:
            for index in indexes:
                try:
                    opened.append((index, os.open(bind_source(bundle, spec.mounts[index]),
                                                  os.O_PATH | os.O_CLOEXEC)))
                except OSError:
                    continue
        finally:
            c.setns(own, c.CLONE_NEWNS, "/proc/self/ns/mnt")
            os.fchdir(here)
        names = ",".join(str(i) for i, _ in opened).encode() or b"-"
        socket.send_fds(sock, [names], [fd for _, fd in opened])
    finally:
        for _, fd in opened:
            os.close(fd)
        for fd in (own, here, theirs):
            os.close(fd)


def receive(fd: int) -> dict[int, int]:
    """In the init: {mount index: O_PATH fd of its source}."""
    import socket

    sock = socket.socket(fileno=fd)
    try:
        names, fds, _flags, _addr = socket.recv_fds(sock, 65536, 1024)
    finally:
        sock.close()
    indexes = [int(i) for i in names.decode().split(",")] if names and names != b"-" else []
    return dict(zip(indexes, fds, strict=False))
