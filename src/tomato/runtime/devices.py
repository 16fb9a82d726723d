"""/dev inside the container: the spec's default devices, its links and linux.devices.

Runs in the container's init before the switch of root (rootfs.mount_all, step 4).
"""

from __future__ import annotations

import os
import stat

from tomato._sys import libc as c
from tomato._sys.paths import is_within, mkdir_all_at, open_in_root, open_root, resolve_in_root
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
    # Made through an fd of its directory, made and opened inside the rootfs: by name,
    # a directory of a shared volume swapped for a link to the host meanwhile put the
    # node on the host (issue 13/14).  Errors still name the path as they did.
    root_fd = open_root(rootfs)
    try:
        parent = mkdir_all_at(root_fd, os.path.relpath(os.path.dirname(host), rootfs))
    except OSError as err:  # named as os.makedirs(host path) named it
        raise OSError(err.errno, err.strerror, os.path.join(rootfs, err.filename or "")
                      ) from None
    finally:
        os.close(root_fd)
    try:
        _make_node_at(parent, os.path.basename(host), host, dev, in_userns)
    finally:
        os.close(parent)


def _make_node_at(parent: int, name: str, host: str, dev: Device, in_userns: bool) -> None:
    try:
        os.unlink(name, dir_fd=parent)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise OSError(err.errno, err.strerror, host) from None
    mode = dev.file_mode if dev.file_mode is not None else 0o666
    if in_userns:
        # mknod is not allowed in a user namespace: bind the host's node instead.
        try:
            fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW |
                         os.O_CLOEXEC, 0o000, dir_fd=parent)
        except OSError as err:
            raise OSError(err.errno, err.strerror, host) from None
        try:  # on the file just made, through its fd
            c.mount(dev.path, f"/proc/self/fd/{fd}", None, c.MS_BIND)
        finally:
            os.close(fd)
        return
    kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[dev.type]
    old = os.umask(0)
    try:
        os.mknod(name, kind | mode, os.makedev(dev.major, dev.minor), dir_fd=parent)
    except OSError as err:
        raise OSError(err.errno, err.strerror) from None  # as os.mknod(host): no name
    finally:
        os.umask(old)
    try:
        os.chown(name, dev.uid or 0, dev.gid or 0, dir_fd=parent, follow_symlinks=False)
    except OSError as err:
        raise OSError(err.errno, err.strerror, host) from None


def make_default_devices(rootfs: str, in_userns: bool) -> None:
    for dev in DEFAULT_DEVICES:
        make_device(rootfs, dev, in_userns)
    root_fd = open_root(rootfs)
    try:
        dev_fd = open_in_root(root_fd, "/dev", os.O_PATH | os.O_DIRECTORY)
    finally:
        os.close(root_fd)
    try:  # /dev is the container's fresh tmpfs: each link made right in it
        for target, link in DEV_LINKS:
            try:
                os.symlink(target, os.path.basename(link), dir_fd=dev_fd)
            except FileExistsError:
                pass
        try:
            os.unlink("ptmx", dir_fd=dev_fd)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev_fd)
    finally:
        os.close(dev_fd)
