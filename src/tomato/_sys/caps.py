"""Linux capabilities: names, parsing, and applying the five sets to this thread.

Importing this module reads no files and calls nothing; libc is resolved on
the first call that needs it.  ctypes itself is imported eagerly on purpose:
an import deferred until after pivot_root or setuid to a user who cannot read
the interpreter's stdlib would fail in the container init.  Capability calls
act on the *calling thread* only, which is why the runtime's container init
must be single-threaded.

Call order in the container init, just before execve (runc's order)::

    sets = CapSets.from_oci(spec.process.capabilities, warnings)  # parse early, in the parent
    filt = seccomp.compile(spec)    # before pivot_root (dlopen), or export_bpf in the parent
    ... namespaces, rootfs, pivot_root, mounts, masked/readonly paths ...
    lsm.apply_apparmor(profile); lsm.apply_selinux(label)    # still root; warnings if disabled
    if seccomp and not noNewPrivileges:
        filt.load()                 # without no_new_privs loading needs CAP_SYS_ADMIN: load
                                    # it while we still have it (runc does the same)
    drop_bounding(sets)             # while still uid 0 with CAP_SETPCAP effective
    set_keep_caps(True)             # keep the permitted set across the uid change
    setgroups(...); setgid(gid); setuid(uid)      # (runtime's libc)
    set_keep_caps(False)
    warnings += apply(sets)         # (bounding again, a no-op) -> capset -> ambient
    if noNewPrivileges:
        set_no_new_privs()
    if seccomp and noNewPrivileges:
        filt.load()                 # as late as possible: only execve after it
    execve(...)

The bounding set is dropped before the uid change because PR_CAPBSET_DROP
needs CAP_SETPCAP in the *effective* set, which setuid from root clears
even with keepcaps (keepcaps keeps only the permitted set; capset then
restores effective from it).  The ambient set comes last because the kernel
only lets a capability be raised there when it is already in both the
permitted and inheritable sets.  For a process that stays root, ``apply``
alone is enough: it drops the bounding set itself.
"""

from __future__ import annotations

import ctypes
import errno
import os

from tomato.errors import InvalidArgument, PermissionDenied
from tomato.records import record

TYPE_CHECKING = False  # importing typing costs ~2 ms on the start path
if TYPE_CHECKING:  # collections and functools cost the runtime's start ~1.5 ms
    from collections.abc import Iterable, Mapping
    from typing import Any

#: Every capability this code knows, by number (linux/capability.h).
CAP_NAMES: tuple[str, ...] = (
    "CAP_CHOWN",               # 0
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",                # 5
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",    # 10
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",           # 15
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",           # 20
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",            # 25
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",       # 30
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",          # 35
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",  # 40
)
CAP_NUMBERS: Mapping[str, int] = {name: i for i, name in enumerate(CAP_NAMES)}

_CAP_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"

# prctl(2) options
PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def last_cap(path: str = _CAP_LAST_CAP_FILE) -> int:
    """The highest capability number the running kernel knows."""
    try:
        with open(path, "rb") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        # Kernels before 3.2 have no such file; they know caps up to 36 at least.
        return CAP_NUMBERS["CAP_BLOCK_SUSPEND"]


def cap_name(number: int) -> str:
    return CAP_NAMES[number] if 0 <= number < len(CAP_NAMES) else f"CAP_{number}"


def parse(names: Iterable[str] | None, *, kernel_last_cap: int | None = None,
          warnings: list[str] | None = None) -> frozenset[int]:
    """Capability names to numbers.

    A name nobody knows raises InvalidArgument naming it.  A name Tomato knows
    but the running kernel does not (above cap_last_cap) is left out with a
    warning appended to ``warnings``, as runc does, so a spec written for a
    newer kernel still runs.  Names are case-insensitive; "CAP_" is optional.
    """
    if not names:
        return frozenset()
    if isinstance(names, str):
        raise InvalidArgument(f"capabilities must be a list of names, not the string {names!r}")
    top = last_cap() if kernel_last_cap is None else kernel_last_cap
    result: set[int] = set()
    for raw in names:
        if not isinstance(raw, str):
            raise InvalidArgument(f"capability name must be a string, not {raw!r}")
        name = raw.strip().upper()
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        number = CAP_NUMBERS.get(name)
        if number is None:
            raise InvalidArgument(f"unknown capability {raw!r}")
        if number > top:
            if warnings is not None:
                warnings.append(f"capability {name} is not supported by the running kernel; "
                                "ignored")
            continue
        result.add(number)
    return frozenset(result)


def names(numbers: Iterable[int]) -> list[str]:
    """Numbers back to names, sorted by number."""
    return [cap_name(n) for n in sorted(numbers)]


def to_mask(numbers: Iterable[int]) -> int:
    mask = 0
    for n in numbers:
        mask |= 1 << n
    return mask


def from_mask(mask: int) -> frozenset[int]:
    return frozenset(i for i in range(64) if mask >> i & 1)


@record
class CapSets:
    """The five capability sets of a process, as numbers."""

    bounding: frozenset[int] = frozenset()
    effective: frozenset[int] = frozenset()
    permitted: frozenset[int] = frozenset()
    inheritable: frozenset[int] = frozenset()
    ambient: frozenset[int] = frozenset()

    @classmethod
    def from_oci(cls, caps: Mapping[str, Any] | None, warnings: list[str] | None = None,
                 *, kernel_last_cap: int | None = None) -> CapSets:
        """Parse OCI ``process.capabilities``; a missing set or None means empty."""
        if caps is None:
            return cls()
        if not isinstance(caps, dict):  # JSON's objects
            raise InvalidArgument("process.capabilities must be an object")
        known = ("bounding", "effective", "permitted", "inheritable", "ambient")
        for key in caps:
            if key not in known:
                raise InvalidArgument(f"unknown capability set {key!r} in process.capabilities")
        top = last_cap() if kernel_last_cap is None else kernel_last_cap
        return cls(**{k: parse(caps.get(k), kernel_last_cap=top, warnings=warnings)
                      for k in known})

    def to_oci(self) -> dict[str, list[str]]:
        return {k: names(getattr(self, k))
                for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}


# ---- kernel calls ---------------------------------------------------------------------------


_MADE: dict[str, Any] = {}  # what _libc and _cap_structs made, once (functools.cache)


def _libc() -> Any:
    if "libc" not in _MADE:
        _MADE["libc"] = ctypes.CDLL(None, use_errno=True)
    return _MADE["libc"]


def _prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    libc = _libc()
    ul = ctypes.c_ulong
    rc = libc.prctl(ctypes.c_int(option), ul(arg2), ul(arg3), ul(arg4), ul(arg5))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return int(rc)


def _cap_structs() -> tuple[Any, Any]:
    if "structs" in _MADE:
        return _MADE["structs"]  # type: ignore[no-any-return]

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    _MADE["structs"] = (Header, Data)
    return Header, Data


def capget() -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
    """(effective, permitted, inheritable) of the calling thread."""
    header_t, data_t = _cap_structs()
    header = header_t(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (data_t * 2)()
    if _libc().capget(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capget: {os.strerror(err)}")

    def join(field: str) -> frozenset[int]:
        return from_mask(getattr(data[0], field) | getattr(data[1], field) << 32)

    return join("effective"), join("permitted"), join("inheritable")


def capset(effective: Iterable[int], permitted: Iterable[int],
           inheritable: Iterable[int]) -> None:
    """capset(2), version 3 (two 32-bit words per set), on the calling thread."""
    header_t, data_t = _cap_structs()
    header = header_t(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (data_t * 2)()
    masks = [to_mask(effective), to_mask(permitted), to_mask(inheritable)]
    for word in (0, 1):
        e, p, i = (m >> (32 * word) & 0xFFFFFFFF for m in masks)
        data[word] = data_t(e, p, i)
    if _libc().capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def bounding_set(kernel_last_cap: int | None = None) -> frozenset[int]:
    """The calling thread's bounding set."""
    top = last_cap() if kernel_last_cap is None else kernel_last_cap
    return frozenset(i for i in range(top + 1) if _prctl(PR_CAPBSET_READ, i) == 1)


def ambient_set(kernel_last_cap: int | None = None) -> frozenset[int]:
    top = last_cap() if kernel_last_cap is None else kernel_last_cap
    return frozenset(i for i in range(top + 1)
                     if _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, i) == 1)


def apply(sets: CapSets, *, kernel_last_cap: int | None = None) -> list[str]:
    """Make the calling thread's capabilities exactly ``sets``; return warnings.

    Order (runc's): drop from the bounding set every capability not in
    ``sets.bounding`` (see ``drop_bounding``); capset(effective, permitted,
    inheritable); clear the ambient set and raise each ambient capability.  An ambient capability
    that is not in both permitted and inheritable cannot be raised (kernel
    rule): it is skipped with a warning rather than failing the container.
    Raises PermissionDenied when the caller lacks a capability it was asked
    to keep (e.g. CAP_SYS_RESOURCE where the host itself withholds it).
    """
    top = last_cap() if kernel_last_cap is None else kernel_last_cap
    warnings: list[str] = []
    if not sets.effective <= sets.permitted:
        # The kernel would only say EPERM; name what is wrong before changing anything.
        raise InvalidArgument("effective capabilities not in the permitted set: "
                              + ", ".join(names(sets.effective - sets.permitted)))
    drop_bounding(sets, kernel_last_cap=top)
    try:
        capset(sets.effective, sets.permitted, sets.inheritable)
    except OSError as err:
        _eff, have, _inh = capget()
        missing = names((sets.permitted | sets.effective) - have)
        detail = f" (not held: {', '.join(missing)})" if missing else ""
        raise PermissionDenied(f"cannot set capabilities{detail}: "
                               f"{os.strerror(err.errno or 0)}") from err
    try:
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as err:
        if err.errno != errno.EINVAL:  # EINVAL: kernel < 4.3 has no ambient set
            raise PermissionDenied(f"cannot clear the ambient capabilities: {err}") from err
        if sets.ambient:
            warnings.append("ambient capabilities are not supported by the running kernel; "
                            "ignored")
        return warnings
    for cap in sorted(sets.ambient):
        if cap not in sets.permitted or cap not in sets.inheritable:
            warnings.append(f"ambient capability {cap_name(cap)} is not in both the permitted "
                            "and inheritable sets; not raised")
            continue
        try:
            _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
        except OSError as err:
            raise PermissionDenied(f"cannot raise ambient capability {cap_name(cap)}: "
                                   f"{os.strerror(err.errno or 0)}") from err
    return warnings


def drop_bounding(sets: CapSets, *, kernel_last_cap: int | None = None) -> None:
    """Drop from the bounding set every capability not in ``sets.bounding``.

    Needs CAP_SETPCAP in the effective set.  Without it (after a setuid from
    root) nothing can be dropped, so this only checks that an earlier call
    already did the work, and raises PermissionDenied if not.
    """
    top = last_cap() if kernel_last_cap is None else kernel_last_cap
    effective, _perm, _inh = capget()
    if CAP_NUMBERS["CAP_SETPCAP"] not in effective:
        extra = bounding_set(top) - sets.bounding
        if extra:
            raise PermissionDenied("cannot drop " + ", ".join(names(extra)) + " from the "
                                   "bounding set without CAP_SETPCAP; drop it before setuid")
        return
    for cap in range(top + 1):
        if cap in sets.bounding:
            continue
        try:
            _prctl(PR_CAPBSET_DROP, cap)
        except OSError as err:
            if err.errno == errno.EINVAL:  # not known to this kernel: nothing to drop
                continue
            raise PermissionDenied(f"cannot drop {cap_name(cap)} from the bounding set: "
                                   f"{os.strerror(err.errno or 0)}") from err


def set_keep_caps(keep: bool = True) -> None:
    """prctl(PR_SET_KEEPCAPS): keep the permitted set across setuid from root.

    The runtime sets it before setgroups/setgid/setuid to a non-root user and
    clears it again right after; ``apply`` then sets the capability sets.
    """
    _prctl(PR_SET_KEEPCAPS, 1 if keep else 0)


def keep_caps_across_setuid() -> None:
    """Shorthand for ``set_keep_caps(True)``."""
    set_keep_caps(True)


def get_keep_caps() -> bool:
    return _prctl(PR_GET_KEEPCAPS) == 1


def set_no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS, 1): execve can never grant privileges again."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def get_no_new_privs() -> bool:
    return _prctl(PR_GET_NO_NEW_PRIVS) == 1


__all__ = [
    "CAP_NAMES",
    "CAP_NUMBERS",
    "CapSets",
    "ambient_set",
    "apply",
    "bounding_set",
    "cap_name",
    "drop_bounding",
    "capget",
    "capset",
    "from_mask",
    "get_keep_caps",
    "get_no_new_privs",
    "keep_caps_across_setuid",
    "last_cap",
    "names",
    "parse",
    "set_keep_caps",
    "set_no_new_privs",
    "to_mask",
]
