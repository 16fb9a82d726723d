"""engine/rootless.py's pure decisions (the real namespace is tested as users in
tests/integration/rootless): subordinate ranges, the runtime directory, the overlay
driver, the default root, the keeper's liveness by start time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tomato.engine import rootless, userns_keeper
from tomato.engine.config import default_root
from tomato.errors import InvalidArgument


def test_subid_ranges_by_name_or_uid(tmp_path: Path) -> None:
    f = tmp_path / "subuid"
    f.write_text("alice:100000:65536\n1001:300000:10\nbob:200000:65536\nbroken\n"
                 "alice:x:1\n# comment\nalice:500000:0\n")
    assert rootless.subid_ranges(str(f), "alice", 1001) == [(100000, 65536), (300000, 10),
                                                           (500000, 0)]
    assert rootless.subid_ranges(str(f), "carol", 1002) == []
    assert rootless.subid_ranges(str(tmp_path / "missing"), "alice", 1001) == []


def test_no_range_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "subuid"
    f.write_text("someone-else:100000:65536\n")
    monkeypatch.setattr(rootless, "_user", lambda: "alice")
    with pytest.raises(InvalidArgument) as err:
        rootless.subordinate_range(str(f), "uid")
    assert str(err.value) == (f"no subordinate uid range for alice in {f}: run usermod "
                              "--add-subuids 100000-165535 --add-subgids 100000-165535 alice")


def test_runtime_dir_must_be_set_and_ours(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    with pytest.raises(InvalidArgument, match="^XDG_RUNTIME_DIR is not set: "):
        rootless.run_dir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    with pytest.raises(InvalidArgument, match="No such file or directory"):
        rootless.run_dir()
    mine = tmp_path / "run"
    mine.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(mine))
    assert rootless.run_dir() == str(mine / "tomato")
    assert not (mine / "tomato").exists()  # made only by enter(), after every check
    if os.getuid() == 0:
        os.chown(mine, 1, 1)
        with pytest.raises(InvalidArgument, match="is not a directory owned by"):
            rootless.run_dir()


def test_overlay_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rootless.OVERLAY_ENV, raising=False)
    assert rootless.overlay_driver() == ("overlay" if rootless._kernel_at_least(5, 11)
                                         else "fuse-overlayfs")
    monkeypatch.setenv(rootless.OVERLAY_ENV, "fuse-overlayfs")
    assert rootless.overlay_driver() == "fuse-overlayfs"
    monkeypatch.setenv(rootless.OVERLAY_ENV, "btrfs")
    with pytest.raises(InvalidArgument, match="overlay or fuse-overlayfs"):
        rootless.overlay_driver()


def test_default_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOMATO_ROOT", "/x")
    assert default_root() == "/x"
    monkeypatch.delenv("TOMATO_ROOT")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_root() == "/var/lib/tomato"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", "/data")
    assert default_root() == "/data/tomato"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", "/home/alice")
    assert default_root() == "/home/alice/.local/share/tomato"


def test_keeper_alive_by_pid_and_start_time(tmp_path: Path) -> None:
    assert userns_keeper.alive(str(tmp_path)) is None  # no pid file
    pid_file = tmp_path / userns_keeper.PID_FILE
    start = userns_keeper._start_time(os.getpid())
    pid_file.write_text(f"{os.getpid()} {start}\n")
    assert userns_keeper.alive(str(tmp_path)) == os.getpid()
    pid_file.write_text(f"{os.getpid()} 1\n")  # a reused pid: another start time
    assert userns_keeper.alive(str(tmp_path)) is None
    for junk in ("", "x y", "1 1", "-5 3"):
        pid_file.write_text(junk)
        assert userns_keeper.alive(str(tmp_path)) is None
