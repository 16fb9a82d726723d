"""What a user's engine must never give (issue 18's Security), checked as a second
unprivileged user: another user's containers and storage out of reach, no ids
outside one's own ranges, a container's root is the user outside, and no host
file the user could not read."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from helpers.rootless import SYSTEM_PYTHON, RootlessUser


def _init_pid(u: RootlessUser, name: str) -> int:
    inspect = u.tomato("inspect", "--format", "{{.State.Pid}}", name).stdout
    return int(inspect.strip())


def test_another_user_cannot_see_or_touch(busybox_user: RootlessUser,
                                          other_user: RootlessUser, busybox_tar: Path) -> None:
    a, b = busybox_user, other_user
    a.tomato("run", "-d", "--name", "mine", "--network", "none", "busybox", "sleep", "100")
    pid = _init_pid(a, "mine")
    # a's container runs as a outside (root inside is the user; escaping it is still a)
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert uids == [str(a.uid)] * 4
    # b's own engine knows nothing of it
    b.tomato("import", str(busybox_tar), "busybox:latest")
    assert b.tomato("ps", "-aq").stdout == ""
    # a's storage and runtime directories are closed to b
    for path in (a.data_root, a.run_dir / "tomato", a.home):
        probe = b.sh(f"ls {path}", check=False)
        assert probe.returncode != 0 and "Permission denied" in probe.stderr, path
    # b pointing its engine at a's root: one line, nothing done
    proc = b.tomato("--root", str(a.data_root), "ps", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"tomato: permission denied: {a.data_root}")
    assert len(proc.stderr.splitlines()) == 1
    # nor can b signal a's container
    kill = b.sh(f"kill -9 {pid}", check=False)
    assert kill.returncode != 0
    assert Path(f"/proc/{pid}").exists()
    # and b cannot join a's namespace (the keeper's) to get at it
    keeper = a.keeper_pid()
    enter = b.sh(f"nsenter --user --mount -t {keeper} true", check=False)
    assert enter.returncode != 0
    a.tomato("rm", "-f", "mine")


FORGE = """
import ctypes, os, subprocess, sys
r, w = os.pipe()
hold_r, hold_w = os.pipe()
pid = os.fork()
if pid == 0:
    ctypes.CDLL(None, use_errno=True).unshare(0x10000000)
    os.write(w, b"u")
    os.read(hold_r, 1)  # never answered: killed by the parent
    os._exit(0)
os.read(r, 1)
proc = subprocess.run(["newuidmap", str(pid), "0", str(os.getuid()), "1", "1", sys.argv[1],
                       "65536"], capture_output=True, text=True)
os.kill(pid, 9)
os.waitpid(pid, 0)
print(proc.returncode)
print(proc.stderr.strip())
"""


def test_ids_outside_ones_ranges_cannot_be_mapped(user: RootlessUser,
                                                  other_user: RootlessUser) -> None:
    """newuidmap (setuid) checks /etc/subuid itself: b cannot take a's range."""
    a, b = user, other_user
    assert a.sub_start != b.sub_start
    proc = subprocess.run(b.command([SYSTEM_PYTHON, "-I", "-c", FORGE, str(a.sub_start)],
                                    b.env()), capture_output=True, text=True, timeout=30)
    code, _, why = proc.stdout.partition("\n")
    assert code != "0", proc.stdout
    assert "newuidmap" in why
    # its own range, the same way, is allowed (the test can fail only on the range)
    own = subprocess.run(b.command([SYSTEM_PYTHON, "-I", "-c", FORGE, str(b.sub_start)],
                                   b.env()), capture_output=True, text=True, timeout=30)
    assert own.stdout.split("\n")[0] == "0", own.stdout + own.stderr


def test_host_files_the_user_cannot_read(busybox_user: RootlessUser, workdir: Path) -> None:
    u = busybox_user
    secret_dir = workdir / "secrets"
    secret_dir.mkdir()
    os.chmod(workdir, 0o755)
    os.chmod(secret_dir, 0o755)
    secret = secret_dir / "secret"
    secret.write_text("the host's secret\n")
    os.chmod(secret, 0o600)  # root's
    proc = u.tomato("run", "--rm", "--network", "none", "-v", f"{secret}:/s", "busybox",
                    "cat", "/s", check=False)
    assert "the host's secret" not in proc.stdout
    assert proc.returncode != 0
    assert "Permission denied" in proc.stderr or "permission denied" in proc.stderr
    # /root (0700): the mount itself is refused, in one line
    if os.stat("/root").st_mode & 0o007 == 0:
        proc = u.tomato("run", "--rm", "--network", "none", "-v", "/root:/r", "busybox",
                        "ls", "/r", check=False)
        assert proc.returncode != 0
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
    assert u.tomato("ps", "-aq").stdout == ""
