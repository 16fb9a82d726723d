"""Seccomp as the very last step before execve, for run and exec: a profile denying
syscalls the runtime itself still makes (getcwd, close_range, stat ...) cannot break
the start; and runc's -ENOSYS stub, side by side with runc: a syscall newer than the
profile's table gets ENOSYS, so programs fall back (clone3 -> clone)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .rt import run_in, runtime
from .rt_extra import cid, edit, set_caps
from .runc_side import needs_runc, runc, runc_root  # noqa: F401 (fixture)

C1 = cid("sc")

#: What the runtime (or runc, or crun) calls between loading a filter too early and
#: execve: checking the cwd, marking fds close-on-exec, resetting signals...
RUNTIME_SYSCALLS = ["getcwd", "close_range", "getdents64", "fcntl", "rt_sigaction",
                    "rt_sigprocmask", "newfstatat", "statx", "fstat", "stat", "lstat",
                    "chdir", "fchdir", "prctl", "capget", "setgroups", "setresuid",
                    "setresgid", "openat", "readlinkat"]


def _denying(names: list[str]) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO"}]}


@pytest.mark.parametrize("nnp", [False, True], ids=["privileged-load", "no-new-privs"])
def test_a_profile_denying_the_runtimes_own_syscalls_does_not_break_the_start(
        root: Path, bundle: Path, nnp: bool) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["seccomp"] = _denying(RUNTIME_SYSCALLS)
        cfg["process"]["noNewPrivileges"] = nnp
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        set_caps(cfg, ["CAP_KILL", "CAP_NET_BIND_SERVICE"])  # no CAP_SYS_ADMIN
    edit(bundle, fn)
    proc = run_in(root, bundle, C1, "false", check=False)
    assert proc.returncode == 1, proc.stderr  # false ran: its own exit code
    assert proc.stderr == ""


def test_exec_loads_the_filter_last_too(root: Path, bundle: Path) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["seccomp"] = _denying(RUNTIME_SYSCALLS)
        set_caps(cfg, ["CAP_KILL"])
        cfg["process"]["args"] = ["sleep", "60"]
    edit(bundle, fn)
    runtime(root, "run", "-d", "--bundle", str(bundle), C1)
    try:
        proc = runtime(root, "exec", C1, "false", check=False)
        assert proc.returncode == 1, proc.stderr
    finally:
        runtime(root, "delete", "--force", C1)


def test_capabilities_after_a_privileged_load_are_the_processes_own(root: Path,
                                                                     bundle: Path) -> None:
    """CAP_SYS_ADMIN, held only to load the filter, is gone by execve."""
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["seccomp"] = _denying(["acct"])
        set_caps(cfg, ["CAP_KILL"])
    edit(bundle, fn)
    out = run_in(root, bundle, C1, "grep", "^Cap", "/proc/self/status").stdout
    caps = dict(line.split(":\t") for line in out.splitlines())
    assert {k: int(v, 16) for k, v in caps.items()} == {
        "CapInh": 1 << 5, "CapPrm": 1 << 5, "CapEff": 1 << 5, "CapBnd": 1 << 5,
        "CapAmb": 1 << 5}


PROBE = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
for name, nr, args in (("clone3", 435, (0, 0)), ("close_range", 436, (1000, 999, 0)),
                       ("acct", 163, (0,))):
    rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    print(name, ctypes.get_errno() if rc == -1 else 0)
"""


def _python_bundle(bundle: Path) -> None:
    """The host's python3 inside the busybox bundle (bind-mounted /usr), and a profile
    whose newest syscall is older than clone3 that denies the rest with EPERM."""
    rootfs = bundle / "rootfs"
    for name in ("lib", "lib64"):
        if not (rootfs / name).exists() and os.path.islink(f"/{name}"):
            os.symlink(os.readlink(f"/{name}"), rootfs / name)
    from tomato._sys import seccomp
    from tomato.oci.security_defaults import docker_default_seccomp

    def older_than_clone3(name: str) -> bool:
        nr = seccomp.resolve_syscall(name)
        return nr is not None and 0 <= nr < 435

    allowed = sorted({n for rule in docker_default_seccomp([])["syscalls"]
                      if rule.get("action") == "SCMP_ACT_ALLOW" and not rule.get("args")
                      for n in rule["names"] if n != "acct" and older_than_clone3(n)})

    def fn(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                              "options": ["rbind", "ro"]})
        cfg["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
        cfg["process"]["args"] = ["/usr/bin/python3", "-I", "-S", "-c", PROBE]
    edit(bundle, fn)


@needs_runc
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers of x86_64")
def test_newer_syscalls_get_enosys_as_with_runc(root: Path, bundle: Path,
                                                 runc_root: Path) -> None:  # noqa: F811
    _python_bundle(bundle)
    ours = run_in(root, bundle, C1).stdout.split()
    theirs = runc(runc_root, "run", "--bundle", str(bundle), "r" + C1).stdout.split()
    # ENOSYS (38) above the profile's newest syscall, the default EPERM (1) below it
    assert ours == theirs == ["clone3", "38", "close_range", "38", "acct", "1"]
