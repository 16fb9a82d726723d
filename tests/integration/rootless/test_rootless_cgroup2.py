"""A user's limits on cgroup v2 with a delegated subtree (issue 18): root makes a
directory for the user and chowns it as systemd's user@UID.service delegation does
(the directory, its cgroup.procs, cgroup.threads, cgroup.subtree_control); the
user's commands run in a leaf below it (session/), the containers go beside it
(tomato/ID) with their limits.  Runs in the cgroup v2 guest lane (tools/cgroup2-vm);
this machine's cgroup v1 cannot be delegated (test_rootless_engine.py checks the
warning there)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.rootless import RootlessUser, end_processes

CGROUP2 = Path("/sys/fs/cgroup")

pytestmark = pytest.mark.skipif(not (CGROUP2 / "cgroup.controllers").exists(),
                                reason="cgroup v1 here: the cgroup v2 guest lane runs this")


def _remove_tree(path: Path) -> None:
    for _ in range(50):  # bounded: a dying process leaves its cgroup a moment later
        for d in sorted((p for p in path.rglob("*") if p.is_dir()),
                        key=lambda p: -len(p.parts)):
            try:
                d.rmdir()
            except OSError:
                pass
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            import time

            time.sleep(0.05)


@pytest.fixture
def delegated(user: RootlessUser) -> Iterator[Path]:
    top = CGROUP2 / f"tomato-rootless-{os.getpid()}"
    available = (CGROUP2 / "cgroup.controllers").read_text().split()
    for ctrl in ("cpu", "memory", "pids"):
        if ctrl in available:
            (CGROUP2 / "cgroup.subtree_control").write_text(f"+{ctrl}")
    top.mkdir()
    try:
        session = top / "session"
        session.mkdir()
        for path in (top, top / "cgroup.procs", top / "cgroup.threads",
                     top / "cgroup.subtree_control", session, session / "cgroup.procs",
                     session / "cgroup.threads"):
            os.chown(path, user.uid, user.gid)
        user.prefix = ["sh", "-c", f'echo $$ > {session}/cgroup.procs && exec "$@"', "sh"]
        yield top
    finally:
        end_processes(user)
        _remove_tree(top)


def test_limits_in_a_delegated_subtree(user: RootlessUser, delegated: Path,
                                       busybox_tar: Path) -> None:
    u = user
    u.tomato("import", str(busybox_tar), "busybox:latest")
    info = u.tomato("info").stdout
    assert f"  Cgroups: v2 (delegated: {delegated})" in info.splitlines()
    run = u.tomato("run", "-d", "--name", "limited", "--network", "none", "-m", "64m",
                   "--pids-limit", "10", "--cpus", "0.5", "busybox", "sleep", "100")
    assert "Resource limits" not in run.stderr and "cgroup v1" not in run.stderr
    cid = run.stdout.strip()
    cgroup = delegated / "tomato" / cid
    assert (cgroup / "memory.max").read_text() == "67108864\n"
    assert (cgroup / "pids.max").read_text() == "10\n"
    assert (cgroup / "cpu.max").read_text() == "50000 100000\n"
    pid = int(u.tomato("inspect", "--format", "{{.State.Pid}}", "limited").stdout)
    assert str(pid) in (cgroup / "cgroup.procs").read_text().split()
    # inside: its own cgroup namespace, the limit at the top of its cgroup2 mount
    assert u.tomato("exec", "limited", "cat", "/sys/fs/cgroup/pids.max").stdout == "10\n"
    u.tomato("rm", "-f", "limited")
    assert not cgroup.exists()
