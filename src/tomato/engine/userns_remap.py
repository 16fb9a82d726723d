"""dockerd's ``--userns-remap``: the host's root engine runs every container in a user
namespace of its own whose root is an unprivileged range of the host's ids.

- ``default`` is the user ``dockremap`` (made with useradd and given a range when it
  is missing, as dockerd does); ``USER[:GROUP]`` (names or ids) takes USER's first
  /etc/subuid range and GROUP's (else USER's) first /etc/subgid range.
- Container root is the range's start; ids 0..count-1 map to start..start+count-1.
- The engine's storage is a root of its own, ``ROOT/UID.GID`` (dockerd's
  /var/lib/docker/UID.GID): images pulled there are unpacked with the shifted owners
  (images/unpack.py's ``UnpackOptions.shift``), so the layers need no chown later.
- ``--userns host`` opts a container out (no user namespace: its root is the host's).
- dockerd's refusals: --privileged, --network host and --pid host need --userns host.
"""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

from tomato.errors import InvalidArgument
from tomato.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.options import RunOptions

ENV = "TOMATO_USERNS_REMAP"
DEFAULT_USER = "dockremap"
SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"


@record(frozen=True)
class Remap:
    """The engine's mapping: container id N is host id start+N, for N < count."""
    user: str
    group: str
    uid_start: int
    uid_count: int
    gid_start: int
    gid_count: int

    @property
    def dirname(self) -> str:
        """The remapped engine's storage below the root: dockerd's UID.GID."""
        return f"{self.uid_start}.{self.gid_start}"

    def uid_maps(self) -> list[dict[str, int]]:
        return [{"containerID": 0, "hostID": self.uid_start, "size": self.uid_count}]

    def gid_maps(self) -> list[dict[str, int]]:
        return [{"containerID": 0, "hostID": self.gid_start, "size": self.gid_count}]

    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        """The host's owner of a file the container sees owned by uid:gid."""
        if not 0 <= uid < self.uid_count or not 0 <= gid < self.gid_count:
            raise InvalidArgument(f"container ID {uid}:{gid} cannot be mapped to a host ID "
                                  f"(--userns-remap {self.user} maps 0-{self.uid_count - 1})")
        return self.uid_start + uid, self.gid_start + gid


def _ranges(path: str, names: tuple[str, ...]) -> list[tuple[int, int]]:
    from tomato.engine.rootless import subid_ranges

    out: list[tuple[int, int]] = []
    for name in names:
        out += [r for r in subid_ranges(path, name, -1) if r[1] > 0]
    return out


def _user(spec: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(spec)) if spec.isdigit() else pwd.getpwnam(spec)
    except (KeyError, OverflowError):
        raise InvalidArgument(f"--userns-remap: no such user: {spec}") from None


def _group(spec: str) -> grp.struct_group:
    try:
        return grp.getgrgid(int(spec)) if spec.isdigit() else grp.getgrnam(spec)
    except (KeyError, OverflowError):
        raise InvalidArgument(f"--userns-remap: no such group: {spec}") from None


def parse(value: str) -> Remap:
    """``default`` or ``USER[:GROUP]`` read from /etc/passwd, /etc/group, /etc/subuid and
    /etc/subgid; one line naming what is missing otherwise."""
    if not value or value.strip() != value or value.count(":") > 1:
        raise InvalidArgument(f"--userns-remap: invalid value {value!r}: default or "
                              "USER[:GROUP]")
    if value == "default":
        ensure_default_user()
        value = DEFAULT_USER
    user_spec, _, group_spec = value.partition(":")
    if not user_spec or (":" in value and not group_spec):
        raise InvalidArgument(f"--userns-remap: invalid value {value!r}: default or "
                              "USER[:GROUP]")
    user = _user(user_spec)
    group = _group(group_spec) if group_spec else None
    uids = _ranges(SUBUID, (user.pw_name, str(user.pw_uid)))
    if not uids:
        raise InvalidArgument(f"no subordinate uid range for {user.pw_name} in {SUBUID}: "
                              f"run usermod --add-subuids 100000-165535 {user.pw_name}")
    gnames = (group.gr_name, str(group.gr_gid)) if group else (user.pw_name, str(user.pw_uid))
    gids = _ranges(SUBGID, gnames)
    if not gids:
        raise InvalidArgument(f"no subordinate gid range for {gnames[0]} in {SUBGID}: "
                              f"run usermod --add-subgids 100000-165535 {user.pw_name}")
    return Remap(user.pw_name, group.gr_name if group else user.pw_name,
                 uids[0][0], uids[0][1], gids[0][0], gids[0][1])


def ensure_default_user() -> None:
    """dockerd's ``default``: the system user dockremap, made when missing, and given
    a 65536-id range past every range in /etc/subuid and /etc/subgid when it has none."""
    import subprocess

    if not _user_exists(DEFAULT_USER):
        proc = subprocess.run(["useradd", "--system", "--shell", "/bin/false", DEFAULT_USER],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise InvalidArgument(f"--userns-remap default: cannot add user {DEFAULT_USER}: "
                                  f"{why}")
    if _ranges(SUBUID, (DEFAULT_USER,)) and _ranges(SUBGID, (DEFAULT_USER,)):
        return
    start = max([100000] + [s + n for path in (SUBUID, SUBGID) for s, n in _all_ranges(path)])
    ids = f"{start}-{start + 65535}"
    proc = subprocess.run(["usermod", "--add-subuids", ids, "--add-subgids", ids,
                           DEFAULT_USER], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise InvalidArgument(f"--userns-remap default: cannot give {DEFAULT_USER} "
                              f"subordinate ids: {why}")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _all_ranges(path: str) -> list[tuple[int, int]]:
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    out.append((int(parts[1]), int(parts[2])))
    except OSError:
        pass
    return out


def from_environment(flag: str | None) -> Remap | None:
    """The flag's value, else $TOMATO_USERNS_REMAP's, parsed (None: no remapping).  Only
    the host's root engine remaps: a user's engine is remapped already."""
    value = flag if flag is not None else os.environ.get(ENV, "")
    if not value:
        return None
    if os.geteuid() != 0:
        raise InvalidArgument("--userns-remap needs the host's root: an ordinary user's "
                              "engine already runs in the user's own user namespace")
    return parse(value)


def make_root(base: Path, remap: Remap) -> Path:
    """ROOT/UID.GID, made root's with 0711 on it and on ROOT (the container's root, the
    range's start, must pass through them to reach its bundle, as dockerd's 0711)."""
    root = base / remap.dirname
    root.mkdir(parents=True, exist_ok=True)
    for d in (base, root):
        if os.stat(d).st_mode & 0o111 != 0o111:
            os.chmod(d, (os.stat(d).st_mode & 0o7777) | 0o711)
    return root


def check(remap: Remap | None, opts: RunOptions) -> None:
    """dockerd's refusals for a container in the remapped user namespace."""
    if remap is None or opts.userns_mode == "host":
        return
    if opts.privileged:
        raise InvalidArgument("privileged mode is incompatible with user namespaces.  You "
                              "must run the container in the host namespace when running "
                              "privileged mode")
    if opts.network == "host":
        raise InvalidArgument("cannot share the host's network namespace when user "
                              "namespaces are enabled")
    if opts.pid_mode == "host":
        raise InvalidArgument("cannot share the host PID namespace when user namespaces "
                              "are enabled")


def apply_to_spec(spec: dict[str, Any], remap: Remap | None, opts: RunOptions) -> None:
    """A user namespace with the engine's mapping in config.json (not for --userns host)."""
    if remap is None or opts.userns_mode == "host":
        return
    linux = spec["linux"]
    linux["namespaces"].insert(0, {"type": "user"})
    linux["uidMappings"] = remap.uid_maps()
    linux["gidMappings"] = remap.gid_maps()


def give_to_root(remap: Remap | None, opts: RunOptions, *paths: Path | str) -> None:
    """Each path owned by the container's root (the range's start), so root inside may
    write it: the etc files, the upper directory, a volume just made."""
    if remap is None or opts.userns_mode == "host":
        return
    for p in paths:
        os.chown(p, remap.uid_start, remap.gid_start, follow_symlinks=False)


def shift_tree(path: str | Path, remap: Remap | None) -> None:
    """A layer written on the host (a build's COPY): every entry still owned by a
    container id (below the range) given its host owner; those already in the range
    (copied from a remapped image with their owners) are left as they are."""
    if remap is None:
        return

    def shift(entry: str) -> None:
        st = os.lstat(entry)
        uid, gid = st.st_uid, st.st_gid
        if uid < remap.uid_count and remap.uid_start >= remap.uid_count:
            uid += remap.uid_start
        if gid < remap.gid_count and remap.gid_start >= remap.gid_count:
            gid += remap.gid_start
        if (uid, gid) != (st.st_uid, st.st_gid):
            os.chown(entry, uid, gid, follow_symlinks=False)
            if not os.path.islink(entry):  # chown clears setuid/setgid: put them back
                os.chmod(entry, st.st_mode & 0o7777, follow_symlinks=False)

    shift(str(path))
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            shift(os.path.join(top, name))


def describe(remap: Remap | None) -> str:
    """`tomato info`'s line: dockerd shows ``userns`` in its security options."""
    return "" if remap is None else f"name=userns ({remap.user}:{remap.group} -> " \
        f"{remap.uid_start}:{remap.gid_start}, {remap.uid_count} ids)"
