"""One health check of one container: the short process a container's monitor starts
when a probe is due (an isolated ``python -I`` running ``main([CDIR])``), so that between
checks a container with a healthcheck costs no process at all.

It runs the probe as Docker's exec would (the container's user, env, cwd and
capabilities, no tty; moby's cmdProbe) through the runtime's exec, in-process: the
probe is this process's child.  Its stdout and stderr go, together, into a pipe of
which the first 4096 bytes are kept.  A probe still running at the timeout is killed
(SIGKILL) and counts as exit code -1, "Health check exceeded timeout (T)"; a probe
that cannot start (no such command) is -1 with the runtime's message.  The result
goes into health.json (health.py's rules) and a change of status is a
``health_status: STATUS`` event.

What it needs was written by the monitor when the container started (``PROBE_FILE``):
no store to open.  Its exit code tells the monitor which interval comes next:
``STILL_STARTING`` while the container is starting, 0 otherwise.  A paused container
is not probed (Docker stops its probes while paused).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

from tomato import fastjson as json
from tomato.engine import health

# A check is a process of its own, every interval: its imports are the runtime's exec
# path (no json, pathlib, typing or the store), ~40 ms of CPU in all.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from tomato.engine.monitor_config import MonitorConfig

PROBE_FILE = "health-probe.json"
STILL_STARTING = 10  #: our exit code while the container is still starting
KILL_WAIT = 5.0  #: seconds a killed probe may take to go (a frozen one never does)


def write_probe_file(cdir: Path, process: dict[str, Any], command: list[str],
                     healthcheck: dict[str, Any], started_at: float, runtime_root: str,
                     attributes: dict[str, str]) -> None:
    """What the probes of this run of the container need (written by the monitor)."""
    from tomato.files import write_private

    proc = json.loads(json.dumps(process))
    proc.update({"args": command, "terminal": False})
    proc.pop("consoleSize", None)
    write_private(os.path.join(cdir, PROBE_FILE), json.dumps({
        "process": proc, "healthcheck": healthcheck, "started_at": started_at,
        "runtime_root": runtime_root, "attributes": attributes}))


def run_probe(runtime_root: str, cid: str, process: dict[str, Any],
              timeout_ns: int) -> dict[str, Any] | None:
    """One run: Docker's HealthcheckResult, or None when the container is paused or
    gone (nothing to record)."""
    from tomato.errors import TomatoError
    from tomato.runtime.exec import ExecOptions, exec_process
    from tomato.runtime.lifecycle import load
    from tomato.runtime.log import RuntimeLog
    from tomato.runtime.statedir import StateDir

    states = StateDir(runtime_root)
    try:
        rec, status = load(states, cid)
    except TomatoError:
        return None
    if status != "running":
        return None
    started = time.time()
    r, w = os.pipe2(os.O_CLOEXEC)
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    try:
        os.dup2(null, 0)
        os.dup2(w, 1)
        os.dup2(w, 2)
        pid = exec_process(states, cid, ExecOptions(process=process), RuntimeLog(),
                           rec=rec).pid
    except (TomatoError, OSError) as err:  # dockerd: an exec that fails to start is -1
        os.close(r)
        return _result(started, -1, str(err) or type(err).__name__)
    finally:
        for fd, copy in zip((0, 1, 2), saved, strict=False):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(w)
        os.close(null)
    code, output, truncated = _collect(pid, r, timeout_ns / 1e9)
    text = health.limited_output(output, truncated)
    if code is None:
        limit = health.go_duration(timeout_ns)
        text = f"Health check exceeded timeout ({limit})" + (f": {text}" if text else "")
        return _result(started, -1, text)
    return _result(started, code, text)


def _collect(pid: int, r: int, timeout: float) -> tuple[int | None, bytes, bool]:
    """The probe's exit code (None: killed at the timeout) and output: the first 4096
    bytes, and whether there was more."""
    pidfd = os.pidfd_open(pid)
    out = bytearray()
    truncated = False
    reading = True
    deadline = time.monotonic() + timeout

    def take(chunk: bytes) -> None:
        nonlocal truncated
        room = health.MAX_OUTPUT - len(out)
        out.extend(chunk[:max(room, 0)])
        truncated = truncated or len(chunk) > room

    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                if select.select([pidfd], [], [], KILL_WAIT)[0]:  # (a frozen one stays)
                    os.waitpid(pid, 0)
                return None, bytes(out), truncated
            ready, _, _ = select.select([r, pidfd] if reading else [pidfd], [], [], left)
            if r in ready:
                chunk = os.read(r, 65536)
                if chunk:
                    take(chunk)
                else:
                    reading = False
            if pidfd in ready:
                _, status = os.waitpid(pid, 0)
                # What it wrote before it exited, not what its children go on writing
                os.set_blocking(r, False)
                try:
                    while reading and (chunk := os.read(r, 65536)):
                        take(chunk)
                except BlockingIOError:
                    pass
                return _exit_code(status), bytes(out), truncated
    finally:
        os.close(pidfd)
        os.close(r)


def _running(runtime_root: str, cid: str) -> bool:
    from tomato.errors import TomatoError
    from tomato.runtime.lifecycle import load
    from tomato.runtime.statedir import StateDir

    try:
        return load(StateDir(runtime_root), cid)[1] == "running"
    except TomatoError:
        return False


def _exit_code(status: int) -> int:
    """As docker reports it: the code, or 128+N when killed by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


def _result(started: float, code: int, output: str) -> dict[str, Any]:
    return {"Start": _iso(started), "End": _iso(time.time()), "ExitCode": code,
            "Output": output, "_start": started}


def check(cdir: str, root: str, cid: str) -> int:
    """One check, recorded; returns the exit code for the monitor (see the module)."""
    with open(os.path.join(cdir, PROBE_FILE), "rb") as f:
        plan = json.loads(f.read())
    hc = plan["healthcheck"]
    _, timeout, _, _, _ = health.timings(hc)
    result = run_probe(plan["runtime_root"], cid, plan["process"], timeout)
    if result is not None and not _running(plan["runtime_root"], cid):
        result = None  # paused (or stopped) meanwhile: Docker drops that probe's result
    before = health.read(cdir) or {"Status": health.STARTING, "FailingStreak": 0, "Log": []}
    if result is None:
        return STILL_STARTING if before["Status"] == health.STARTING else 0
    since_start = int((result.pop("_start") - plan["started_at"]) * 1e9)
    after = health.apply_result(before, result, hc, since_start)
    health.write(cdir, after)
    if after["Status"] != before["Status"]:
        from tomato.engine import events

        events.emit(root, "container", f"health_status: {after['Status']}", cid,
                    plan["attributes"])
    return STILL_STARTING if after["Status"] == health.STARTING else 0


#: a check's entry point: isolated (-I), with the path this tomato was imported from
#: (a venv's site-packages, or a source tree a rootless user's engine runs from)
_ENTRY = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from tomato.engine.healthprobe import main; sys.exit(main(sys.argv[2:]))")


def probe_argv(cdir: Path) -> list[str]:
    """How a monitor starts one check of the container in ``cdir``."""
    import tomato

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(tomato.__file__)))
    return [sys.executable, "-I", "-c", _ENTRY, package_parent, str(cdir)]


def begin(cdir: Path, mcfg: MonitorConfig, spec: dict[str, Any],
          started_at: float) -> ProbeSchedule:
    """The container (with a healthcheck) just started: it is starting, its probes'
    plan is written; the timer for a monitor that serves the container itself."""
    hc = mcfg.healthcheck or {}
    write_probe_file(cdir, spec.get("process", {}), mcfg.health_command, hc, started_at,
                     mcfg.runtime_root, mcfg.event_attributes)
    health.container_started(cdir)
    return ProbeSchedule(cdir, hc)


def shim_args(cdir: Path, mcfg: MonitorConfig) -> tuple[str, list[str]]:
    """tomato-shim's HEALTH argument (INTERVAL:TIMEOUT:START_PERIOD:START_INTERVAL, in
    ns) and its ``-- PROBE...`` tail."""
    interval, timeout, start_period, start_interval, _ = health.timings(mcfg.healthcheck or {})
    return (f"{interval}:{timeout}:{start_period}:{start_interval}",
            ["--", *probe_argv(cdir)])


#: what a monitor ignores (monitor.py), and a check must not: ignoring survives exec
_IGNORED_BY_MONITORS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE)


class ProbeSchedule:
    """The Python monitor's probe timer, for a container it serves itself (a foreground
    run); tomato-shim keeps the same schedule in C.  ``wait()`` is how long its loop
    may sleep, ``tick()`` starts a due check or reaps a finished one."""

    GRACE = 30.0  #: dockerd's time for an exec to start, beyond the timeout

    def __init__(self, cdir: Path, hc: dict[str, Any]) -> None:
        self.cdir, self.hc = cdir, hc
        self.began = time.monotonic()
        self.pid = 0
        self.deadline = 0.0
        self._schedule(starting=True)

    def _schedule(self, starting: bool) -> None:
        since = int((time.monotonic() - self.began) * 1e9)
        self.due = time.monotonic() + health.next_delay(self.hc, since, starting) / 1e9

    def wait(self) -> float:
        return max((self.deadline if self.pid else self.due) - time.monotonic(), 0.0)

    def tick(self) -> None:
        if self.pid:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.pid = 0
                self._schedule(os.WIFEXITED(status) and
                               os.WEXITSTATUS(status) == STILL_STARTING)
            elif time.monotonic() >= self.deadline:
                self.stop()
                self._schedule(starting=True)
        elif time.monotonic() >= self.due:
            argv = probe_argv(self.cdir)
            self.pid = os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDWR, 0),
                (os.POSIX_SPAWN_DUP2, 0, 1), (os.POSIX_SPAWN_DUP2, 0, 2)],
                setsigmask=(), setsigdef=_IGNORED_BY_MONITORS)
            self.deadline = time.monotonic() + health.timings(self.hc)[1] / 1e9 + self.GRACE

    def stop(self) -> None:
        """No probe left running (the container stopped, or the probe is overdue)."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = 0


def main(argv: list[str]) -> int:
    """``healthprobe CDIR``: the container's directory (ROOT/containers/ID)."""
    cdir = os.path.abspath(argv[0])
    return check(cdir, os.path.dirname(os.path.dirname(cdir)), os.path.basename(cdir))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
