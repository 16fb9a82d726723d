"""The last review's hardening of the runtime (issue 14/13), each case both ways: the
front end alone (TOMATO_RUNTIME_FRONT_ONLY=1: a hand-over exits 3) and Python alone
(TOMATO_RUNTIME_PYTHON=1), compared.

- HOME from a hostile image's /etc/passwd (bytes that are not UTF-8) is read as bytes,
  as runc and the front end read it: the same HOME, byte for byte, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .rt import RUNTIME, runtime
from .rt_extra import cid, delete_reaping, edit, run_detached

FRONT = Path(RUNTIME).parent / "tomato-runtime-front"
pytestmark = pytest.mark.skipif(not FRONT.exists(),
                                reason="tomato-runtime-front is not installed (no C compiler?)")

PATHS = {"front": {"TOMATO_RUNTIME_FRONT_ONLY": "1"}, "python": {"TOMATO_RUNTIME_PYTHON": "1"}}
C = cid("hard")


def call(root: Path, *args: str, path: str = "", env: dict[str, str] | None = None,
         **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    full = {**os.environ, **PATHS.get(path, {}), **(env or {})}
    if "stdout" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run([RUNTIME, "--root", str(root), *args], stdin=subprocess.DEVNULL,
                          env=full, timeout=60, **kwargs)


def both(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The front end alone and Python alone answer alike; the front end's answer."""
    front, python = call(root, *args, path="front"), call(root, *args, path="python")
    assert front.returncode != 3, (args, front.stderr)  # never handed over
    assert b"Traceback" not in python.stderr, python.stderr
    assert (front.returncode, front.stdout, front.stderr) == \
        (python.returncode, python.stdout, python.stderr), args
    return front


@pytest.fixture
def running(root: Path, bundle: Path) -> Iterator[int]:
    pid = run_detached(root, bundle, C, "sleep", "600")
    yield pid
    delete_reaping(root, C, [])


# ---- HOME from a hostile /etc/passwd ----

#: Not UTF-8 (\xff, \xe9 alone), a CR before the newline, a line with a NUL (C's
#: lookup stops there), and the uids' lines after them.
HOSTILE_PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
                  b"\xff\xfe:x:7:7:\xe9:/home/\xe9t\xe9:/bin/sh\n"
                  b"cr:x:8:8::/home/cr\r\n"
                  b"nul:x:9:9::/home/n\0ul:/bin/sh\n"
                  b"late:x:10:10::/home/late:/bin/sh\n")


def _hostile_passwd(bundle: Path) -> None:
    (bundle / "rootfs" / "etc" / "passwd").write_bytes(HOSTILE_PASSWD)


@pytest.mark.parametrize("uid, home", [(7, b"/home/\xe9t\xe9"), (8, b"/home/cr\r"),
                                       (0, b"/root"), (9, b"/home/n"), (10, b"/")])
def test_exec_home_from_a_passwd_that_is_not_utf8(root: Path, bundle: Path, uid: int,
                                                  home: bytes) -> None:
    """exec -u UID: HOME is the passwd's bytes (C's lookup, runc's), both ways."""
    run_detached(root, bundle, C, "sleep", "600")
    try:
        _hostile_passwd(bundle)  # the image's, once it runs
        proc = both(root, "exec", "-u", str(uid), C, "sh", "-c", "echo \"$HOME\"")
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, home + b"\n", b"")
    finally:
        delete_reaping(root, C, [])


def test_run_home_from_a_passwd_that_is_not_utf8(root: Path, bundle: Path) -> None:
    """The container's own process (create's init, Python's): the same bytes."""
    _hostile_passwd(bundle)

    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["user"] = {"uid": 7, "gid": 7}
        cfg["process"]["args"] = ["sh", "-c", "echo \"$HOME\""]
        cfg["process"]["env"] = [e for e in cfg["process"]["env"] if not e.startswith("HOME=")]

    edit(bundle, fn)
    proc = subprocess.run([RUNTIME, "--root", str(root), "run", "--bundle", str(bundle), C],
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    runtime(root, "delete", "--force", C, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"/home/\xe9t\xe9\n", b"")
