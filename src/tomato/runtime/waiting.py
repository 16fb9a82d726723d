"""Waiting for a process we started in the foreground, forwarding our signals to it."""

from __future__ import annotations

import _signal  # the signal module without its enums (~2 ms to import)
import os

FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1,
             _signal.SIGUSR2)


def forward_signals(pid: int) -> None:
    """Signals sent to us go to ``pid`` instead (what runc run does for its init)."""
    def forward(sig: int, _frame: object) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        _signal.signal(sig, forward)


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the code, or 128+N when killed by signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def wait_for(pid: int, master: int | None = None) -> int:
    """Wait for our child ``pid`` (joining our stdio to its pty ``master`` if given)."""
    if master is not None:
        from tomato.runtime.console import proxy

        return exit_code(proxy(master, pid))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return exit_code(status)
        except InterruptedError:
            continue
