"""runc's -ENOSYS stub, loaded for real in a forked child: a syscall newer than every
syscall the profile names gets ENOSYS (so glibc falls back from clone3 to clone), an
older unlisted one the default action."""

from __future__ import annotations

import ctypes
import errno
from pathlib import Path
from typing import Any

from _security_child import run_in_child

from tomato._sys import seccomp
from tomato.oci import seccomp_spec
from tomato.runtime.seccomp_cache import load_filter

NR_ACCT, NR_CLONE3, NR_CLOSE_RANGE = 163, 435, 436  # x86_64


def _raw(nr: int, *args: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return -ctypes.get_errno() if rc == -1 else int(rc)


def _old_profile(default: str = "SCMP_ACT_ERRNO", **extra: Any) -> dict[str, Any]:
    """A profile whose newest named syscall is older than clone3 (as profiles written
    before Linux 5.3 are): it allows what Python needs, denies the rest by default."""
    allowed = [name for name in _everything_python_needs()]
    return {"defaultAction": default,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}], **extra}


def _everything_python_needs() -> list[str]:
    from tomato.oci.security_defaults import docker_default_seccomp

    names: list[str] = []
    for rule in docker_default_seccomp([])["syscalls"]:
        if rule.get("action") != "SCMP_ACT_ALLOW" or rule.get("args"):
            continue
        for name in rule["names"]:
            nr = seccomp.resolve_syscall(name)
            if nr is not None and 0 <= nr < NR_CLONE3 and name != "acct":
                names.append(name)
    return names


def _probe() -> dict[str, int]:
    return {"clone3": _raw(NR_CLONE3, 0, 0), "close_range": _raw(NR_CLOSE_RANGE, 1000, 999, 0),
            "acct": _raw(NR_ACCT, 0)}


def test_newer_syscalls_get_enosys_older_ones_the_default(tmp_path: Path) -> None:
    filt = load_filter(str(tmp_path), _old_profile(), [])
    got = run_in_child(lambda: (filt.load(), _probe())[1]).ok()
    assert got == {"clone3": -errno.ENOSYS, "close_range": -errno.ENOSYS,
                   "acct": -errno.EPERM}


def test_a_cached_program_keeps_the_stub(tmp_path: Path) -> None:
    load_filter(str(tmp_path), _old_profile(), [])
    filt = load_filter(str(tmp_path), _old_profile(), [])  # from the cache
    assert run_in_child(lambda: (filt.load(), _probe())[1]).ok()["clone3"] == -errno.ENOSYS


def test_no_stub_when_the_default_allows_or_is_already_enosys() -> None:
    for raw in (_old_profile("SCMP_ACT_ALLOW"), _old_profile("SCMP_ACT_LOG"),
                _old_profile("SCMP_ACT_ERRNO", defaultErrnoRet=errno.ENOSYS)):
        spec = seccomp_spec.parse(raw)
        assert spec is not None
        assert seccomp.enosys_stub(spec) == b"", raw["defaultAction"]


def test_a_profile_naming_clone3_keeps_its_own_rule(tmp_path: Path) -> None:
    """Docker's profile names clone3 (ERRNO ENOSYS) and newer calls: its own rules decide."""
    raw = _old_profile()
    raw["syscalls"].append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    filt = load_filter(str(tmp_path), raw, [])
    got = run_in_child(lambda: (filt.load(), _probe())[1]).ok()
    assert got["clone3"] == -errno.EPERM  # named: the profile's rule, not the stub
    assert got["close_range"] == -errno.ENOSYS  # newer than anything named
