"""Rootless containers: mapping a user namespace without being root.

An unprivileged process may write a child's uid_map itself only for the
single line "C <its own uid> 1" (and gid_map only after writing "deny" to
setgroups).  Anything larger goes through the setuid helpers newuidmap and
newgidmap (Debian's uidmap package), which check /etc/subuid and /etc/subgid.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tomato.errors import InvalidArgument, PermissionDenied, Unavailable
from tomato.oci.spec import IdMapping


def default_root() -> str:
    """runc's rootless default: $XDG_RUNTIME_DIR/tomato-runtime."""
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/tomato-runtime-{os.getuid()}"
    return os.path.join(base, "tomato-runtime")


def _own_only(maps: tuple[IdMapping, ...], own: int) -> bool:
    return len(maps) == 1 and maps[0].host_id == own and maps[0].size == 1


def subid_ranges(path: str, user: str, uid: int) -> list[tuple[int, int]]:
    """(start, count) ranges /etc/subuid (or subgid) grants this user."""
    ranges = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in (user, str(uid)):
                    ranges.append((int(parts[1]), int(parts[2])))
    except (OSError, ValueError):
        pass
    return ranges


def check_allowed(maps: tuple[IdMapping, ...], own: int, path: str, user: str) -> None:
    """Every host id must be our own or inside a range of /etc/sub[ug]id."""
    ranges = subid_ranges(path, user, own)
    for m in maps:
        if m.host_id == own and m.size == 1:
            continue
        if not any(start <= m.host_id and m.host_id + m.size <= start + count
                   for start, count in ranges):
            raise PermissionDenied(f"mapping {m.container_id} {m.host_id} {m.size} exceeds "
                                   f"what {path} grants {user}")


def _write(path: str, data: str) -> None:
    with open(path, "w") as f:
        f.write(data)


def write_mappings(pid: int, uid_maps: tuple[IdMapping, ...],
                   gid_maps: tuple[IdMapping, ...]) -> None:
    uid, gid = os.geteuid(), os.getegid()
    if _own_only(uid_maps, uid) and _own_only(gid_maps, gid):
        _write(f"/proc/{pid}/setgroups", "deny")
        _write(f"/proc/{pid}/uid_map", f"{uid_maps[0].container_id} {uid} 1\n")
        _write(f"/proc/{pid}/gid_map", f"{gid_maps[0].container_id} {gid} 1\n")
        return
    import pwd

    user = pwd.getpwuid(uid).pw_name
    check_allowed(uid_maps, uid, "/etc/subuid", user)
    check_allowed(gid_maps, gid, "/etc/subgid", user)
    for tool, maps in (("newuidmap", uid_maps), ("newgidmap", gid_maps)):
        binary = shutil.which(tool)
        if binary is None:
            raise Unavailable(f"{tool} is needed for these mappings (apt-get install uidmap)")
        args = [binary, str(pid)]
        for m in maps:
            args += [str(m.container_id), str(m.host_id), str(m.size)]
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            raise InvalidArgument(f"{tool} failed: {proc.stderr.strip() or proc.returncode}")
