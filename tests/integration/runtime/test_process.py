"""The container's process: user, umask, cwd, env, rlimits, oomScoreAdj,
noNewPrivileges, capabilities and seccomp, as a process inside sees them."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from .rt import run_in
from .rt_extra import cap_mask, cid, edit, set_caps, status_line

C1 = cid("c1")


def test_user_groups_and_umask(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].__setitem__(
        "user", {"uid": 1000, "gid": 1001, "additionalGids": [5, 6], "umask": 0o027}))
    out = run_in(root, bundle, C1, "sh", "-c",
                 "id -u; id -g; grep Groups /proc/self/status; umask; "
                 "grep -E '^(Uid|Gid)' /proc/self/status").stdout.splitlines()
    assert out[0] == "1000"
    assert out[1] == "1001"
    assert out[2].split()[1:] == ["5", "6"]
    assert out[3] == "0027"
    assert out[4].split()[1:] == ["1000"] * 4  # real, effective, saved, fs
    assert out[5].split()[1:] == ["1001"] * 4


def test_cwd_is_created_if_missing(root: Path, bundle: Path) -> None:
    assert not (bundle / "rootfs" / "work").exists()
    edit(bundle, lambda cfg: cfg["process"].__setitem__("cwd", "/work/deep/here"))
    out = run_in(root, bundle, C1, "pwd").stdout
    assert out.strip() == "/work/deep/here"
    assert (bundle / "rootfs" / "work" / "deep" / "here").is_dir()


def test_env_and_default_home(root: Path, bundle: Path) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["env"] += ["FOO=bar baz", "EMPTY="]
        cfg["process"]["user"] = {"uid": 65534, "gid": 65534}
    edit(bundle, fn)
    out = run_in(root, bundle, C1, "sh", "-c",
                 'echo "$FOO|${EMPTY-unset}|$HOME|$TERM"; env | sort | cut -d= -f1 | tr "\\n" " "'
                 ).stdout.splitlines()
    # HOME comes from the image's /etc/passwd for uid 65534
    assert out[0] == "bar baz||/nonexistent|xterm"
    assert out[1].split() == ["EMPTY", "FOO", "HOME", "PATH", "PWD", "SHLVL", "TERM"]


def _limits(out: str, name: str) -> tuple[str, str]:
    for line in out.splitlines():
        if line.startswith(name):
            soft, hard = line[len(name):].split()[:2]
            return soft, hard
    raise AssertionError(f"{name} not in {out!r}")


def test_rlimit_nofile_applied(root: Path, bundle: Path) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                                     {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400}]
    edit(bundle, fn)
    proc = run_in(root, bundle, C1, "cat", "/proc/self/limits")
    assert _limits(proc.stdout, "Max open files") == ("512", "1024")
    assert _limits(proc.stdout, "Max processes") == ("300", "400")
    assert "warning" not in proc.stderr


def test_rlimit_above_hard_limit_is_clamped_with_a_warning(root: Path, bundle: Path) -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= 30000:
        pytest.skip("the runtime may raise RLIMIT_NOFILE to 30000 here: nothing to clamp")
    edit(bundle, lambda cfg: cfg["process"].__setitem__(
        "rlimits", [{"type": "RLIMIT_NOFILE", "soft": 30000, "hard": 30000}]))
    proc = run_in(root, bundle, C1, "cat", "/proc/self/limits")
    assert proc.returncode == 0
    assert _limits(proc.stdout, "Max open files") == (str(hard), str(hard))
    warning = [line for line in proc.stderr.splitlines() if "RLIMIT_NOFILE" in line]
    assert warning and "warning" in warning[0], proc.stderr


def test_oom_score_adj(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].__setitem__("oomScoreAdj", 500))
    proc = run_in(root, bundle, C1, "cat", "/proc/self/oom_score_adj")
    assert proc.stdout.strip() == "500"
    assert "warning" not in proc.stderr


def test_negative_oom_score_adj_is_a_warning(root: Path, bundle: Path) -> None:
    own = int(Path("/proc/self/oom_score_adj").read_text())
    # Root here lacks CAP_SYS_RESOURCE: lowering the score below our own is refused.
    probe = os.fork()
    if probe == 0:
        try:
            Path("/proc/self/oom_score_adj").write_text(str(own - 100))
            os._exit(0)
        except OSError as err:
            os._exit(1 if err.errno in (errno.EACCES, errno.EPERM) else 2)
    _, status = os.waitpid(probe, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        pytest.skip("this machine lets root lower oom_score_adj: no warning to see")
    edit(bundle, lambda cfg: cfg["process"].__setitem__("oomScoreAdj", own - 100))
    proc = run_in(root, bundle, C1, "cat", "/proc/self/oom_score_adj")
    assert proc.returncode == 0
    assert int(proc.stdout) == own  # left unchanged
    assert any("oomScoreAdj" in line and "warning" in line
               for line in proc.stderr.splitlines()), proc.stderr


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(root: Path, bundle: Path, nnp: bool) -> None:
    edit(bundle, lambda cfg: cfg["process"].__setitem__("noNewPrivileges", nnp))
    out = run_in(root, bundle, C1, "grep", "NoNewPrivs", "/proc/self/status").stdout
    assert out.split() == ["NoNewPrivs:", "1" if nnp else "0"]


def test_default_capabilities_in_status(root: Path, bundle: Path) -> None:
    names = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]  # runc's default spec
    status = run_in(root, bundle, C1, "cat", "/proc/self/status").stdout
    want = cap_mask(names)
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert int(status_line(status, key), 16) == want, key
    # runc's spec has no inheritable set, so the kernel cannot raise the ambient one
    assert int(status_line(status, "CapInh"), 16) == 0
    assert int(status_line(status, "CapAmb"), 16) == 0


def test_capabilities_from_the_spec(root: Path, bundle: Path) -> None:
    names = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"]
    edit(bundle, lambda cfg: set_caps(cfg, names))
    status = run_in(root, bundle, C1, "cat", "/proc/self/status").stdout
    for key in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
        assert int(status_line(status, key), 16) == cap_mask(names), key


PING = "ip link set lo up && ping -c 1 -W 2 127.0.0.1 2>&1; echo rc=$?"


def test_cap_net_raw_needed_for_ping(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: set_caps(cfg, ["CAP_NET_ADMIN", "CAP_NET_RAW"]))
    with_raw = run_in(root, bundle, C1, "sh", "-c", PING).stdout
    assert "1 packets received" in with_raw and "rc=0" in with_raw, with_raw
    edit(bundle, lambda cfg: set_caps(cfg, ["CAP_NET_ADMIN"]))
    without = run_in(root, bundle, C1, "sh", "-c", PING).stdout
    assert "rc=0" not in without
    assert "ermission denied" in without or "not permitted" in without, without


def test_cap_sys_admin_needed_for_mount(root: Path, bundle: Path) -> None:
    script = ("mount -t tmpfs probe /tmp 2>&1; echo rc=$?; "
              "grep -c ' /tmp ' /proc/self/mountinfo; true")
    edit(bundle, lambda cfg: set_caps(cfg, ["CAP_SYS_ADMIN"]))
    out = run_in(root, bundle, C1, "sh", "-c", script).stdout.splitlines()
    assert out[-2:] == ["rc=0", "1"], out
    edit(bundle, lambda cfg: set_caps(cfg, ["CAP_NET_ADMIN"]))
    out = run_in(root, bundle, C1, "sh", "-c", script).stdout.splitlines()
    assert out[-2] != "rc=0" and out[-1] == "0", out
    assert "ermission denied" in out[0] or "not permitted" in out[0], out


def _seccomp(syscalls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": syscalls}


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_denied_syscall_returns_its_errno(root: Path, bundle: Path, nnp: bool) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["noNewPrivileges"] = nnp
        cfg["linux"]["seccomp"] = _seccomp([
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
             "errnoRet": errno.EOPNOTSUPP},
            {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"},
        ])
        set_caps(cfg, ["CAP_SYS_ADMIN"])
    edit(bundle, fn)
    out = run_in(root, bundle, C1, "sh", "-c",
                 "mkdir /dev/shm/d 2>&1; touch /dev/shm/f && echo touch-ok; "
                 "hostname other 2>&1; hostname; grep Seccomp: /proc/self/status").stdout
    lines = out.splitlines()
    assert os.strerror(errno.EOPNOTSUPP) in lines[0], lines
    assert lines[1] == "touch-ok"  # other syscalls still work
    assert os.strerror(errno.EPERM) in lines[2]  # errnoRet defaults to EPERM
    assert lines[3] == "runc"
    assert lines[4].split() == ["Seccomp:", "2"]  # a filter is installed


def test_seccomp_kill_process(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["linux"].__setitem__("seccomp", _seccomp(
        [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}])))
    # busybox `sh -c 'echo $PPID'` calls getppid
    proc = run_in(root, bundle, C1, "sh", "-c", "echo before; echo $PPID; echo after",
                  check=False)
    assert proc.returncode == 128 + 31, (proc.returncode, proc.stdout)  # SIGSYS
    assert "after" not in proc.stdout
