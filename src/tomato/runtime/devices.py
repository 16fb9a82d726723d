"""/dev inside the container: the spec's default devices, its links and linux.devices.

Runs in the container's init before the switch of root (rootfs.mount_all, step 4).
"""

from __future__ import annotations

import os
import stat

from tomato._sys import libc as c
from tomato._sys.paths import is_within, resolve_in_root
from tomato.errors import InvalidArgument
from tomato.oci.spec import Device

#: The devices every container gets (runtime-spec "Default Devices").
DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3, 0o666, 0, 0),
    Device("/dev/zero", "c", 1, 5, 0o666, 0, 0),
    Device("/dev/full", "c", 1, 7, 0o666, 0, 0),
    Device("/dev/random", "c", 1, 8, 0o666, 0, 0),
    Device("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
    Device("/dev/tty", "c", 5, 0, 0o666, 0, 0),
)

DEV_LINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)


def make_device(rootfs: str, dev: Device, in_userns: bool) -> None:
    # Resolve the directory only: a link at the node's own path is replaced,
    # never followed (it could point into devpts or at another device).
    path = os.path.normpath(dev.path)
    host = os.path.join(resolve_in_root(rootfs, os.path.dirname(path)), os.path.basename(path))
    if not is_within(rootfs, host) or host == rootfs:
        raise InvalidArgument(f"device path {dev.path} escapes the rootfs")
    os.makedirs(os.path.dirname(host), exist_ok=True)
    if os.path.lexists(host):
        os.unlink(host)
    mode = dev.file_mode if dev.file_mode is not None else 0o666
    if in_userns:
        # mknod is not allowed in a user namespace: bind the host's node instead.
        fd = os.open(host, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o000)
        os.close(fd)
        c.mount(dev.path, host, None, c.MS_BIND)
        return
    kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[dev.type]
    old = os.umask(0)
    try:
        os.mknod(host, kind | mode, os.makedev(dev.major, dev.minor))
    finally:
        os.umask(old)
    os.chown(host, dev.uid or 0, dev.gid or 0)


def make_default_devices(rootfs: str, in_userns: bool) -> None:
    for dev in DEFAULT_DEVICES:
        make_device(rootfs, dev, in_userns)
    for target, link in DEV_LINKS:
        host = resolve_in_root(rootfs, link)
        if not os.path.lexists(host):
            os.symlink(target, host)
    ptmx = resolve_in_root(rootfs, "/dev/ptmx")
    if os.path.lexists(ptmx):
        os.unlink(ptmx)
    os.symlink("pts/ptmx", ptmx)
