"""The container's last execve, through tomato-dmz run from a sealed in-memory copy.

CVE-2019-5736: until that execve, the process that becomes the container's program
is the runtime's own binary (Python, or the front end), so its /proc/self/exe is a
host file.  A container whose program is "#!/proc/self/exe" has the kernel run that
host binary inside it, under the container's loader and LD_PRELOAD, and that code can
keep an fd of the file and write it once the runtime is gone.  So the runtime execs
tomato-dmz (runtime/dmz/tomato-dmz.c: static, it only execs) from a memfd sealed
against writes, and the dmz execs the program: what /proc/self/exe can reach is the
sealed copy, and nothing of the container's ever runs inside a binary of the host's.

``sealed`` makes the copy before anything of the container's is entered (the file is
the host's; after chroot it is out of reach); ``execve`` is the last step.
"""

from __future__ import annotations

import os
import sys

NAME = "tomato-dmz"
_F_ADD_SEALS = 1033  # fcntl.F_ADD_SEALS (not importing fcntl on the start path)
_SEALS = 1 | 2 | 4 | 8  # F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE

MISSING = (f"{NAME} is not installed beside the runtime: the container's program is "
           "exec'd by the runtime's own binary, which a container can then reach through "
           "/proc/self/exe (CVE-2019-5736); reinstall tomato with a C compiler")


def _installed() -> int | None:
    """The installed dmz, opened: beside the launcher we run (the venv's or the scripts
    directory pip fills, also when an interpreter from elsewhere runs it), beside the
    interpreter, or beside its source (install.sh puts a copy there for a runtime run
    from the source tree, as the cgroup v2 guest's `python3 -m tomato.cli.runtime`)."""
    for where in (os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv[0] else "",
                  os.path.dirname(sys.executable),
                  os.path.join(os.path.dirname(os.path.abspath(__file__)), "dmz")):
        try:
            return os.open(os.path.join(where, NAME), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
    return None


def sealed() -> int | None:
    """A close-on-exec fd of a sealed memfd holding the dmz; None when not installed."""
    src = _installed()
    if src is None:
        return None
    try:
        size = os.fstat(src).st_size
        fd = os.memfd_create(NAME, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            done = 0
            while done < size:
                sent = os.sendfile(fd, src, done, size - done)
                if sent == 0:
                    break
                done += sent
            import fcntl

            fcntl.fcntl(fd, _F_ADD_SEALS, _SEALS)
        except BaseException:
            os.close(fd)
            raise
        return fd
    finally:
        os.close(src)


def execve(dmz: int | None, mode: str, report_fd: int, executable: str, args: list[str],
           env: dict[str, str]) -> None:
    """Replace this process with ``executable`` through the dmz, which then reports a
    failed execve itself (``mode`` "exec": to ``report_fd``, exec's error pipe; "init":
    to ``report_fd``, start.fifo, or stderr).  Without a dmz, a plain execve.  Raises
    OSError only when nothing was exec'd."""
    if dmz is None:
        os.execve(executable, args, env)
    if report_fd >= 0:
        os.set_inheritable(report_fd, True)  # the dmz makes it close-on-exec again
    argv = [NAME, mode, str(report_fd), executable, *args]
    try:
        os.execve(dmz, argv, env)  # execveat(AT_EMPTY_PATH)
    except OSError:
        try:  # a seccomp profile that allows execve but not execveat
            os.execve(f"/proc/self/fd/{dmz}", argv, env)
        except OSError as err:
            raise OSError(err.errno, f"cannot run {NAME}: {err.strerror}") from None
