"""Building the container's root filesystem inside its new mount namespace.

Runs in the container's init process, in this order (as runc does):
    1. make "/" a slave (or the spec's rootfsPropagation) so nothing leaks to the host,
       and the mount holding the rootfs private (slave if the spec asked slave)
    2. bind the rootfs onto itself, so it is a mount point pivot_root accepts
    3. every spec mount, in order, each destination resolved inside the rootfs
       and mounted through an O_PATH fd checked to still be inside it; tmpfs and
       /dev mounts asked read-only are mounted read-write until step 6
    4. /dev: default device nodes, /dev/fd, stdio links, ptmx; then linux.devices
    5. pivot_root (or MS_MOVE + chroot under --no-pivot, after hiding the host's
       proc and sysfs mounts; plain chroot without a mount namespace of its own)
    6. after the switch: rootfsPropagation on the new "/", sysctls, masked and
       read-only paths, read-only tmpfs and /dev, read-only root

Without a mount namespace (the spec lets it be inherited) steps 1 and 5's pivot
would change the host's mounts and are skipped; everything else happens below the
rootfs bind of step 2, which `delete` detaches (``hostmounts``).
"""

from __future__ import annotations

import errno
import os
import stat

from tomato._sys import libc as c
from tomato._sys.paths import (
    create_file_in_root,
    is_within,
    mkdir_all_at,
    open_root,
    resolve_in_root,
)
from tomato.errors import InvalidArgument, NotFound
from tomato.oci.spec import Mount, Spec
from tomato.runtime.devices import make_default_devices, make_device
from tomato.runtime.mountopts import parse_options, propagation_flag

TYPE_CHECKING = False  # importing typing costs ~2 ms on the start path
if TYPE_CHECKING:
    from typing import Any

    from tomato.explain.trace import Explainer

# statvfs f_flag bits that match MS_* and may be locked on a mount we bind.
_LOCKABLE = c.MS_RDONLY | c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC | c.MS_NOATIME | \
    c.MS_NODIRATIME | c.MS_RELATIME


#: Files inside /proc a spec may mount over (runc's list: what lxcfs provides).
_PROC_MOUNTABLE = frozenset({"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
                             "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
                             "/proc/net/dev", "/proc/sys/kernel/ns_last_pid"})


def _mounted_fresh(rootfs: str, dest: str, mnt: Mount, flags: int, data: str | None) -> bool:
    """A sysfs of our own mounted at dest; False when the kernel refused it (EPERM: the
    network namespace is not our user namespace's), for the caller's bind of /sys."""
    try:
        with _Pinned(rootfs, dest, mnt.destination) as target:
            c.mount(mnt.source or mnt.type, target, mnt.type, flags, data or None)
    except OSError as err:
        if err.errno != errno.EPERM:
            raise
        return False
    return True


def mount_destination(rootfs: str, mnt: Mount, proc_source: bool = False) -> str:
    """The host path to mount on; refuses destinations that climb out of the rootfs.

    ``proc_source``: the mount binds a procfs (the host's /proc for a container in the
    host's pid namespace), which may go on /proc as runc's checkProcMount allows."""
    try:
        host = resolve_in_root(rootfs, mnt.destination, strict=True)
    except OSError as err:
        raise InvalidArgument(
            f"mount destination {mnt.destination} escapes the rootfs through a symlink"
        ) from err
    if mnt.type in ("proc", "sysfs"):
        lexical = os.path.normpath(rootfs + "/" + mnt.destination)
        if os.path.islink(lexical):
            raise InvalidArgument(f"mount destination {mnt.destination} is a symlink; "
                                  f"{mnt.type} must be mounted on a real directory")
    rel = os.path.relpath(host, rootfs)
    if rel == "proc" and mnt.type != "proc" and not proc_source or (
            rel.startswith("proc/") and "/" + rel not in _PROC_MOUNTABLE):
        # Over /proc only procfs, inside it only lxcfs-style files (runc's
        # checkProcMount): a volume an image's symlink steers onto, say,
        # /proc/self/attr would disarm the LSM (CVE-2019-16884 class).
        raise InvalidArgument(f"mount destination {mnt.destination} is inside /proc "
                              f"(resolves to /{rel})")
    if os.path.normpath(host) == os.path.normpath(rootfs):
        # e.g. an image's /data -> / : a volume would cover the whole container
        raise InvalidArgument(f"mount destination {mnt.destination} resolves to the "
                              "container's root")
    return host


def _make_dirs(rootfs: str, dest: str) -> None:
    """os.makedirs of a mount destination, but through fds inside the rootfs
    (``mkdir_all_at``): by name, a directory of a shared volume swapped for a link to
    the host meanwhile made them on the host (issue 13/14)."""
    root_fd = open_root(rootfs)
    try:
        os.close(mkdir_all_at(root_fd, os.path.relpath(dest, rootfs)))
    finally:
        os.close(root_fd)


class _Pinned:
    """A mount destination opened O_PATH and checked to be inside the rootfs.

    Mounting on ``/proc/self/fd/N`` mounts on the very object we checked: a
    symlink swapped into the path after resolution (by another container
    sharing a volume) cannot redirect the mount onto the host (CVE-2021-30465).
    """

    def __init__(self, rootfs: str, host_path: str, destination: str) -> None:
        self.fd = os.open(host_path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            real = os.readlink(f"/proc/self/fd/{self.fd}")
        except OSError:
            real = ""
        if not is_within(rootfs, real):
            os.close(self.fd)
            raise InvalidArgument(f"mount destination {destination} escapes the rootfs "
                                  "(it changed while being resolved)")
        self.path = f"/proc/self/fd/{self.fd}"

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)


class _PinnedBelow(_Pinned):
    """The directory ``name`` right below ``dir_fd`` (a tmpfs of ours), opened O_NOFOLLOW."""

    def __init__(self, dir_fd: int, name: str) -> None:  # (not super's: no path check)
        self.fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC,
                          dir_fd=dir_fd)
        self.path = f"/proc/self/fd/{self.fd}"


def _remount(target: str, flags: int) -> None:
    """Bind-remount with flags, keeping flags the kernel locked on the source."""
    base = c.MS_BIND | c.MS_REMOUNT
    try:
        c.mount(None, target, None, base | flags)
    except OSError as err:
        if err.errno != errno.EPERM:
            raise
        locked = os.statvfs(target).f_flag & _LOCKABLE
        c.mount(None, target, None, base | flags | locked)


def bind_source(bundle: str, mnt: Mount) -> str:
    """A bind mount's source: a relative path is the bundle's (runc's specconv)."""
    return mnt.source if mnt.source.startswith("/") else os.path.join(bundle, mnt.source)


def _bind_mount(rootfs: str, bundle: str, mnt: Mount, flags: int,
                source_fd: int | None = None) -> str:
    # source_fd: the source opened by the runtime before we entered a user namespace
    # that may not reach it (runc's mount source fds); bound through /proc/self/fd.
    source = bind_source(bundle, mnt) if source_fd is None else f"/proc/self/fd/{source_fd}"
    if not os.path.exists(source):
        raise NotFound(f"mount source {mnt.source} does not exist")
    proc_source = os.path.normpath(mnt.destination) == "/proc" and \
        c.fs_type(source) == c.PROC_SUPER_MAGIC
    dest = mount_destination(rootfs, mnt, proc_source)
    if os.path.isdir(source):
        _make_dirs(rootfs, dest)
    else:
        create_file_in_root(rootfs, mnt.destination)
    with _Pinned(rootfs, dest, mnt.destination) as target:
        c.mount(source, target, None, c.MS_BIND | (flags & c.MS_REC))
    extra = flags & ~(c.MS_BIND | c.MS_REC | c.MS_REMOUNT)
    if extra:
        with _Pinned(rootfs, dest, mnt.destination) as target:  # now the new mount
            _remount(target, extra)
    return dest


def _mount_cgroup(rootfs: str, mnt: Mount, flags: int, cgroup_dirs: list[tuple[str, str]],
                  unified: bool, cgroupns: bool) -> str:
    """/sys/fs/cgroup inside: the container's own cgroups, not the host's tree."""
    dest = mount_destination(rootfs, mnt)
    _make_dirs(rootfs, dest)
    if unified:
        if cgroupns:
            with _Pinned(rootfs, dest, mnt.destination) as target:
                c.mount("cgroup2", target, "cgroup2", flags & ~c.MS_BIND)
        elif cgroup_dirs:
            with _Pinned(rootfs, dest, mnt.destination) as target:
                c.mount(cgroup_dirs[0][1], target, None, c.MS_BIND | c.MS_REC)
            if flags & c.MS_RDONLY:
                with _Pinned(rootfs, dest, mnt.destination) as target:
                    _remount(target, flags & _LOCKABLE)
        return dest
    # v1: a tmpfs holding one bind mount per hierarchy, read-only last.  Inside
    # that fresh tmpfs, nothing but us can have made a symlink; the tmpfs itself is
    # held by an fd (its path could be swapped too), everything made relative to it.
    with _Pinned(rootfs, dest, mnt.destination) as target:
        c.mount("tmpfs", target, "tmpfs", c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC, "mode=755")
    pin = _Pinned(rootfs, dest, mnt.destination)  # now the new tmpfs
    with pin as tmpfs:
        for name, host_dir in cgroup_dirs:
            try:
                os.mkdir(name, 0o755, dir_fd=pin.fd)
            except FileExistsError:
                pass
            with _PinnedBelow(pin.fd, name) as sub:
                c.mount(host_dir, sub, None, c.MS_BIND | c.MS_REC)
            with _PinnedBelow(pin.fd, name) as sub:  # now the bind
                _remount(sub, (flags & _LOCKABLE) | c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC)
            if "," in name:  # co-mounted controllers: cpu -> cpu,cpuacct as runc links them
                for part in name.split(","):
                    try:
                        os.symlink(name, part, dir_fd=pin.fd)
                    except FileExistsError:
                        pass
        if flags & c.MS_RDONLY:
            c.mount(None, tmpfs, None, c.MS_REMOUNT | c.MS_RDONLY | c.MS_NOSUID | c.MS_NODEV |
                    c.MS_NOEXEC, "mode=755")
    return dest


def unescape_mountinfo(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _parent_mount_propagation(rootfs: str, slave: bool) -> None:
    """Make the mount holding the rootfs private (slave if the spec asked a slave root).

    pivot_root(2) refuses a new root whose parent mount is shared, a shared parent
    would propagate our rootfs bind back to the host, and an unbindable one cannot
    be bound at all (runc's rootfsParentMountPropagation: EINVAL means "not a mount
    point", so walk up until one is).
    """
    flag = c.MS_SLAVE if slave else c.MS_PRIVATE
    path = rootfs
    while True:
        try:
            c.mount(None, path, None, flag)
            return
        except OSError as err:
            if err.errno != errno.EINVAL or path == "/":
                raise
        path = os.path.dirname(path)


#: sysctls the ipc namespace owns (runc's validator list).
_IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                          "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                          "kernel.shm_rmid_forced"})


def _readonly_below(dest: str) -> None:
    """"rro": bind-remount read-only every mount at or below dest (runc does it with
    mount_setattr(AT_RECURSIVE)), keeping each one's own nosuid/nodev/noexec."""
    with open("/proc/self/mountinfo") as f:
        points = [unescape_mountinfo(line.split()[4]) for line in f]
    for point in dict.fromkeys(points):  # in mount order, each once
        if point == dest or point.startswith(dest.rstrip("/") + "/"):
            _remount(point, (os.statvfs(point).f_flag & _LOCKABLE) | c.MS_RDONLY)


def check_sysctls(spec: Spec) -> None:
    """Refuse a sysctl that no namespace of the container owns: written from the
    container's init it would change the host (kernel.core_pattern, vm.*, ...)."""
    for key in spec.linux.sysctl:
        name = key.replace("/", ".")
        if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
            owner = "ipc"
        elif name.startswith("net."):
            owner = "network"
        elif name in ("kernel.hostname", "kernel.domainname"):
            owner = "uts"
        else:
            raise InvalidArgument(f"sysctl {key} is not namespaced: it would change the host")
        if spec.linux.namespace(owner) is None:
            raise InvalidArgument(f"sysctl {key} needs a {owner} namespace of the container's "
                                  "own: it would change the host's")


def mount_all(spec: Spec, rootfs: str, bundle: str, cgroup_dirs: list[tuple[str, str]],
              unified: bool, in_userns: bool, own_mount_ns: bool = True,
              source_fds: dict[int, int] | None = None) -> list[tuple[str, int]]:
    """Steps 1-4.  Returns the (destination, flags) of the tmpfs and /dev mounts to
    make read-only once everything below them is mounted (``readonly_later``).

    ``source_fds``: bind sources by mount index, opened by the runtime (see create).
    """
    check_sysctls(spec)  # here: the first step of init that sees the whole spec
    if own_mount_ns:
        propagation = spec.linux.rootfs_propagation
        # As runc: the spec's propagation exactly as given ("shared" is not "rshared"),
        # but for unbindable: the host's mounts made unbindable here could not be bound
        # (cgroups, volumes: runc fails so); the new "/" alone is, after the switch.
        given = propagation_flag(propagation) if propagation else 0
        root_flags = given if given and not given & c.MS_UNBINDABLE else c.MS_SLAVE | c.MS_REC
        c.mount(None, "/", None, root_flags)
        _parent_mount_propagation(rootfs, slave=bool(given & c.MS_SLAVE))
    c.mount(rootfs, rootfs, None, c.MS_BIND | c.MS_REC)
    cgroupns = spec.linux.namespace("cgroup") is not None
    dev_is_ours = False
    later: list[tuple[str, int]] = []
    for index, mnt in enumerate(spec.mounts):
        opts = parse_options(mnt.options)
        mount_flags = opts.flags
        if mount_flags & c.MS_RDONLY and (mnt.type == "tmpfs" or
                                          os.path.normpath(mnt.destination) == "/dev"):
            # Read-only once its submounts (devpts, mqueue, shm) and devices are in:
            # mounted read-write now, remounted read-only after the switch (runc).
            mount_flags &= ~c.MS_RDONLY
        ro_later = mount_flags != opts.flags
        try:
            if mnt.type == "bind" or opts.is_bind:
                dest = _bind_mount(rootfs, bundle, mnt, mount_flags,
                                   (source_fds or {}).get(index))
            elif mnt.type == "cgroup":
                dest = _mount_cgroup(rootfs, mnt, opts.flags, cgroup_dirs, unified, cgroupns)
            else:
                dest = mount_destination(rootfs, mnt)
                _make_dirs(rootfs, dest)
                flags = mount_flags & ~c.MS_REMOUNT
                if mnt.type == "sysfs" and in_userns and (
                        spec.linux.namespace("network") is None
                        or not _mounted_fresh(rootfs, dest, mnt, flags, opts.data)):
                    # sysfs needs a network namespace our user namespace owns (not one
                    # the host's root made and we joined: --userns-remap's containers);
                    # bind the host's as runc does.
                    with _Pinned(rootfs, dest, mnt.destination) as target:
                        c.mount("/sys", target, None, c.MS_BIND | c.MS_REC)
                    with _Pinned(rootfs, dest, mnt.destination) as target:
                        _remount(target, flags & _LOCKABLE)
                elif mnt.type != "sysfs" or not in_userns:
                    with _Pinned(rootfs, dest, mnt.destination) as target:
                        c.mount(mnt.source or mnt.type, target, mnt.type, flags,
                                opts.data or None)
                if mnt.destination == "/dev":
                    dev_is_ours = True
            if opts.recursive_ro:
                _readonly_below(dest)
            for prop in opts.propagation:
                with _Pinned(rootfs, dest, mnt.destination) as target:
                    c.mount(None, target, None, prop)
        except OSError as err:
            raise InvalidArgument(f"mount {mnt.destination} ({mnt.type or 'bind'}): "
                                  f"{err.strerror}") from err
        if ro_later:
            # by where it went, as the container will see it ("/a/../b" is "/b" when /a
            # is missing: the destination as written would not be found after the switch)
            rel = os.path.relpath(dest, rootfs)
            later.append(("/" if rel == "." else "/" + rel, opts.flags))
    if dev_is_ours:
        make_default_devices(rootfs, in_userns)
    for dev in spec.linux.devices:
        if os.path.normpath(dev.path) == "/dev/ptmx":
            continue  # the link to the container's devpts, made above (as runc)
        make_device(rootfs, dev, in_userns)
    return later


def readonly_later(mounts: list[tuple[str, int]]) -> None:
    """Step 6: the tmpfs and /dev mounts asked read-only, now that everything below
    them is mounted (paths are the container's: we are inside its root)."""
    for destination, flags in mounts:
        _remount(destination, (flags & _LOCKABLE) | c.MS_RDONLY)


def apply_root_propagation(propagation: str) -> None:
    """Step 6: shared and unbindable (and their r- forms) on the new "/" itself, as runc
    does since 1.3 (1.1 left it private): before the switch they would have applied to
    the host's mounts or been undone by the private parent; private and slave were
    applied in step 1."""
    flag = propagation_flag(propagation) if propagation else 0
    if flag and not flag & (c.MS_PRIVATE | c.MS_SLAVE):
        c.mount(None, "/", None, flag)


def pivot_into(rootfs: str) -> None:
    """pivot_root(".", ".") then detach the old root stacked under the new one."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        c.pivot_root(".", ".")
        os.fchdir(old_root)
        c.mount(None, ".", None, c.MS_SLAVE | c.MS_REC)
        c.umount2(".", c.MNT_DETACH)
    finally:
        os.close(old_root)
        os.close(new_root)
    os.chdir("/")


def chroot_into(rootfs: str, explain: Explainer | None = None) -> None:
    """--no-pivot: move the rootfs mount over "/" and chroot into it.

    The host's mounts stay reachable to a privileged process that escapes the
    chroot (``tomato chroot`` demonstrates it): this is why pivot_root is the default.
    First the host's full proc and sysfs mounts are detached (or covered) as runc's
    msMoveRoot does: the kernel lets a new user+pid namespace mount procfs when the
    mount namespace holds a fully visible one, and the host's would do, unmasked
    (`unshare -mrpf sh -c 'mount -t proc proc /mnt'` from inside the container).
    """
    _hide_host_proc_and_sys(rootfs)
    os.chdir(rootfs)
    c.mount(rootfs, "/", None, c.MS_MOVE)
    if explain is not None:
        explain.chroot(rootfs)
    os.chroot(".")
    os.chdir("/")


def chroot_only(rootfs: str, explain: Explainer | None = None) -> None:
    """No mount namespace of its own: the root is only changed (pivot_root or
    MS_MOVE would act on the mounts of the caller's namespace)."""
    os.chdir(rootfs)
    if explain is not None:
        explain.chroot(rootfs)
    os.chroot(".")
    os.chdir("/")


def _hide_host_proc_and_sys(rootfs: str) -> None:
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    for line in lines:
        head, _, tail = line.partition(" - ")
        fields = head.split()
        point = unescape_mountinfo(fields[4])
        if fields[3] != "/" or tail.split()[0] not in ("proc", "sysfs") or \
                is_within(rootfs, point):
            continue
        try:  # our unmount must not propagate to the host
            c.mount(None, point, None, c.MS_SLAVE | c.MS_REC)
        except FileNotFoundError:
            continue  # below a mount point already detached
        try:
            c.umount2(point, c.MNT_DETACH)
        except OSError as err:
            if err.errno not in (errno.EINVAL, errno.EPERM):
                raise
            c.mount("tmpfs", point, "tmpfs", 0)  # locked (in a user namespace): cover it


def apply_sysctls(sysctl: dict[str, str]) -> None:
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        if ".." in key.split("."):
            raise InvalidArgument(f"invalid sysctl {key}")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as err:
            raise InvalidArgument(f"sysctl {key}={value}: {err.strerror}") from err


def mask_paths(paths: tuple[str, ...], mount_label: str = "") -> None:
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            c.mount("tmpfs", path, "tmpfs", c.MS_RDONLY, mount_label or None)
        else:
            c.mount("/dev/null", path, None, c.MS_BIND)


def readonly_paths(paths: tuple[str, ...]) -> None:
    for path in paths:
        try:
            c.mount(path, path, None, c.MS_BIND | c.MS_REC)
        except FileNotFoundError:
            continue
        _remount(path, c.MS_RDONLY | c.MS_REC)


def readonly_root() -> None:
    _remount("/", c.MS_RDONLY)


def cgroup_mount_dirs(cgroup_paths: dict[str, str],
                      hierarchies: list[Any]) -> list[tuple[str, str]]:
    """(name inside /sys/fs/cgroup, host directory) for each hierarchy we manage."""
    out = []
    for h in hierarchies:
        if h.version == 2:
            continue
        for ctrl in sorted(h.controllers):
            path = cgroup_paths.get(ctrl)
            if path:
                out.append((os.path.basename(h.mountpoint), path))
                break
    return out
