"""AppArmor/SELinux against this host's real /sys and /proc."""

from __future__ import annotations

import pytest
from _security_child import run_in_child

from tomato._sys import lsm


def _read_exec_attrs() -> list[str]:
    out = []
    for path in ("/proc/thread-self/attr/exec", "/proc/thread-self/attr/apparmor/exec"):
        try:
            with open(path) as f:
                out.append(f.read())
        except OSError as err:
            out.append(f"unreadable: {err.errno}")
    return out


def test_apparmor_disabled_host_warns_and_leaves_exec_attr_alone() -> None:
    if lsm.apparmor_enabled():
        pytest.skip("apparmor is enabled on this host: the warning path cannot be shown")

    def child() -> list[object]:
        before = _read_exec_attrs()
        warning = lsm.apply_apparmor("tomato-test-profile")
        return [warning, before == _read_exec_attrs()]

    warning, unchanged = run_in_child(child).ok()
    assert "not enabled" in warning and "tomato-test-profile" in warning
    assert unchanged


def test_selinux_disabled_host_warns_and_leaves_exec_attr_alone() -> None:
    if lsm.selinux_enabled():
        pytest.skip("selinux is enabled on this host: the warning path cannot be shown")

    def child() -> list[object]:
        before = _read_exec_attrs()
        warning = lsm.apply_selinux("system_u:system_r:container_t:s0:c1,c2")
        return [warning, before == _read_exec_attrs()]

    warning, unchanged = run_in_child(child).ok()
    assert "not enabled" in warning and "container_t" in warning
    assert unchanged

