"""Which user namespace this process is in, as far as the engine cares: the
initial one (root is root) or another (a rootless engine's, where "root" owns
nothing on the host: cgroups, devices and host mounts are out of reach).

Read from /proc/self/uid_map, one small read, so the runtime's start path can ask."""

from __future__ import annotations

import os

#: the initial user namespace maps every id to itself
_IDENTITY = ("0", "0", "4294967295")


def in_initial() -> bool:
    """True in the host's user namespace (or where /proc cannot tell: the old kernels'
    and a missing /proc's answer, which the callers' own checks refine)."""
    try:
        with open("/proc/self/uid_map", "rb") as f:
            lines = f.read().split(b"\n")
    except OSError:
        return True
    words = tuple(lines[0].decode().split()) if lines else ()
    return words == _IDENTITY and not any(line.strip() for line in lines[1:])


def rootless() -> bool:
    """Not the host's root: an unprivileged user, or "root" of a user namespace
    (the rootless engine after joining its keeper's namespace)."""
    return os.geteuid() != 0 or not in_initial()
