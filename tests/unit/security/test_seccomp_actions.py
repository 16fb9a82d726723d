"""OCI action names to libseccomp action values (no library load needed)."""

from __future__ import annotations

import errno

import pytest

from tomato._sys import seccomp
from tomato.errors import InvalidArgument
from tomato.oci import seccomp_spec


def test_action_values_match_seccomp_h() -> None:
    assert seccomp.action_value("SCMP_ACT_ALLOW") == 0x7FFF0000
    assert seccomp.action_value("SCMP_ACT_LOG") == 0x7FFC0000
    assert seccomp.action_value("SCMP_ACT_KILL_PROCESS") == 0x80000000
    assert seccomp.action_value("SCMP_ACT_KILL") == 0
    assert seccomp.action_value("SCMP_ACT_KILL_THREAD") == 0
    assert seccomp.action_value("SCMP_ACT_TRAP") == 0x00030000


def test_errno_and_trace_carry_their_value_defaulting_to_eperm() -> None:
    assert seccomp.action_value("SCMP_ACT_ERRNO") == 0x00050000 | errno.EPERM
    assert seccomp.action_value("SCMP_ACT_ERRNO", 38) == 0x00050000 | 38
    assert seccomp.action_value("SCMP_ACT_ERRNO", 0) == 0x00050000
    assert seccomp.action_value("SCMP_ACT_TRACE", 7) == 0x7FF00007


def test_every_supported_spec_action_has_a_value() -> None:
    for action in seccomp_spec.ACTIONS - seccomp_spec.UNSUPPORTED_ACTIONS:
        seccomp.action_value(action)
    with pytest.raises(InvalidArgument, match="SCMP_ACT_NOTIFY"):
        seccomp.action_value("SCMP_ACT_NOTIFY")
