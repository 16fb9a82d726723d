"""Terminals: the container's pty, handed to the caller over --console-socket.

As runc does, the container's init opens /dev/ptmx *inside* the container
(so the pty belongs to the container's devpts), makes the slave its stdio
and controlling terminal, and sends the master fd to the caller's unix
socket with SCM_RIGHTS, the message being the slave's path.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import struct
import termios

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCGPTPEER = 0x5441
TIOCSCTTY = 0x540E


def open_pty(size: tuple[int, int] | None = None) -> tuple[int, int, str]:
    """(master, slave, slave path) from this mount namespace's /dev/ptmx."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    # TIOCGPTPEER opens the slave through the master: no path lookup to race.
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    if size:
        set_size(slave, *size)
    return master, slave, f"/dev/pts/{number}"


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_size(fd: int) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return rows, cols


def give_to(slave: int, uid: int) -> None:
    """The slave belongs to the process's user, keeping the group devpts gave it (tty,
    with runc's gid=5), so a non-root process can use its own terminal (runc's
    fixStdioPermissions).  A uid or group not mapped in a user namespace (EINVAL,
    EPERM), or a read-only /dev (EROFS), leaves it as it is, as runc does."""
    try:
        os.fchown(slave, uid, -1)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EPERM, errno.EROFS):
            raise


def make_controlling(slave: int) -> None:
    """The slave becomes stdio and the controlling terminal (needs setsid first)."""
    for target in (0, 1, 2):
        os.dup2(slave, target)
    fcntl.ioctl(0, TIOCSCTTY, 0)
    if slave > 2:
        os.close(slave)


def send_master(sock_fd: int, master: int, name: str) -> None:
    sock = socket.socket(fileno=os.dup(sock_fd))
    try:
        socket.send_fds(sock, [name.encode()], [master])
    finally:
        sock.close()


def recv_master(sock: socket.socket) -> int:
    _msg, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise OSError("console socket: no file descriptor received")
    return fds[0]


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def proxy(master: int, child: int) -> int:
    """Join our stdio to the container's pty until the child exits; return its wait status."""
    stdin_tty = os.isatty(0)
    saved = None
    if stdin_tty:
        saved = termios.tcgetattr(0)
        mode = termios.tcgetattr(0)
        # raw mode: the container's line discipline does echo and signals.
        mode[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK | termios.ISTRIP |
                     termios.IXON)
        mode[2] = (mode[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
        mode[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(0, termios.TCSAFLUSH, mode)
        size = get_size(0)
        if size:
            set_size(master, *size)

        def on_winch(_sig: int, _frame: object) -> None:
            sz = get_size(0)
            if sz:
                set_size(master, *sz)

        signal.signal(signal.SIGWINCH, on_winch)
    fds = [master, 0]
    status = None
    try:
        while True:
            try:
                ready, _, _ = select.select(fds, [], [], 0.2)
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    fds.remove(master)
                else:
                    os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    fds.remove(0)
                else:
                    os.write(master, data)
            pid, st = os.waitpid(child, os.WNOHANG)
            if pid == child:
                status = st
                # drain what the container wrote last
                while True:
                    r, _, _ = select.select([master], [], [], 0.05)
                    if not r:
                        break
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    os.write(1, data)
                break
            if master not in fds and 0 not in fds:
                _, status = os.waitpid(child, 0)
                break
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSAFLUSH, saved)
    return status if status is not None else 0


__all__ = ["open_pty", "send_master", "recv_master", "connect", "proxy", "make_controlling",
           "give_to"]
