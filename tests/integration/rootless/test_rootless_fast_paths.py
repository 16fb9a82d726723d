"""The fast paths as a user (issue 18): from a system install (scripts/install.sh
--system into a temporary prefix), the C client hands a user's commands to the
user's own fork server, which stays outside the user namespace while each command
it forks joins it; a detached container's monitor becomes tomato-shim."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers.rootless import RootlessUser

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_client_fork_server_and_shim_as_a_user(user: RootlessUser, busybox_tar: Path,
                                               workdir: Path) -> None:
    os.chmod(workdir, 0o755)
    prefix, bindir = workdir / "prefix", workdir / "bin"
    install = subprocess.run([str(REPO / "scripts" / "install.sh"), "--system", "--prefix",
                              str(prefix), "--bin-dir", str(bindir)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    tomato = str(bindir / "tomato")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(user.command([tomato, *args], user.env()), capture_output=True,
                              text=True, timeout=60, cwd="/", stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
        return proc

    run("import", str(busybox_tar), "busybox:latest")
    version = run("version").stdout
    assert f"Root:          {user.data_root}" in version
    # a command that does not join the namespace (version) leaves the server
    for _ in range(100):  # bounded: it is started in the background
        if "Fork server:   running" in run("version").stdout:
            break
    assert "Fork server:   running" in run("version").stdout
    cid = run("run", "-d", "--network", "none", "busybox", "sleep", "100").stdout.strip()
    assert run("exec", cid, "id", "-u").stdout == "0\n"
    out = run("run", "--rm", "--network", "none", "busybox", "cat",
              "/proc/self/uid_map").stdout.split()
    assert out == ["0", str(user.uid), "1", "1", str(user.sub_start), "65536"]
    shims = [pid for pid in user.pids() if _argv(pid)[:1] == [str(prefix / "bin" /
                                                                  "tomato-shim")]]
    assert any(cid in " ".join(_argv(pid)) for pid in shims), [_argv(p) for p in user.pids()]
    # the server itself is outside the user's namespace, the shim inside
    # (by the pid its lock names: a command's child of the server, still finishing,
    # carries the server's argv too)
    lock = Path(user.data_root) / "locks" / "cli-server.lock"
    server = [int(lock.read_text().split()[0])]
    assert server[0] in user.pids() and "serve_commands" in " ".join(_argv(server[0]))
    own = os.readlink("/proc/self/ns/user")
    assert os.readlink(f"/proc/{server[0]}/ns/user") == own
    assert all(os.readlink(f"/proc/{pid}/ns/user") != own for pid in shims)
    run("rm", "-f", cid)


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []
