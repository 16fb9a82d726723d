"""Run a function, or a function then an execve, in a forked child.

The security primitives change the calling process for good (capabilities,
seccomp, no_new_privs, uid), so every test applies them in a child and reads
the outcome back: a JSON value over a pipe, the exit status, or the signal
that killed it.  The child never returns into pytest: it always ``_exit``s.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: A child that hangs is killed by its own alarm, so a test can never hang.
CHILD_TIMEOUT_S = 60
PREPARE_FAILED = 70


@dataclass
class ChildResult:
    exit_code: int | None
    signal: int | None
    value: Any = None
    error: str | None = None
    output: bytes = b""

    def ok(self) -> Any:
        assert self.error is None, f"child failed:\n{self.error}"
        assert self.signal is None, f"child killed by signal {self.signal}"
        assert self.exit_code == 0, f"child exited {self.exit_code}: {self.output!r}"
        return self.value


def _child_setup() -> None:
    # A child killed by SIGSYS would dump core into the cwd (core_pattern "core").
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(CHILD_TIMEOUT_S)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _wait(pid: int) -> tuple[int | None, int | None]:
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.WEXITSTATUS(status), None


def run_in_child(fn: Callable[[], Any]) -> ChildResult:
    """fork; in the child run ``fn()`` and send back its JSON-able result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.close(r)
            _child_setup()
            payload = {"value": fn()}
        except BaseException:
            payload = {"error": traceback.format_exc()}
            code = PREPARE_FAILED
        try:
            os.write(w, json.dumps(payload).encode())
        finally:
            os._exit(code)
    os.close(w)
    data = _read_all(r)
    code, sig = _wait(pid)
    payload = json.loads(data) if data else {}
    return ChildResult(code, sig, payload.get("value"), payload.get("error"))


def exec_in_child(prepare: Callable[[], None], argv: Sequence[str],
                  exec_fd: int | None = None) -> ChildResult:
    """fork; in the child run ``prepare()`` then execv ``argv`` with stdout to a pipe.

    With ``exec_fd`` the child runs that open file (fexecve) instead of
    ``argv[0]``: the path was walked by root, so an unprivileged child needs
    no search permission on its directories.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            _child_setup()
            prepare()
            os.dup2(w, 1)
            if exec_fd is not None:
                os.execve(exec_fd, list(argv), dict(os.environ))
            os.execv(argv[0], list(argv))
        except BaseException:
            os.write(w, ("PREPARE-ERROR " + traceback.format_exc()).encode())
        os._exit(PREPARE_FAILED)
    os.close(w)
    out = _read_all(r)
    code, sig = _wait(pid)
    error = out.decode(errors="replace") if out.startswith(b"PREPARE-ERROR") else None
    return ChildResult(code, sig, None, error, out)


def status_caps(text: str) -> dict[str, int]:
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb from /proc/<pid>/status text, as ints."""
    caps = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Cap"):
            caps[key] = int(value.strip(), 16)
    return caps


def own_status_caps() -> dict[str, int]:
    with open("/proc/self/status") as f:
        return status_caps(f.read())
