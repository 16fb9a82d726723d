"""The cgroup-move primer tomato-runtime-front started before Python (front/primer.c).

A child of ours re-joins its own cgroup every few milliseconds, so the RCU grace
period the first cgroup move after a quiet spell waits for (~8 ms, holding the
cgroup mutex) passed while the interpreter started, and our moves stay quick.
``take`` finds it (TOMATO_RUNTIME_PRIMER="PID FD", removed from the environment so
no container or hook sees it); ``finished`` tells it to stop, once the container's
init (or exec's process) is in its cgroups, and reaps it.  Nothing found, or
anything that is not our child and a pipe: None, and the caller primes itself.
"""

from __future__ import annotations

import os
import stat

ENV = "TOMATO_RUNTIME_PRIMER"


class FrontPrimer:
    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd

    def finished(self, wait: bool = True) -> bool:
        """Stop it (a byte on its pipe) and reap it; cgroups.Primer's interface."""
        if self.fd >= 0:
            try:
                os.write(self.fd, b"x")
            except OSError:
                pass  # it is gone already
            os.close(self.fd)
            self.fd = -1
        if self.pid:
            try:
                pid, _ = os.waitpid(self.pid, 0 if wait else os.WNOHANG)
            except ChildProcessError:
                pid = self.pid
            if pid != self.pid:
                return False
            self.pid = 0
        return True


def take() -> FrontPrimer | None:
    value = os.environ.pop(ENV, None)
    if not value:
        return None
    try:
        pid, fd = (int(v) for v in value.split())
        with open(f"/proc/{pid}/stat", "rb") as f:
            ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        if ppid != os.getpid() or not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
        os.set_inheritable(fd, False)  # the container's init closes it at its execve
    except (ValueError, OSError, IndexError):
        return None
    return FrontPrimer(pid, fd)
