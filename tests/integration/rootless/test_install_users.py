"""`scripts/install.sh --system`: Tomato installed where every user can run it.

The development venv's interpreter lives under /root (unreadable by others), so the
system install is a venv made with /usr/bin/python3 and the package copied into it,
with symlinks in a bin directory.  The tests install into a temporary prefix and bin
directory (never /opt/tomato or /usr/local/bin of this host) and run the installed
programs as an unprivileged user (nobody), through the symlinks.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from helpers.rootless import RootlessUser

REPO = Path(__file__).resolve().parents[3]
NOBODY = 65534


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups", "--reset-env", *argv],
                          capture_output=True, text=True, timeout=60)


def _install(*args: str) -> subprocess.CompletedProcess[str]:
    """install.sh under root's tightest umask: what it installs must be readable anyway."""
    return subprocess.run(["sh", "-c", 'umask 077 && exec "$@"', "sh",
                           str(REPO / "scripts" / "install.sh"), *args],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_system_install_is_run_by_an_unprivileged_user(workdir: Path) -> None:
    os.chmod(workdir, 0o755)  # a temp dir is 0700: the user must reach the prefix
    prefix, bindir = workdir / "opt-tomato", workdir / "bin"
    proc = _install("--system", "--prefix", str(prefix), "--bin-dir", str(bindir))
    assert proc.returncode == 0, proc.stderr
    # The interpreter is the system's, not root's venv's.
    assert os.path.realpath(prefix / "bin" / "python3").startswith("/usr/bin/python3")
    for prog in ("tomato", "tomato-runtime"):
        assert os.readlink(bindir / prog) == str(prefix / "bin" / prog)
    version = _as_nobody(str(bindir / "tomato"), "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("Tomato version "), version.stdout
    assert "shim yes" in version.stdout and "runtime front yes" in version.stdout
    runtime = _as_nobody(str(bindir / "tomato-runtime"), "--version")
    assert runtime.returncode == 0, runtime.stderr
    assert runtime.stdout.startswith("tomato-runtime version "), runtime.stdout
    # The Python side of the runtime (the front hands a user's commands to it) through
    # the symlink too: a command the front never answers.
    spec = _as_nobody(str(bindir / "tomato-runtime"), "features")
    assert spec.returncode == 0 and '"ociVersionMin"' in spec.stdout, spec.stderr
    # Every file of the install is readable by others whatever root's umask was.
    unreadable = [p for p in prefix.rglob("*")
                  if not p.is_symlink() and not (p.stat().st_mode & 0o004)]
    assert unreadable == []
    # A second run reinstalls in place (idempotent).
    again = _install("--system", "--prefix", str(prefix), "--bin-dir", str(bindir))
    assert again.returncode == 0, again.stderr
    assert _as_nobody(str(bindir / "tomato"), "--version").returncode == 0


def test_system_install_refuses_bad_arguments(workdir: Path) -> None:
    bad = _install("--system", "--prefix", "relative/dir", "--bin-dir", str(workdir / "b"))
    assert bad.returncode == 2
    assert bad.stderr.strip() == "install.sh: --prefix must be an absolute path: relative/dir"
    assert not (workdir / "b").exists() and not Path("relative").exists()
    unknown = _install("--sytem")
    assert unknown.returncode == 2 and unknown.stderr.startswith("usage: install.sh")


@pytest.mark.slow
def test_a_users_commands_go_through_a_fork_server(workdir: Path, user: RootlessUser,
                                                   busybox_tar: Path) -> None:
    """The installed `tomato` (the C client) as a rootless user: the fork server stays
    in the user's own namespaces (where the client is) and each command it forks joins
    the user namespace, so the second command on is served, with its exit code."""
    os.chmod(workdir, 0o755)
    prefix, bindir = workdir / "opt-tomato", workdir / "bin"
    proc = _install("--system", "--prefix", str(prefix), "--bin-dir", str(bindir))
    assert proc.returncode == 0, proc.stderr
    tomato = str(bindir / "tomato")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(user.command([tomato, *args], user.env()), capture_output=True,
                              text=True, timeout=120, cwd="/", stdin=subprocess.DEVNULL)

    assert run("import", str(busybox_tar), "busybox:latest").returncode == 0
    assert run("ps").returncode == 0  # leaves the server (the root exists now)
    for _ in range(100):  # bounded: the server imports the engine before it listens
        version = run("version").stdout
        if "this command was served by it" in version:
            break
        time.sleep(0.1)
    assert "this command was served by it" in version, version
    out = run("run", "--rm", "--network", "none", "busybox", "sh", "-c", "id -u; exit 3")
    assert (out.returncode, out.stdout) == (3, "0\n"), out.stderr
    assert run("ps", "-aq").stdout == ""
