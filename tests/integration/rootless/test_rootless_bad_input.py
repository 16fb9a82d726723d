"""Bad input for a user's engine (issue 18): each a one-line error that says what to
do, exit 125, nothing left behind."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.rootless import RootlessUser, make_user


@pytest.fixture
def user_without_subids(storage: Path) -> Iterator[RootlessUser]:
    with make_user(storage, "n", subids=False) as made:
        yield made


def _nothing_made(u: RootlessUser) -> None:
    assert os.listdir(u.home) == []
    assert os.listdir(u.run_dir) == []
    assert u.pids() == []


def test_no_subordinate_ids(user_without_subids: RootlessUser) -> None:
    u = user_without_subids
    proc = u.tomato("run", "--rm", "--network", "none", "busybox", "true", check=False)
    assert (proc.returncode, proc.stdout) == (125, "")
    assert proc.stderr == (f"tomato: no subordinate uid range for {u.name} in /etc/subuid: run "
                           f"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 "
                           f"{u.name}\n")
    _nothing_made(u)


def test_no_newuidmap(user: RootlessUser) -> None:
    empty = user.home.parent / f"empty-path-{user.name}"
    empty.mkdir()
    try:
        proc = user.tomato("images", check=False, PATH=str(empty))
    finally:
        empty.rmdir()
    assert (proc.returncode, proc.stdout) == (125, "")
    assert proc.stderr == ("tomato: newuidmap not found in PATH: a rootless engine needs it "
                           "(install the uidmap package: apt-get install uidmap)\n")
    _nothing_made(user)


def test_runtime_dir_unset_or_not_ours(user: RootlessUser) -> None:
    proc = user.tomato("ps", check=False, XDG_RUNTIME_DIR=None)
    assert (proc.returncode, proc.stdout) == (125, "")
    assert proc.stderr.startswith("tomato: XDG_RUNTIME_DIR is not set: ")
    assert len(proc.stderr.splitlines()) == 1
    proc = user.tomato("ps", check=False, XDG_RUNTIME_DIR="/tmp")
    assert (proc.returncode, proc.stdout) == (125, "")
    assert proc.stderr == (f"tomato: XDG_RUNTIME_DIR=/tmp is not a directory owned by "
                           f"{user.name} (uid {user.uid}): set it to one of your own "
                           f"(mkdir -m 700)\n")
    _nothing_made(user)
    assert not os.path.exists("/tmp/tomato")  or os.stat("/tmp/tomato").st_uid != user.uid


def test_full_home(user: RootlessUser, workdir: Path, busybox_tar: Path) -> None:
    """HOME on a small tmpfs: the import fails in one line and leaves no layer."""
    home = workdir / "small-home"
    home.mkdir()
    os.chmod(workdir, 0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o",
                    f"size=512k,mode=0700,uid={user.uid},gid={user.gid}", "small", str(home)],
                   check=True)
    try:
        proc = user.tomato("import", str(busybox_tar), "busybox:latest", check=False,
                           HOME=str(home))
        assert proc.returncode != 0 and proc.stdout == ""
        errors = [line for line in proc.stderr.splitlines() if not line.startswith("WARN")]
        assert errors == [f"tomato: no space left on device while importing {busybox_tar}"]
        root = home / ".local" / "share" / "tomato"
        images = user.tomato("images", "-q", check=False, HOME=str(home))
        assert images.stdout == ""
        left = [p for p in (root / "snapshots").glob("**/fs/*")] if root.exists() else []
        assert left == []
    finally:
        subprocess.run(["umount", str(home)], check=True)
