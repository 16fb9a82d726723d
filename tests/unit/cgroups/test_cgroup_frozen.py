"""A v1 container's freezer read as its cgroup goes away: not frozen, never an error
(`tomato stop` of 100 containers at once failed "No such device" when a container's
monitor removed its cgroup between the status check's open and read of freezer.state)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from tomato.cgroups import v1
from tomato.cgroups.v1 import V1Manager


def _manager(tmp_path: Path) -> V1Manager:
    freezer = tmp_path / "freezer"
    freezer.mkdir()
    (freezer / "freezer.state").write_text("FROZEN\n")
    return V1Manager({"freezer": str(freezer)}, None, {}, "c", "c")


def test_frozen_reads_the_freezer(tmp_path: Path) -> None:
    assert _manager(tmp_path).frozen()


def test_a_cgroup_removed_while_read_is_not_frozen(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    mgr = _manager(tmp_path)

    def dying(path: str) -> str:  # what the kernel answers for a removed cgroup's file
        raise OSError(errno.ENODEV, "No such device", path)

    monkeypatch.setattr(v1, "read", dying)
    assert mgr.frozen() is False


def test_other_errors_still_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mgr = _manager(tmp_path)

    def denied(path: str) -> str:
        raise OSError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(v1, "read", denied)
    with pytest.raises(PermissionError):
        mgr.frozen()
