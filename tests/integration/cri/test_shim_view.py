"""The OCI runtime as containerd's runc shim sees it: every verb the shim calls on a
container that has exited, or that is gone, answered with runc's exit code and the
words the shim matches (pkg/process/utils.go checkKillError, init.go Delete):

- ``kill --all ID 9`` after the init exited: exit 0.  The shim runs it after every
  exit and retries the exit's handling while it fails; with exit 1 every CRI
  StopContainer and RemovePodSandbox hung.
- ``kill ID SIG`` of a stopped container: exit 1, "container not running".
- any verb on a container that is gone: exit 1, "does not exist".

Each case runs with runc and tomato-runtime side by side, called as the shim
calls them (``--root R --log B/log.json --log-format json``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOMATO_RUNTIME = str(Path(sys.executable).parent / "tomato-runtime")


class ShimCalls:
    """One runtime called the way containerd-shim-runc-v2 calls it."""

    def __init__(self, binary: str, workdir: Path, bundle: Path) -> None:
        self.binary = binary
        self.root = workdir / f"root-{Path(binary).name}"
        self.root.mkdir()
        self.bundle = bundle
        self.log = bundle / "log.json"

    def call(self, *args: str) -> tuple[int, str]:
        """(exit code, the last message the runtime logged or printed)."""
        self.log.write_text("")
        # A file, not a pipe, for the output: the container's init inherits it, and a
        # pipe would keep `create` from returning until the container exits.
        out = self.bundle / "output"
        with open(out, "w+") as f:
            r = subprocess.run([self.binary, "--root", str(self.root), "--log", str(self.log),
                                "--log-format", "json", *args], stdout=f, stderr=f,
                               timeout=30, stdin=subprocess.DEVNULL)
        lines = [ln for ln in self.log.read_text().splitlines() if ln.strip()]
        last = json.loads(lines[-1])["msg"] if lines else out.read_text().strip()
        return r.returncode, last

    def exited(self, cid: str) -> None:
        """Create and start ``cid`` (runs /bin/true) and wait until it has exited."""
        assert self.call("create", "--bundle", str(self.bundle), cid)[0] == 0
        assert self.call("start", cid)[0] == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = subprocess.run([self.binary, "--root", str(self.root), "state", cid],
                                 capture_output=True, text=True, timeout=30).stdout
            if json.loads(out)["status"] == "stopped":
                return
            time.sleep(0.02)
        raise AssertionError(f"{cid} did not stop under {self.binary}")


@pytest.fixture
def runtimes(workdir: Path, bundle: Path) -> list[ShimCalls]:
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed: nothing to compare with (apt-get install runc)")
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["true"]
    (bundle / "config.json").write_text(json.dumps(config))
    return [ShimCalls(runc, workdir, bundle), ShimCalls(TOMATO_RUNTIME, workdir, bundle)]


# (verb's arguments after the id's place is filled, exit code, words the shim matches)
STOPPED_CASES = [
    (["kill", "--all", "{id}", "9"], 0, ""),
    (["kill", "--all", "{id}", "KILL"], 0, ""),
    (["kill", "{id}", "9"], 1, "container not running"),
    (["kill", "{id}", "15"], 1, "container not running"),
    (["state", "{id}"], 0, ""),
    (["delete", "{id}"], 0, ""),
]


@pytest.mark.parametrize("argv,code,words", STOPPED_CASES,
                         ids=[" ".join(c[0]) for c in STOPPED_CASES])
def test_verbs_on_an_exited_container(runtimes: list[ShimCalls], argv: list[str], code: int,
                                      words: str) -> None:
    for rt in runtimes:
        cid = f"exited-{Path(rt.binary).name}"
        rt.exited(cid)
        try:
            got, msg = rt.call(*[a.replace("{id}", cid) for a in argv])
            assert got == code, f"{rt.binary} {argv}: exit {got} ({msg}), runc's is {code}"
            assert words in msg, f"{rt.binary} {argv}: {msg!r} lacks {words!r}"
        finally:
            rt.call("delete", "--force", cid)


GONE_CASES = [
    (["kill", "--all", "gone", "9"], 1, "does not exist"),
    (["kill", "gone", "9"], 1, "does not exist"),
    (["delete", "gone"], 1, "does not exist"),
    (["delete", "--force", "gone"], 0, ""),
    (["state", "gone"], 1, "does not exist"),
    (["start", "gone"], 1, "does not exist"),
    (["pause", "gone"], 1, "does not exist"),
]


@pytest.mark.parametrize("argv,code,words", GONE_CASES,
                         ids=[" ".join(c[0]) for c in GONE_CASES])
def test_verbs_on_a_container_that_is_gone(runtimes: list[ShimCalls], argv: list[str],
                                           code: int, words: str) -> None:
    for rt in runtimes:
        got, msg = rt.call(*argv)
        assert got == code, f"{rt.binary} {argv}: exit {got} ({msg}), runc's is {code}"
        assert words in msg, f"{rt.binary} {argv}: {msg!r} lacks {words!r}"
