"""`exec` answered by tomato-runtime-front (front/exec.c) and by Python alike.

The front end answers the ordinary exec (containerd's shim's `exec --process F
--detach --pid-file P`, and `exec ID cmd...` with runc's common flags) without
starting Python; everything else goes to Python before anything was changed.
Here each case runs both ways (TOMATO_RUNTIME_PYTHON=1 forces Python) and the
answers are compared: exit code, stdout, stderr, and what the process sees of
itself (ids, capabilities, no_new_privs, seccomp, cwd, env, rlimits, cgroups,
namespaces). TOMATO_RUNTIME_FRONT_ONLY=1 proves the ordinary cases never reach
Python (a hand-over exits 3).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .rt import RUNTIME, runtime
from .rt_extra import ConsoleListener, cid, delete_reaping, edit, read_until, run_detached

FRONT = Path(RUNTIME).parent / "tomato-runtime-front"
pytestmark = pytest.mark.skipif(not FRONT.exists(),
                                reason="tomato-runtime-front is not installed (no C compiler?)")

PATHS = {"front": {"TOMATO_RUNTIME_FRONT_ONLY": "1"}, "python": {"TOMATO_RUNTIME_PYTHON": "1"}}
C = cid("fx")

#: A profile that filters something visible: mkdir fails with EXDEV.
PROFILE = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                         "errnoRet": errno.EXDEV}]}


def call(root: Path, *args: str, path: str = "", env: dict[str, str] | None = None,
         **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    full = {**os.environ, **PATHS.get(path, {}), **(env or {})}
    return subprocess.run([RUNTIME, "--root", str(root), *args], capture_output=True,
                          stdin=subprocess.DEVNULL, env=full, timeout=60, **kwargs)


def both(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The front end alone and Python alone answer alike; the front end's answer."""
    front, python = call(root, *args, path="front"), call(root, *args, path="python")
    assert front.returncode != 3, (args, front.stderr)  # never handed over
    assert (front.returncode, front.stdout, front.stderr) == \
        (python.returncode, python.stdout, python.stderr), args
    assert b"Traceback" not in front.stderr
    return front


@pytest.fixture
def running(root: Path, bundle: Path) -> Iterator[int]:
    """A running sleeper with a seccomp profile, rlimits and a cwd of its own."""
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["seccomp"] = PROFILE
        cfg["process"]["env"].append("FROM_SPEC=yes")
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
                                     {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
        cfg["process"]["cwd"] = "/tmp"

    edit(bundle, fn)
    pid = run_detached(root, bundle, C, "sleep", "600")
    yield pid
    runtime(root, "delete", "--force", C)


def test_create_leaves_the_loadable_program_for_exec(root: Path, running: int) -> None:
    """ROOT/<id>/seccomp.bpf: the cached program and its load flags, 0600."""
    path = root / C / "seccomp.bpf"
    data = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert data[:8] == b"TSECCOMP"
    flags = int.from_bytes(data[8:12], sys.byteorder)
    count = int.from_bytes(data[12:16], sys.byteorder)
    assert flags == 0 and count > 0 and len(data) == 16 + 8 * count
    cached = [p.read_bytes() for p in (root / ".seccomp").iterdir()]
    assert any(c.endswith(data[16:]) for c in cached)


def test_no_program_file_without_a_profile_or_with_warnings(root: Path, bundle: Path) -> None:
    run_detached(root, bundle, C, "sleep", "600")
    try:
        assert not (root / C / "seccomp.bpf").exists()
    finally:
        runtime(root, "delete", "--force", C)
    # a real syscall newer than libseccomp: a warning, so no file (exec stays Python's)
    edit(bundle, lambda cfg: cfg["linux"].__setitem__("seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mseal"], "action": "SCMP_ACT_ERRNO"}]}))
    run_detached(root, bundle, C, "sleep", "600")
    try:
        assert not (root / C / "seccomp.bpf").exists()
    finally:
        runtime(root, "delete", "--force", C)
