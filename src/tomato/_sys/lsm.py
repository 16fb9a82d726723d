"""AppArmor and SELinux: detect them, and label the next execve of this thread.

Both work the same way: the container init writes the profile or label to a
/proc attribute of its own thread just before execve, and the kernel
switches on exec.  Where the host has no such LSM enabled, the apply
functions return a warning for the runtime to print instead of failing, so a
config.json written for an AppArmor or SELinux host still runs here.

Call them in the container init as runc does: after the rootfs is ready and
before the user change, capabilities and the seccomp filter (a filter or a
dropped capability could deny the write).  They touch only
/proc/thread-self, which after pivot_root must be the container's /proc.
"""

from __future__ import annotations

import os

from tomato.errors import InvalidArgument, PermissionDenied

_SYS = "/sys"
_PROC = "/proc"


def apparmor_enabled(sys_dir: str = _SYS) -> bool:
    """As runc: securityfs shows apparmor and the module parameter says Y."""
    if not os.path.isdir(os.path.join(sys_dir, "kernel", "security", "apparmor")):
        return False
    try:
        with open(os.path.join(sys_dir, "module", "apparmor", "parameters", "enabled"),
                  "rb") as f:
            return f.read(1) == b"Y"
    except OSError:
        return False


def selinux_enabled(sys_dir: str = _SYS) -> bool:
    """selinuxfs is mounted (at /sys/fs/selinux) and has an enforce file."""
    return os.path.isfile(os.path.join(sys_dir, "fs", "selinux", "enforce"))


def apparmor_exec_command(profile: str) -> str:
    """The text written to attr/apparmor/exec: ``exec <profile>``."""
    if not profile or profile != profile.strip() or any(c in profile for c in "\n\0"):
        raise InvalidArgument(f"invalid apparmor profile name {profile!r}")
    return f"exec {profile}"


def validate_selinux_label(label: str) -> str:
    """user:role:type[:level] (the level may itself hold colons, e.g. s0:c1,c2)."""
    parts = label.split(":")
    if len(parts) < 3 or not all(parts[:3]) or any(c in label for c in "\n\0 "):
        raise InvalidArgument(f"invalid selinux label {label!r} (want user:role:type[:level])")
    if len(parts) > 3 and not all(parts[3:]):
        raise InvalidArgument(f"invalid selinux label {label!r}: empty level")
    return label


def selinux_mount_option(mount_label: str) -> str:
    """The mount option that gives a mount ``linux.mountLabel`` (context="...")."""
    return f'context="{validate_selinux_label(mount_label)}"'


def _write_attr(paths: list[str], data: str, what: str) -> None:
    last: OSError | None = None
    for path in paths:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError as err:
            last = err
            continue
        except OSError as err:
            raise PermissionDenied(f"cannot open {path} to set the {what}: "
                                   f"{os.strerror(err.errno or 0)}") from err
        try:
            os.write(fd, data.encode())
        except OSError as err:
            raise PermissionDenied(f"cannot set the {what} {data!r} through {path}: "
                                   f"{os.strerror(err.errno or 0)}") from err
        finally:
            os.close(fd)
        return
    raise PermissionDenied(f"cannot set the {what}: no {paths[0]}") from last


def apply_apparmor(profile: str | None, *, sys_dir: str = _SYS,
                   proc_dir: str = _PROC) -> str | None:
    """Make the next execve of this thread run under AppArmor ``profile``.

    Returns None when done (or when no profile was asked for), or a warning
    when the host has AppArmor disabled.
    """
    if not profile:
        return None
    command = apparmor_exec_command(profile)
    if not apparmor_enabled(sys_dir):
        return f"apparmor is not enabled on this host; profile {profile!r} not applied"
    base = os.path.join(proc_dir, "thread-self", "attr")
    # Kernels >= 5.8 have a per-LSM directory; older ones only the shared file.
    _write_attr([os.path.join(base, "apparmor", "exec"), os.path.join(base, "exec")],
                command, "apparmor profile")
    return None


def apply_selinux(label: str | None, *, sys_dir: str = _SYS,
                  proc_dir: str = _PROC) -> str | None:
    """Make the next execve of this thread run with SELinux ``label`` (setexeccon).

    Returns None when done (or no label was asked for), or a warning when the
    host has SELinux disabled.
    """
    if not label:
        return None
    validate_selinux_label(label)
    if not selinux_enabled(sys_dir):
        return f"selinux is not enabled on this host; label {label!r} not applied"
    _write_attr([os.path.join(proc_dir, "thread-self", "attr", "exec")], label,
                "selinux label")
    return None


__all__ = [
    "apparmor_enabled",
    "apparmor_exec_command",
    "apply_apparmor",
    "apply_selinux",
    "selinux_enabled",
    "selinux_mount_option",
    "validate_selinux_label",
]
