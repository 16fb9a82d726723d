"""Who watches a started container: forking its monitor, or becoming it.

A ``Supervision`` belongs to one EngineConfig (one command, one API server) and
holds what used to be module state of the service:

- the cgroup primer (cgroups.prime_migration): `run` starts it at create, so the
  RCU grace period of the monitor's cgroup move passes while the container is
  made; ``settle`` waits for it before the process exits;
- the monitors this process forked: its children until it exits, reaped by
  ``settle`` if they are done by then (after us their reaper is our subreaper:
  the CLI's fork server, the API's zygote).

``spawn_monitor`` forks the monitor (no interpreter start-up: everything it needs
is imported here already) and waits for its first report; the monitor's own
code (monitor.py's ``run_as_monitor``) is handed in, never imported here.  ``become_monitor`` is
the hand-off of a fork server's `run -d` child: this very process turns into the
monitor once the client has been told the id (one process per container fewer).
Neither may leave a thread behind: the monitor's runtime clones through ctypes
(libc.clone refuses to clone beside a thread).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from tomato.cgroups import Primer
    from tomato.explain.trace import Explainer

    #: monitor.run_as_monitor: (root, id, the first report's callback or None, the
    #: explainer or None) -> never
    MonitorMain = Callable[[Path, str, Callable[[dict[str, Any]], None] | None,
                            Explainer | None], NoReturn]



class Supervision:
    """The primer and the forked monitors of one engine user (see the module)."""

    def __init__(self) -> None:
        self.primer: Primer | None = None
        self.monitors: list[int] = []

    # -- the primer ---------------------------------------------------------------------
    def prime(self) -> None:
        """Start priming the cgroup move (root only), unless already primed."""
        from tomato._sys import userns

        if self.primer is None and not userns.rootless():  # (a user's cgroups: not here)
            from tomato import cgroups

            self.primer = cgroups.prime_migration()

    @property
    def primed(self) -> bool:
        return self.primer is not None

    def reap_primer(self, wait: bool = True) -> None:
        if self.primer is not None and self.primer.finished(wait):
            self.primer = None

    def settle(self) -> None:
        """Before the process exits: wait for the primer, reap monitors already done."""
        self.reap_primer()
        for pid in list(self.monitors):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done == pid:
                self.monitors.remove(pid)

    # -- the monitor --------------------------------------------------------------------
    def spawn_monitor(self, root: Path, cid: str, log: Path, monitor: MonitorMain,
                      explain: Explainer | None = None) -> dict[str, Any]:
        """Fork the container's monitor from this process and wait for its first report
        (``{"pid": N}`` once the container runs, or ``{"error": ...}``); ``explain``
        (--explain) goes on telling in the monitor, which keeps its descriptor.

        One fork, not two: in a session of its own it outlives us, and until we exit
        it is our child, reaped by ``settle`` if it is done by then (a second fork
        would copy this whole process again only to exit at once)."""
        from tomato.engine.store import forget_connections

        forget_connections()  # the monitor opens its own
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover — runs in the forked monitor
            try:
                os.close(r)
                new_monitor_session()
                monitor_stdio(log, w)
                # Nothing else of our caller's may live on in the monitor (a pipe it
                # waits on, a terminal): only 0, 1 (the report pipe) and 2 stay.
                keep = explain.fd if explain is not None and explain.fd is not None else -1
                if keep > 2:
                    os.closerange(3, keep)
                    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
                else:
                    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            except BaseException as exc:  # noqa: BLE001
                try:
                    os.write(2, f"monitor: {exc}\n".encode())
                finally:
                    os._exit(1)
            monitor(root, cid, None, explain)
        os.close(w)
        self.monitors.append(pid)
        chunks = []
        while True:
            chunk = os.read(r, 4096)
            if not chunk or b"\n" in chunk:
                chunks.append(chunk)
                break
            chunks.append(chunk)
        os.close(r)
        line = b"".join(chunks).split(b"\n")[0]
        try:
            report: dict[str, Any] = json.loads(line) if line else {}
        except ValueError:
            report = {}
        return report

    def become_monitor(self, root: Path, cid: str, log: Path, monitor: MonitorMain,
                       reported: Callable[[dict[str, Any]], None]) -> NoReturn:
        """This process turns into the container's monitor; ``reported(msg)`` gets the
        first report (it tells the user, then lets the client go)."""
        from tomato.engine.store import forget_connections

        forget_connections()  # the monitor's own, from here on
        self.reap_primer()  # no thread may live on: the runtime clones through ctypes
        new_monitor_session()

        def first(msg: dict[str, Any]) -> None:
            reported(msg)
            monitor_stdio(log, -1)  # from now on a monitor like any other: nothing of the user's

        monitor(root, cid, first, None)  # never with --explain (no hand-off then)


def new_monitor_session() -> None:
    from tomato._sys.libc import set_comm

    os.setsid()
    set_comm("tomato-monitor")


def monitor_stdio(log: Path, report_fd: int) -> None:
    """A monitor's stdio: /dev/null in, ``report_fd`` (or /dev/null) out, its log as stderr."""
    null = os.open("/dev/null", os.O_RDWR)
    err = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    os.dup2(null, 0)
    os.dup2(report_fd if report_fd >= 0 else null, 1)
    os.dup2(err, 2)
    os.close(null)
    os.close(err)

