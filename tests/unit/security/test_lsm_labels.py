"""AppArmor/SELinux label formatting, and detection/apply against a fake /sys and /proc."""

from __future__ import annotations

from pathlib import Path

import pytest

from tomato._sys import lsm
from tomato.errors import InvalidArgument, PermissionDenied


def _fake_sys(root: Path, *, apparmor: str | None = None, selinux: bool = False) -> str:
    if apparmor is not None:
        (root / "kernel/security/apparmor").mkdir(parents=True)
        params = root / "module/apparmor/parameters"
        params.mkdir(parents=True)
        (params / "enabled").write_text(apparmor + "\n")
    if selinux:
        (root / "fs/selinux").mkdir(parents=True)
        (root / "fs/selinux/enforce").write_text("1")
    return str(root)


def _fake_proc(root: Path, *, per_lsm: bool = True) -> tuple[str, Path]:
    attr = root / "thread-self/attr"
    attr.mkdir(parents=True)
    (attr / "exec").write_text("")
    if per_lsm:
        (attr / "apparmor").mkdir()
        (attr / "apparmor/exec").write_text("")
    return str(root), attr


def test_apparmor_exec_command() -> None:
    assert lsm.apparmor_exec_command("docker-default") == "exec docker-default"
    for bad in ("", " padded", "two\nlines", "nul\0"):
        with pytest.raises(InvalidArgument, match="apparmor profile"):
            lsm.apparmor_exec_command(bad)


@pytest.mark.parametrize("label", ["system_u:system_r:container_t:s0:c1,c2",
                                   "system_u:system_r:container_t",
                                   "u:r:t:s0-s0:c0.c1023"])
def test_valid_selinux_labels(label: str) -> None:
    assert lsm.validate_selinux_label(label) == label


@pytest.mark.parametrize("label", ["container_t", "a:b", "a::c", "a:b:c:", "a:b:c d"])
def test_invalid_selinux_labels(label: str) -> None:
    with pytest.raises(InvalidArgument, match="selinux label"):
        lsm.validate_selinux_label(label)


def test_selinux_mount_option() -> None:
    assert (lsm.selinux_mount_option("system_u:object_r:container_file_t:s0:c1,c2")
            == 'context="system_u:object_r:container_file_t:s0:c1,c2"')


def test_detection_against_fake_sysfs(tmp_path: Path) -> None:
    assert not lsm.apparmor_enabled(_fake_sys(tmp_path / "none"))
    assert not lsm.selinux_enabled(str(tmp_path / "none"))
    assert lsm.apparmor_enabled(_fake_sys(tmp_path / "yes", apparmor="Y"))
    assert not lsm.apparmor_enabled(_fake_sys(tmp_path / "no", apparmor="N"))
    assert lsm.selinux_enabled(_fake_sys(tmp_path / "se", selinux=True))


def test_apply_apparmor_writes_exec_command(tmp_path: Path) -> None:
    sys_dir = _fake_sys(tmp_path / "sys", apparmor="Y")
    proc, attr = _fake_proc(tmp_path / "proc")
    assert lsm.apply_apparmor("tomato-default", sys_dir=sys_dir, proc_dir=proc) is None
    assert (attr / "apparmor/exec").read_text() == "exec tomato-default"
    assert (attr / "exec").read_text() == ""


def test_apply_apparmor_falls_back_to_shared_attr(tmp_path: Path) -> None:
    sys_dir = _fake_sys(tmp_path / "sys", apparmor="Y")
    proc, attr = _fake_proc(tmp_path / "proc", per_lsm=False)
    assert lsm.apply_apparmor("p", sys_dir=sys_dir, proc_dir=proc) is None
    assert (attr / "exec").read_text() == "exec p"


def test_apply_apparmor_without_attr_files_is_an_error(tmp_path: Path) -> None:
    sys_dir = _fake_sys(tmp_path / "sys", apparmor="Y")
    with pytest.raises(PermissionDenied, match="apparmor profile"):
        lsm.apply_apparmor("p", sys_dir=sys_dir, proc_dir=str(tmp_path / "noproc"))


def test_apply_selinux_writes_label(tmp_path: Path) -> None:
    sys_dir = _fake_sys(tmp_path / "sys", selinux=True)
    proc, attr = _fake_proc(tmp_path / "proc")
    label = "system_u:system_r:container_t:s0:c1,c2"
    assert lsm.apply_selinux(label, sys_dir=sys_dir, proc_dir=proc) is None
    assert (attr / "exec").read_text() == label


def test_disabled_host_gives_warnings_and_writes_nothing(tmp_path: Path) -> None:
    sys_dir = _fake_sys(tmp_path / "sys")
    proc, attr = _fake_proc(tmp_path / "proc")
    warning = lsm.apply_apparmor("docker-default", sys_dir=sys_dir, proc_dir=proc)
    assert warning and "apparmor" in warning and "docker-default" in warning
    warning = lsm.apply_selinux("u:r:t:s0", sys_dir=sys_dir, proc_dir=proc)
    assert warning and "selinux" in warning and "u:r:t:s0" in warning
    assert (attr / "exec").read_text() == "" and (attr / "apparmor/exec").read_text() == ""


def test_nothing_asked_nothing_done(tmp_path: Path) -> None:
    assert lsm.apply_apparmor(None, sys_dir=str(tmp_path)) is None
    assert lsm.apply_apparmor("", sys_dir=str(tmp_path)) is None
    assert lsm.apply_selinux(None, sys_dir=str(tmp_path)) is None


def test_bad_label_is_refused_even_when_disabled(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        lsm.apply_selinux("nonsense", sys_dir=str(tmp_path))
    with pytest.raises(InvalidArgument):
        lsm.apply_apparmor("bad\nname", sys_dir=str(tmp_path))
