"""OCI linux.seccomp parsing and validation (pure logic, no libseccomp)."""

from __future__ import annotations

from typing import Any

import pytest

from tomato.errors import InvalidArgument
from tomato.oci import seccomp_spec
from tomato.oci.seccomp_spec import SeccompArg, SeccompSyscall

FULL: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X86"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"},
    ],
}


def _with(**changes: Any) -> dict[str, Any]:
    return {**FULL, **changes}


def _one(rule: dict[str, Any]) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}


def test_parse_full_spec() -> None:
    spec = seccomp_spec.parse(FULL)
    assert spec is not None
    assert spec.default_action == "SCMP_ACT_ERRNO" and spec.default_errno_ret == 1
    assert spec.architectures == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86")  # de-duplicated
    assert spec.flags == ("SECCOMP_FILTER_FLAG_LOG",)
    assert spec.syscalls[0] == SeccompSyscall(names=("read", "write"), action="SCMP_ACT_ALLOW")
    assert spec.syscalls[1].args == (SeccompArg(index=0, value=0xFFFFFFFF, op="SCMP_CMP_EQ"),)
    assert spec.syscalls[2].errno_ret == 38
    assert spec.syscalls[3].errno_ret is None


def test_none_means_no_filter() -> None:
    assert seccomp_spec.parse(None) is None


def test_round_trip_to_oci() -> None:
    spec = seccomp_spec.parse(FULL)
    assert spec is not None
    assert seccomp_spec.parse(seccomp_spec.to_oci(spec)) == spec


@pytest.mark.parametrize("action", ["SCMP_ACT_FOO", "scmp_act_allow", "", None, 3])
def test_unknown_default_action_is_named(action: Any) -> None:
    with pytest.raises(InvalidArgument, match="unknown seccomp action") as info:
        seccomp_spec.parse(_with(defaultAction=action))
    assert repr(action) in str(info.value)


def test_unknown_rule_action_is_named() -> None:
    with pytest.raises(InvalidArgument, match="SCMP_ACT_EXPLODE"):
        seccomp_spec.parse(_one({"names": ["read"], "action": "SCMP_ACT_EXPLODE"}))


def test_notify_is_refused_as_not_supported() -> None:
    with pytest.raises(InvalidArgument, match="SCMP_ACT_NOTIFY.*not supported"):
        seccomp_spec.parse(_one({"names": ["read"], "action": "SCMP_ACT_NOTIFY"}))


def test_listener_path_is_refused_as_not_supported() -> None:
    with pytest.raises(InvalidArgument, match="listenerPath is not supported"):
        seccomp_spec.parse(_with(listenerPath="/run/agent.sock"))


def test_unknown_architecture_is_named() -> None:
    with pytest.raises(InvalidArgument, match="SCMP_ARCH_FOO"):
        seccomp_spec.parse(_with(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_FOO"]))


def test_unknown_operator_is_named() -> None:
    rule = {"names": ["read"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ROUGHLY"}]}
    with pytest.raises(InvalidArgument, match="SCMP_CMP_ROUGHLY"):
        seccomp_spec.parse(_one(rule))


def test_unknown_and_unsupported_flags() -> None:
    with pytest.raises(InvalidArgument, match="SECCOMP_FILTER_FLAG_NOPE"):
        seccomp_spec.parse(_with(flags=["SECCOMP_FILTER_FLAG_NOPE"]))
    with pytest.raises(InvalidArgument, match="WAIT_KILLABLE_RECV is not supported"):
        seccomp_spec.parse(_with(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))


def test_errno_ret_only_with_errno_or_trace() -> None:
    with pytest.raises(InvalidArgument, match="errnoRet is only valid"):
        seccomp_spec.parse(_one({"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}))
    with pytest.raises(InvalidArgument, match="defaultErrnoRet"):
        seccomp_spec.parse({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1})
    spec = seccomp_spec.parse(_one({"names": ["read"], "action": "SCMP_ACT_TRACE",
                                    "errnoRet": 7}))
    assert spec is not None and spec.syscalls[0].errno_ret == 7


@pytest.mark.parametrize("value", [-1, 65536, "1", True])
def test_errno_ret_range(value: Any) -> None:
    with pytest.raises(InvalidArgument, match="errnoRet"):
        seccomp_spec.parse(_one({"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                 "errnoRet": value}))


@pytest.mark.parametrize("arg,fragment", [
    ({"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}, "index"),
    ({"index": -1, "value": 0, "op": "SCMP_CMP_EQ"}, "index"),
    ({"value": 0, "op": "SCMP_CMP_EQ"}, "index"),
    ({"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}, "value"),
    ({"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}, "out of range"),
    ({"index": 0, "value": 1, "valueTwo": "x", "op": "SCMP_CMP_MASKED_EQ"}, "valueTwo"),
])
def test_bad_arguments(arg: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        seccomp_spec.parse(_one({"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [arg]}))


def test_bad_names() -> None:
    with pytest.raises(InvalidArgument, match="at least one"):
        seccomp_spec.parse(_one({"names": [], "action": "SCMP_ACT_ERRNO"}))
    with pytest.raises(InvalidArgument, match="empty syscall name"):
        seccomp_spec.parse(_one({"names": ["read", ""], "action": "SCMP_ACT_ERRNO"}))
    with pytest.raises(InvalidArgument, match="list of strings"):
        seccomp_spec.parse(_one({"names": "read", "action": "SCMP_ACT_ERRNO"}))


def test_shape_errors() -> None:
    with pytest.raises(InvalidArgument, match="must be an object"):
        seccomp_spec.parse(["SCMP_ACT_ALLOW"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="syscalls must be a list"):
        seccomp_spec.parse({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {"names": []}})
