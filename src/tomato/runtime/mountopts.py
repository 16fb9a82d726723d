"""OCI mount options → mount(2) flags, propagation flags and filesystem data."""

from __future__ import annotations

from tomato._sys import libc as c
from tomato.records import record

# option → (clear?, flag).  "clear" options switch a flag off (rw, suid, ...).
_FLAGS = {
    "ro": (False, c.MS_RDONLY), "rw": (True, c.MS_RDONLY),
    "nosuid": (False, c.MS_NOSUID), "suid": (True, c.MS_NOSUID),
    "nodev": (False, c.MS_NODEV), "dev": (True, c.MS_NODEV),
    "noexec": (False, c.MS_NOEXEC), "exec": (True, c.MS_NOEXEC),
    "sync": (False, c.MS_SYNCHRONOUS), "async": (True, c.MS_SYNCHRONOUS),
    "dirsync": (False, c.MS_DIRSYNC),
    "mand": (False, c.MS_MANDLOCK), "nomand": (True, c.MS_MANDLOCK),
    "noatime": (False, c.MS_NOATIME), "atime": (True, c.MS_NOATIME),
    "nodiratime": (False, c.MS_NODIRATIME), "diratime": (True, c.MS_NODIRATIME),
    "relatime": (False, c.MS_RELATIME), "norelatime": (True, c.MS_RELATIME),
    "strictatime": (False, c.MS_STRICTATIME), "nostrictatime": (True, c.MS_STRICTATIME),
    "lazytime": (False, c.MS_LAZYTIME), "nolazytime": (True, c.MS_LAZYTIME),
    "nosymfollow": (False, c.MS_NOSYMFOLLOW), "symfollow": (True, c.MS_NOSYMFOLLOW),
    "remount": (False, c.MS_REMOUNT),
    "bind": (False, c.MS_BIND), "rbind": (False, c.MS_BIND | c.MS_REC),
    "silent": (False, c.MS_SILENT), "loud": (True, c.MS_SILENT),
}

_PROPAGATION = {
    "private": c.MS_PRIVATE, "rprivate": c.MS_PRIVATE | c.MS_REC,
    "shared": c.MS_SHARED, "rshared": c.MS_SHARED | c.MS_REC,
    "slave": c.MS_SLAVE, "rslave": c.MS_SLAVE | c.MS_REC,
    "unbindable": c.MS_UNBINDABLE, "runbindable": c.MS_UNBINDABLE | c.MS_REC,
}

# Accepted without a mount(2) flag: "rro" is applied after the mount (see
# MountOptions.recursive_ro; parse_options handles it first); the others are the
# engine's business (idmapped mounts) or meaningless to the kernel call.
# features.py lists these as supported.
_IGNORED = {"defaults", "tmpcopyup", "idmap", "ridmap", "rro", "rrw", "private-only"}


@record
class MountOptions:
    flags: int
    propagation: tuple[int, ...]
    data: str
    recursive_ro: bool = False  # "rro": the mount and every mount below it read-only

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & c.MS_BIND)


def parse_options(options: tuple[str, ...] | list[str]) -> MountOptions:
    flags = 0
    propagation = []
    data = []
    recursive_ro = False
    for opt in options:
        if opt == "rro":
            recursive_ro = True
        elif opt in _FLAGS:
            clear, flag = _FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in _PROPAGATION:
            propagation.append(_PROPAGATION[opt])
        elif opt in _IGNORED:
            continue
        else:
            data.append(opt)
    return MountOptions(flags, tuple(propagation), ",".join(data), recursive_ro)


def propagation_flag(name: str) -> int:
    return _PROPAGATION[name]
