"""Docker's default capabilities and the resolution of its seccomp profile."""

from __future__ import annotations

from typing import Any

import pytest

from tomato._sys import caps
from tomato.errors import InvalidArgument
from tomato.oci import seccomp_spec
from tomato.oci.security_defaults import (
    DOCKER_DEFAULT_CAPS,
    docker_default_capabilities,
    docker_default_profile,
    docker_default_seccomp,
    normalize_arch,
    resolve_profile,
)

CLONE_NS_MASK = 2114060288  # every CLONE_NEW* flag


def _rules_for(profile: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in profile["syscalls"] if name in r["names"]]


def _all_names(profile: dict[str, Any]) -> set[str]:
    return {n for r in profile["syscalls"] for n in r["names"]}


def test_docker_default_caps() -> None:
    assert len(DOCKER_DEFAULT_CAPS) == 14 == len(set(DOCKER_DEFAULT_CAPS))
    assert "CAP_NET_RAW" in DOCKER_DEFAULT_CAPS and "CAP_SYS_ADMIN" not in DOCKER_DEFAULT_CAPS
    assert len(caps.parse(DOCKER_DEFAULT_CAPS, kernel_last_cap=40)) == 14
    oci = docker_default_capabilities()
    assert oci["bounding"] == oci["effective"] == oci["permitted"] == list(DOCKER_DEFAULT_CAPS)
    assert "ambient" not in oci and "inheritable" not in oci


def test_shipped_profile_shape() -> None:
    raw = docker_default_profile()
    assert raw["defaultAction"] == "SCMP_ACT_ERRNO" and raw["defaultErrnoRet"] == 1
    assert len(raw["syscalls"][0]["names"]) > 300
    assert any(r.get("includes", {}).get("caps") == ["CAP_SYS_ADMIN"] for r in raw["syscalls"])


def test_default_caps_amd64() -> None:
    prof = docker_default_seccomp(DOCKER_DEFAULT_CAPS, "amd64", kernel="6.1.0")
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO" and prof["defaultErrnoRet"] == 1
    assert prof["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = _all_names(prof)
    for denied in ("unshare", "mount", "setns", "bpf", "keyctl", "add_key", "reboot",
                   "init_module", "kcmp", "s390_runtime_instr", "riscv_flush_icache"):
        assert denied not in names, denied
    for allowed in ("read", "execve", "arch_prctl", "modify_ldt", "chroot", "ptrace"):
        assert allowed in names, allowed
    (clone,) = _rules_for(prof, "clone")
    assert clone["args"] == [{"index": 0, "value": CLONE_NS_MASK, "valueTwo": 0,
                              "op": "SCMP_CMP_MASKED_EQ"}]
    (clone3,) = _rules_for(prof, "clone3")
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == 38
    for rule in prof["syscalls"]:
        assert set(rule) <= {"names", "action", "errnoRet", "args"}
    assert seccomp_spec.parse(prof) is not None  # valid OCI


def test_sys_admin_unlocks_namespaces_and_drops_clone_limits() -> None:
    prof = docker_default_seccomp(["CAP_SYS_ADMIN"], "amd64", kernel="6.1.0")
    names = _all_names(prof)
    assert {"unshare", "mount", "setns", "bpf", "clone3"} <= names
    clone_rules = _rules_for(prof, "clone")
    assert all("args" not in r for r in clone_rules)
    assert all(r["action"] == "SCMP_ACT_ALLOW" for r in _rules_for(prof, "clone3"))
    assert "chroot" not in names  # needs CAP_SYS_CHROOT, not in this set


def test_other_caps_unlock_their_syscalls() -> None:
    prof = docker_default_seccomp(["sys_ptrace", "CAP_SYS_TIME", "CAP_BPF"], "amd64",
                                  kernel="6.1.0")
    names = _all_names(prof)
    assert {"kcmp", "pidfd_getfd", "settimeofday", "clock_settime", "bpf"} <= names
    assert "perf_event_open" not in names


def test_min_kernel_condition() -> None:
    old = docker_default_seccomp(DOCKER_DEFAULT_CAPS, "amd64", kernel="4.4.0-21-generic")
    new = docker_default_seccomp(DOCKER_DEFAULT_CAPS, "amd64", kernel=(4, 8))
    assert "ptrace" not in _all_names(old)
    assert "ptrace" in _all_names(new)


def test_arm64() -> None:
    prof = docker_default_seccomp(DOCKER_DEFAULT_CAPS, "aarch64", kernel="6.1")
    assert prof["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    names = _all_names(prof)
    assert {"cacheflush", "set_tls"} <= names
    assert "arch_prctl" not in names and "modify_ldt" not in names


def test_s390x_clone_argument_order() -> None:
    prof = docker_default_seccomp(DOCKER_DEFAULT_CAPS, "s390x", kernel="6.1")
    assert prof["architectures"] == ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]
    (clone,) = _rules_for(prof, "clone")
    assert clone["args"][0]["index"] == 1
    assert "s390_runtime_instr" in _all_names(prof)


def test_arch_without_archmap_entry_gets_no_architectures() -> None:
    prof = docker_default_seccomp(DOCKER_DEFAULT_CAPS, "ppc64le", kernel="6.1")
    assert "architectures" not in prof
    assert "sync_file_range2" in _all_names(prof)


@pytest.mark.parametrize("spelling,name", [("x86_64", "amd64"), ("AMD64", "amd64"),
                                           ("i686", "x86"), ("386", "x86"),
                                           ("aarch64", "arm64"), ("armv7l", "arm")])
def test_arch_spellings(spelling: str, name: str) -> None:
    assert normalize_arch(spelling) == name


def test_unknown_arch_is_named() -> None:
    with pytest.raises(InvalidArgument, match="vax"):
        docker_default_seccomp(DOCKER_DEFAULT_CAPS, "vax")


def test_profile_with_both_architectures_and_archmap_is_refused() -> None:
    bad = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
           "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": None}],
           "syscalls": []}
    with pytest.raises(InvalidArgument, match="archMap"):
        resolve_profile(bad, [], "amd64", kernel="6.1")


def test_profile_rule_with_name_and_names_is_refused() -> None:
    bad = {"defaultAction": "SCMP_ACT_ERRNO",
           "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]}
    with pytest.raises(InvalidArgument, match="'name' and 'names'"):
        resolve_profile(bad, [], "amd64", kernel="6.1")


def test_single_name_rule_and_plain_architectures() -> None:
    prof = resolve_profile({"defaultAction": "SCMP_ACT_ALLOW",
                            "architectures": ["SCMP_ARCH_X86_64"],
                            "syscalls": [{"name": "ptrace", "action": "SCMP_ACT_ERRNO"}]},
                           [], "amd64", kernel="6.1")
    assert prof == {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}]}
