"""Seccomp filters compiled with libseccomp and loaded for real, each in a forked child."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _security_child import run_in_child

from tomato._sys import caps, seccomp
from tomato.errors import InvalidArgument, PermissionDenied, Unavailable
from tomato.oci import seccomp_spec
from tomato.oci.security_defaults import PROFILE_PATH, docker_default_seccomp

CLONE_NEWUTS = 0x04000000
KEYCTL_GET_KEYRING_ID = 0
KEY_SPEC_SESSION_KEYRING = -3
BPF_RET_K = 0x06


def _filter(raw: dict[str, Any]) -> seccomp.Filter:
    spec = seccomp_spec.parse(raw)
    assert spec is not None
    return seccomp.compile(spec)


def _allow_but(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **extra}


def _errno_of(fn: Any, *args: Any) -> int:
    try:
        fn(*args)
    except OSError as err:
        return err.errno or -1
    return 0


def _syscall(name: str, *args: int) -> int:
    """Raw syscall by name (numbers from libseccomp, so any arch); -errno on failure."""
    libc = ctypes.CDLL(None, use_errno=True)
    nr = seccomp.resolve_syscall(name)
    assert nr is not None and nr >= 0, name
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return -ctypes.get_errno() if rc == -1 else int(rc)


def _ret_values(bpf: bytes) -> set[int]:
    """The constants of every BPF_RET|BPF_K instruction of a program."""
    assert bpf and len(bpf) % 8 == 0
    return {k for code, _jt, _jf, k in struct.iter_unpack("=HBBI", bpf) if code == BPF_RET_K}


def _in_child_with(filt: seccomp.Filter, probe: Any) -> Any:
    def child() -> Any:
        filt.load()
        return probe()

    return run_in_child(child)


def test_errno_action_returns_the_given_errno(workdir: Path) -> None:
    target = workdir / "made-by-child"
    with _filter(_allow_but({"names": ["getcwd", "mkdir", "mkdirat"],
                             "action": "SCMP_ACT_ERRNO", "errnoRet": 38})) as filt:
        res = _in_child_with(filt, lambda: [_errno_of(os.getcwd), _errno_of(os.mkdir, target),
                                            os.getpid() > 0])
    assert res.ok() == [errno.ENOSYS, errno.ENOSYS, True]
    assert not target.exists()
    assert run_in_child(lambda: _errno_of(os.getcwd)).ok() == 0  # control: unfiltered works


def test_errno_action_defaults_to_eperm() -> None:
    with _filter(_allow_but({"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"})) as filt:
        assert _in_child_with(filt, lambda: _errno_of(os.getcwd)).ok() == errno.EPERM


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL",
                                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"])
def test_kill_and_trap_actions_end_the_process_with_sigsys(action: str) -> None:
    with _filter(_allow_but({"names": ["getcwd"], "action": action})) as filt:
        res = _in_child_with(filt, lambda: _errno_of(os.getcwd))
    assert res.signal == signal.SIGSYS, res
    assert res.value is None


def test_trace_action_without_tracer_fails_with_enosys() -> None:
    with _filter(_allow_but({"names": ["getcwd"], "action": "SCMP_ACT_TRACE"})) as filt:
        assert _in_child_with(filt, lambda: _errno_of(os.getcwd)).ok() == errno.ENOSYS


def test_argument_comparison_denies_only_the_matching_call() -> None:
    rule = {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
            "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]}
    with _filter(_allow_but(rule)) as filt:
        res = _in_child_with(filt, lambda: [_syscall("personality", 0xFFFFFFFF),
                                            _syscall("personality", 0)])
    query, set_linux = res.ok()
    assert query == -errno.EACCES
    assert set_linux >= 0


def test_two_conditions_on_one_argument_mean_either() -> None:
    # libseccomp ANDs conditions of a rule; runc turns same-argument ones into one rule each.
    rule = {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
            "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"},
                     {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
    with _filter(_allow_but(rule)) as filt:
        res = _in_child_with(filt, lambda: [_syscall("personality", 0xFFFFFFFF),
                                            _syscall("personality", 8),
                                            _syscall("personality", 0)])
    a, b, c = res.ok()
    assert a == -errno.EACCES and b == -errno.EACCES and c >= 0


def test_masked_eq_comparison() -> None:
    # deny unshare when CLONE_NEWUTS is among the flags, allow other unshare calls
    rule = {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
            "args": [{"index": 0, "value": CLONE_NEWUTS, "valueTwo": CLONE_NEWUTS,
                      "op": "SCMP_CMP_MASKED_EQ"}]}
    with _filter(_allow_but(rule)) as filt:
        res = _in_child_with(filt, lambda: [_syscall("unshare", CLONE_NEWUTS),
                                            _syscall("unshare", 0)])
    assert res.ok() == [-errno.EACCES, 0]


def test_log_action_allows_and_is_in_the_program() -> None:
    with _filter(_allow_but({"names": ["getcwd"], "action": "SCMP_ACT_LOG"})) as filt:
        assert seccomp.ACT_LOG in _ret_values(filt.export_bpf())
        assert _in_child_with(filt, os.getcwd).ok() == os.getcwd()


def test_flags_compile_and_load() -> None:
    raw = _allow_but({"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
                     flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                            "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
    with _filter(raw) as filt:
        assert _in_child_with(filt, lambda: _errno_of(os.getcwd)).ok() == errno.EIO


def test_loading_needs_no_new_privs_or_cap_sys_admin() -> None:
    def child(nnp: bool) -> str:
        with _filter(_allow_but({"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"})) as filt:
            keep = caps.parse(["CAP_KILL"])
            caps.apply(caps.CapSets(bounding=keep, effective=keep, permitted=keep))
            if nnp:
                caps.set_no_new_privs()
            try:
                filt.load()
            except PermissionDenied as err:
                return str(err)
            return f"loaded, getcwd errno {_errno_of(os.getcwd)}"

    assert "no_new_privs" in run_in_child(lambda: child(False)).ok()
    assert run_in_child(lambda: child(True)).ok() == f"loaded, getcwd errno {errno.EPERM}"


def test_export_bpf_holds_the_actions() -> None:
    raw = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
           "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                        {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    with _filter(raw) as filt:
        rets = _ret_values(filt.export_bpf())
    assert {seccomp.ACT_ALLOW, seccomp.ACT_ERRNO | 1, seccomp.ACT_ERRNO | 38,
            seccomp.ACT_KILL_PROCESS} <= rets


def test_rule_with_the_default_action_is_skipped() -> None:
    raw = {"defaultAction": "SCMP_ACT_ERRNO",
           "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
                        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}
    with _filter(raw) as filt:
        assert seccomp.ACT_ALLOW in _ret_values(filt.export_bpf())


def test_released_filter_cannot_be_used() -> None:
    filt = _filter(_allow_but())
    filt.release()
    filt.release()  # twice is fine
    with pytest.raises(ValueError):
        filt.load()


# ---- Docker's default profile ---------------------------------------------------------------


def _docker_default_probe() -> dict[str, int]:
    libc = ctypes.CDLL(None, use_errno=True)
    out = {
        "unshare": _syscall("unshare", CLONE_NEWUTS),
        "keyctl": _syscall("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
        "add_key": _syscall("add_key", 0, 0, 0, 0, 0),
        "bpf": _syscall("bpf", 0, 0, 0),
        "clone3": _syscall("clone3", 0, 0),
        "getcwd": _errno_of(os.getcwd),
        "uname": _errno_of(os.uname),
    }
    del libc
    # ordinary work still runs: a fork+exec of a shell and a pipe round trip
    proc = subprocess.run(["/bin/sh", "-c", "echo hello; id -u"], capture_output=True,
                          text=True, check=False)
    out["sh"] = proc.returncode
    out["sh_output_ok"] = int(proc.stdout.split() == ["hello", "0"])
    return out


def test_docker_default_profile_denies_privileged_calls_and_runs_ordinary_ones() -> None:
    # The child keeps all of root's caps: every EPERM below comes from the filter alone.
    control = run_in_child(_docker_default_probe).ok()
    assert control["unshare"] == 0 and control["keyctl"] >= 0
    assert control["bpf"] != -errno.EPERM and control["clone3"] != -errno.ENOSYS

    with _filter(docker_default_seccomp()) as filt:
        got = _in_child_with(filt, _docker_default_probe).ok()
    assert got["unshare"] == -errno.EPERM
    assert got["keyctl"] == -errno.EPERM
    assert got["add_key"] == -errno.EPERM
    assert got["bpf"] == -errno.EPERM
    assert got["clone3"] == -errno.ENOSYS  # so glibc falls back to clone
    assert got["getcwd"] == 0 and got["uname"] == 0
    assert got["sh"] == 0 and got["sh_output_ok"] == 1


def test_docker_default_profile_with_sys_admin_allows_unshare() -> None:
    names = ["CAP_SYS_ADMIN", "CAP_CHOWN"]
    with _filter(docker_default_seccomp(names)) as filt:
        got = _in_child_with(filt, lambda: _syscall("unshare", CLONE_NEWUTS)).ok()
    assert got == 0


def test_every_name_in_the_shipped_profile_is_known_to_libseccomp() -> None:
    profile = json.loads(Path(PROFILE_PATH).read_text())
    names = {n for rule in profile["syscalls"] for n in rule["names"]}
    unknown = sorted(n for n in names if seccomp.resolve_syscall(n) is None)
    assert unknown == []
    # and the full profile, every conditional rule included, compiles
    with _filter(docker_default_seccomp(caps.CAP_NAMES)) as filt:
        assert len(filt.export_bpf()) > 8 * 100


# ---- bad input ------------------------------------------------------------------------------


def test_unknown_syscall_name_is_an_error_naming_it() -> None:
    raw = _allow_but({"names": ["getcwd", "no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO"})
    with pytest.raises(InvalidArgument, match="no_such_syscall_xyz"):
        _filter(raw)


def test_syscall_missing_on_the_native_arch_is_fine() -> None:
    # s390_runtime_instr exists only on s390: libseccomp knows it, x86_64 has no such call
    raw = _allow_but({"names": ["s390_runtime_instr", "getcwd"], "action": "SCMP_ACT_ERRNO"},
                     architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
    if seccomp.native_arch() != seccomp.arch_token("SCMP_ARCH_X86_64"):
        pytest.skip("this check is written for an x86_64 host")
    with _filter(raw) as filt:
        assert _in_child_with(filt, lambda: _errno_of(os.getcwd)).ok() == errno.EPERM


def test_architecture_of_other_endianness_is_refused_by_name() -> None:
    if seccomp.native_arch() != seccomp.arch_token("SCMP_ARCH_X86_64"):
        pytest.skip("this check is written for an x86_64 host")
    with pytest.raises(InvalidArgument, match="SCMP_ARCH_S390X"):
        _filter(_allow_but(architectures=["SCMP_ARCH_S390X"]))


def test_architecture_libseccomp_lacks_is_unavailable() -> None:
    if seccomp.version() >= (2, 6, 0):
        pytest.skip("libseccomp >= 2.6 knows every architecture the spec lists")
    with pytest.raises(Unavailable, match="SCMP_ARCH_LOONGARCH64"):
        seccomp.arch_token("SCMP_ARCH_LOONGARCH64")


def test_bad_action_value_is_refused_by_name() -> None:
    with pytest.raises(InvalidArgument, match="SCMP_ACT_BOGUS"):
        seccomp.action_value("SCMP_ACT_BOGUS")


# ---- raw BPF programs (compile in the parent, load in the init) -----------------------------


@pytest.mark.parametrize("flags", [[], ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"]])
def test_exported_program_loads_without_libseccomp(flags: list[str]) -> None:
    with _filter(_allow_but({"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 38})) as filt:
        program = filt.export_bpf()

    def child() -> list[object]:
        before = _errno_of(os.getcwd)
        seccomp.load_bpf(program, flags)
        with open("/proc/self/status") as f:
            mode = next(ln.split()[1] for ln in f if ln.startswith("Seccomp:"))
        return [before, _errno_of(os.getcwd), mode]

    assert run_in_child(child).ok() == [0, errno.ENOSYS, "2"]


def test_exported_docker_default_program_behaves_like_the_filter() -> None:
    with _filter(docker_default_seccomp()) as filt:
        program = filt.export_bpf()

    def child() -> dict[str, int]:
        seccomp.load_bpf(program)
        return _docker_default_probe()

    got = run_in_child(child).ok()
    assert got["unshare"] == -errno.EPERM and got["keyctl"] == -errno.EPERM
    assert got["clone3"] == -errno.ENOSYS and got["sh"] == 0 and got["sh_output_ok"] == 1


def test_load_bpf_needs_no_new_privs_without_cap_sys_admin() -> None:
    with _filter(_allow_but({"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"})) as filt:
        program = filt.export_bpf()

    def child() -> str:
        keep = caps.parse(["CAP_KILL"])
        caps.apply(caps.CapSets(bounding=keep, effective=keep, permitted=keep))
        try:
            seccomp.load_bpf(program)
        except PermissionDenied as err:
            return str(err)
        return "loaded"

    assert "no_new_privs" in run_in_child(child).ok()


def test_load_bpf_refuses_garbage() -> None:
    with pytest.raises(InvalidArgument, match="not a seccomp BPF program"):
        seccomp.load_bpf(b"1234567")
    with pytest.raises(InvalidArgument, match="not a seccomp BPF program"):
        seccomp.load_bpf(b"")
    with pytest.raises(InvalidArgument, match="SECCOMP_FILTER_FLAG_BOGUS"):
        seccomp.load_bpf(b"\x06\x00\x00\x00\x00\x00\xff\x7f", ["SECCOMP_FILTER_FLAG_BOGUS"])


def test_real_syscall_newer_than_libseccomp_is_skipped_with_a_warning() -> None:
    newer = sorted(n for n in seccomp.NEWER_SYSCALLS if seccomp.resolve_syscall(n) is None)
    if not newer:
        pytest.skip(f"libseccomp {seccomp.version()} knows every syscall in NEWER_SYSCALLS")
    spec = seccomp_spec.parse(_allow_but({"names": [newer[0], "getcwd"],
                                          "action": "SCMP_ACT_ERRNO"}))
    assert spec is not None
    warnings: list[str] = []
    with seccomp.compile(spec, warnings) as filt:
        assert _in_child_with(filt, lambda: _errno_of(os.getcwd)).ok() == errno.EPERM
    assert len(warnings) == 1 and newer[0] in warnings[0]
