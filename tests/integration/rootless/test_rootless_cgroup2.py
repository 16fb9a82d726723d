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


def _root_is_initramfs() -> bool:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            return line.split(" - ")[1].split()[0] == "rootfs"
    return False


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
        enter = f'echo $$ > {session}/cgroup.procs && exec "$@"'
        user.prefix = ["sh", "-c", enter, "sh"]
        if _root_is_initramfs():
            # The guest's / is its initramfs, which pivot_root cannot leave (DESIGN);
            # root's engine there would need --no-pivot.  Give the user's commands the
            # root every installed system has: the same tree, moved onto / and chrooted
            # into (switch_root's way), in a mount namespace of their own.
            switch = ("mkdir -p /run/tomato-newroot && mount --rbind / /run/tomato-newroot "
                      "&& cd /run/tomato-newroot && mount --move . / && "
                      f"exec chroot . sh -c '{enter}' sh \"$@\"")
            user.prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c", switch,
                           "sh"]
        yield top
    finally:
        end_processes(user)
        _remove_tree(top)


def test_limits_in_a_delegated_subtree(user: RootlessUser, delegated: Path,
                                       busybox_tar: Path) -> None:
    u = user
    u.tomato("import", str(busybox_tar), "busybox:latest")
    run = u.tomato("run", "-d", "--name", "limited", "--network", "none", "-m", "64m",
                   "--pids-limit", "10", "--cpus", "0.5", "busybox", "sleep", "100")
    assert "Resource limits" not in run.stderr and "cgroup v1" not in run.stderr
    cid = run.stdout.strip()
    cgroup = delegated / "tomato" / cid
    assert (cgroup / "memory.max").read_text() == "67108864\n"
    assert (cgroup / "pids.max").read_text() == "10\n"
    assert (cgroup / "cpu.max").read_text() == "50000 100000\n"
    assert (cgroup / "cgroup.procs").read_text().split()  # the container's init
    u.tomato("rm", "-f", "limited")
    assert not cgroup.exists()
