"""User-mode networking (tomato.network.usermode) as an unprivileged user: slirp4netns
gives a network namespace the user owns its outbound path and forwarded host ports.

The user (nobody) runs netdriver.py inside ``unshare -U -r -m``: its own user and
mount namespaces, as the engine's keeper gives them.  Traffic stays on this machine:
the only peer is a server this test runs on the host's 127.0.0.1, reached from inside
through slirp's gateway 10.0.2.2 (only when host loopback is allowed), and a server
inside the namespace reached through a forwarded port of the host's 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import free_port

SRC = Path(__file__).resolve().parents[3] / "src"
DRIVER = Path(__file__).with_name("netdriver.py")
NOBODY = 65534

pytestmark = pytest.mark.skipif(shutil.which("slirp4netns") is None,
                                reason="slirp4netns is not installed")


@pytest.fixture
def user_tree(workdir: Path) -> tuple[Path, Path]:
    """A copy of src/ the user can read, and a directory of its own."""
    src = workdir / "src"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    own = workdir / "own"
    own.mkdir()
    os.chown(own, NOBODY, NOBODY)
    subprocess.run(["chmod", "-R", "a+rX", str(workdir)], check=True)
    return src, own


def _drive(src: Path, own: Path, host_port: int, loopback_port: int,
           allow: bool) -> dict[str, object]:
    proc = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--reset-env",
         "unshare", "-U", "-r", "-m", "/usr/bin/python3", "-I", str(DRIVER), str(src),
         str(own), str(host_port), str(loopback_port), "1" if allow else "0"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def test_slirp4netns_forwards_a_port_and_hides_the_host_loopback(
        user_tree: tuple[Path, Path], host_server: int) -> None:
    src, own = user_tree
    port = free_port()
    out = _drive(src, own, port, host_server, allow=False)
    # Outbound through slirp, but the host's 127.0.0.1 is not 10.0.2.2 (podman's default).
    assert out["gateway"].startswith("error: "), out
    # The host's 127.0.0.1:PORT (the user's own bind) reaches port 80 inside.
    assert out["forwarded"] == "hello from port 80\n"
    assert out["taken"] == f"Bind for 127.0.0.1:{port} failed: port is already allocated"
    assert out["resolv"] == "nameserver 10.0.2.3\n"
    assert out["stopped"] is True
    assert not (own / "slirp.sock").exists()


def test_slirp4netns_reaches_the_host_loopback_only_when_allowed(
        user_tree: tuple[Path, Path], host_server: int) -> None:
    src, own = user_tree
    out = _drive(src, own, free_port(), host_server, allow=True)
    assert out["gateway"] == "host loopback\n"
    assert out["forwarded"] == "hello from port 80\n"
