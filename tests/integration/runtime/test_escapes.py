"""The known runtime escapes (issue 4), each tried by a process inside the container.

- leaked fds / a cwd outside the rootfs (CVE-2024-21626 class)
- writes to /proc that would reach the host (sysrq-trigger, core_pattern, kcore)
- the runtime's own binary through /proc/PID/exe of a runtime process that has
  entered the container (CVE-2019-5736 class)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.passwd_hold import build_passwd_hold

from .rt import RUNTIME, run_in, runtime
from .rt_extra import (
    CAP,
    assert_nothing_left,
    assert_one_line_error,
    cid,
    delete_reaping,
    edit,
    run_detached,
    set_caps,
)

C1 = cid("c1")

# One line per open fd of the shell: "<fd> <target>" (readlink inherits the
# shell's fds; its own stdout is the $(...) pipe).
LIST_FDS = 'for f in /proc/self/fd/*; do echo "${f##*/} $(readlink $f)"; done'


def _high_fds(out: str) -> dict[int, str]:
    """fds above stderr; one with no target is the glob's own directory fd, closed
    by the time readlink looks at it."""
    fds = {}
    for line in out.splitlines():
        fd, _, target = line.partition(" ")
        if fd.isdigit() and int(fd) > 2 and target:
            fds[int(fd)] = target
    return fds


def test_no_fd_leaks_into_the_container(root: Path, bundle: Path) -> None:
    out = run_in(root, bundle, C1, "sh", "-c", LIST_FDS).stdout
    # The glob's directory fd is closed before the loop runs: nothing above stderr.
    assert _high_fds(out) == {}, out


def test_no_fd_leaks_through_create_and_start(root: Path, bundle: Path, workdir: Path) -> None:
    report = workdir / "out"
    report.mkdir()
    edit(bundle, lambda cfg: cfg["mounts"].append(
        {"destination": "/out", "type": "bind", "source": str(report), "options": ["bind"]}))
    run_detached(root, bundle, C1, "sh", "-c", LIST_FDS + " > /out/fds; exec sleep 60")
    try:
        # bounded wait for the report
        for _ in range(500):
            if (report / "fds").exists() and (report / "fds").read_text().endswith("\n"):
                break
            subprocess.run(["sleep", "0.01"])
        text = (report / "fds").read_text()
        fds = _high_fds(text)
        # fd 1 is the report file; above it nothing the runtime held (fifo, pipes, dirs)
        assert fds == {}, text
    finally:
        runtime(root, "delete", "--force", C1)


def test_no_fd_leaks_into_exec(root: Path, bundle: Path) -> None:
    run_detached(root, bundle, C1, "sleep", "60")
    try:
        out = runtime(root, "exec", C1, "sh", "-c", LIST_FDS).stdout
        assert _high_fds(out) == {}, out
    finally:
        runtime(root, "delete", "--force", C1)


def test_no_fd_leaks_with_a_console(root: Path, bundle: Path, workdir: Path) -> None:
    from .rt_extra import ConsoleListener, read_until, wait_stopped

    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["terminal"] = True
        cfg["process"]["args"] = ["sh", "-c", LIST_FDS + "; echo END"]
    edit(bundle, fn)
    listener = ConsoleListener(workdir / "console.sock")
    master = -1
    try:
        runtime(root, "create", "--bundle", str(bundle), "--console-socket",
                str(listener.path), C1)
        master, _ = listener.receive()
        runtime(root, "start", C1)
        out = read_until(master, b"END").decode(errors="replace").replace("\r", "")
        assert "END" in out
        fds = _high_fds(out)
        assert fds == {}, out
        parts = (line.partition(" ") for line in out.splitlines())
        low = {fd: target for fd, _, target in parts if fd.isdigit() and target}
        # stdio is the pty (fd 1 shows the $(...) pipe readlink itself writes to)
        assert low["0"] == low["2"] == "/dev/pts/0", out
        wait_stopped(root, C1)
        runtime(root, "delete", C1)
    finally:
        if master >= 0:
            os.close(master)
        listener.close()


def test_preserved_fds_are_the_only_extra_ones(root: Path, bundle: Path, workdir: Path) -> None:
    host_dir = workdir / "hostdir"
    host_dir.mkdir()
    edit(bundle, lambda cfg: cfg["process"].__setitem__("args", ["sh", "-c", LIST_FDS]))
    proc = subprocess.run(
        ["sh", "-c", f'exec "$0" --root {root} run --preserve-fds 1 --bundle {bundle} {C1} '
                     f'3<{host_dir} 4<{host_dir} 5<{host_dir}', RUNTIME],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    fds = _high_fds(proc.stdout)
    assert list(fds) == [3], proc.stdout  # 4 and 5 were not preserved


def _cwd_via_fd(bundle: Path, fd: int) -> None:
    edit(bundle, lambda cfg: cfg["process"].__setitem__("cwd", f"/proc/self/fd/{fd}"))


def test_cwd_through_a_preserved_host_fd_is_refused(root: Path, bundle: Path,
                                                    workdir: Path) -> None:
    host_dir = workdir / "outside"
    host_dir.mkdir()
    _cwd_via_fd(bundle, 3)
    edit(bundle, lambda cfg: cfg["process"].__setitem__("args", ["sh", "-c", "ls; pwd"]))
    proc = subprocess.run(
        ["sh", "-c", f'exec "$0" --root {root} create --preserve-fds 1 --bundle {bundle} '
                     f'{C1} 3<{host_dir} </dev/null >/dev/null', RUNTIME],
        capture_output=True, text=True, timeout=30)
    assert_one_line_error(proc, "/proc/self/fd/3", "outside")
    assert_nothing_left(root)


@pytest.mark.parametrize("fd", range(3, 11))
def test_cwd_through_a_runtime_fd_is_refused(root: Path, bundle: Path, fd: int) -> None:
    """runc leaked an fd to the host's /sys/fs/cgroup as fd 7: whatever the runtime
    holds while it sets the cwd, /proc/self/fd/N never becomes a cwd."""
    _cwd_via_fd(bundle, fd)
    proc = runtime(root, "create", "--bundle", str(bundle), C1, check=False)
    assert_one_line_error(proc, f"/proc/self/fd/{fd}")
    assert_nothing_left(root)


def test_exec_cwd_through_a_host_fd_is_refused(root: Path, bundle: Path,
                                               workdir: Path) -> None:
    host_dir = workdir / "outside"
    host_dir.mkdir()
    run_detached(root, bundle, C1, "sleep", "60")
    try:
        for fd in range(3, 11):
            proc = runtime(root, "exec", "--cwd", f"/proc/self/fd/{fd}", C1, "pwd", check=False)
            assert_one_line_error(proc, f"/proc/self/fd/{fd}", code=255)
        proc = subprocess.run(
            ["sh", "-c", f'exec "$0" --root {root} exec --preserve-fds 1 '
                         f'--cwd /proc/self/fd/3 {C1} pwd 3<{host_dir}', RUNTIME],
            capture_output=True, text=True, timeout=30)
        assert_one_line_error(proc, "/proc/self/fd/3", "outside", code=255)
    finally:
        runtime(root, "delete", "--force", C1)


def test_cwd_symlink_cannot_climb_out(root: Path, bundle: Path) -> None:
    (bundle / "rootfs" / "escape").symlink_to("../../../../../../../..")
    edit(bundle, lambda cfg: cfg["process"].__setitem__("cwd", "/escape"))
    out = run_in(root, bundle, C1, "sh", "-c", "pwd -P; ls -d bin").stdout.split()
    assert out == ["/", "bin"]  # clamped at the container's root


def _all_caps(cfg: dict[str, Any]) -> None:
    """Every capability the runtime itself holds (root here lacks CAP_SYS_RESOURCE)."""
    from tomato._sys.caps import CAP_NAMES

    bounding = int(next(line.split()[1] for line in
                        Path("/proc/self/status").read_text().splitlines()
                        if line.startswith("CapBnd:")), 16)
    set_caps(cfg, [name for i, name in enumerate(CAP_NAMES) if bounding & (1 << i)])


def test_core_pattern_cannot_be_written(root: Path, bundle: Path) -> None:
    current = Path("/proc/sys/kernel/core_pattern").read_text().rstrip("\n")
    # Even with every capability: the read-only /proc/sys stops it.  Writing the
    # current value keeps the host unharmed should this test ever fail.
    edit(bundle, _all_caps)
    proc = run_in(root, bundle, C1, "sh", "-c",
                  f"{{ printf '%s\\n' '{current}' > /proc/sys/kernel/core_pattern; }} 2>&1; "
                  "grep CapEff /proc/self/status", check=False)
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Read-only file system" in lines[0], proc.stdout
    assert int(lines[1].split()[1], 16) & (1 << CAP["CAP_SYS_ADMIN"])


def test_sysfs_cannot_be_written_even_with_every_capability(root: Path, bundle: Path) -> None:
    # uevent_helper names a program the host's kernel would run as root.
    edit(bundle, _all_caps)
    out = run_in(root, bundle, C1, "sh", "-c",
                 "( : > /sys/kernel/uevent_helper ) 2>&1; "
                 "mkdir /sys/fs/cgroup/pids/escape 2>&1; true").stdout.splitlines()
    assert "Read-only file system" in out[0], out
    assert "Read-only file system" in out[1], out


def test_sysrq_trigger_cannot_be_written(root: Path, bundle: Path) -> None:
    if not os.path.exists("/proc/sysrq-trigger"):
        pytest.skip("this kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ off)")
    edit(bundle, _all_caps)
    out = run_in(root, bundle, C1, "sh", "-c",
                 "( : > /proc/sysrq-trigger ) 2>&1; true").stdout
    assert "Read-only file system" in out


def test_kcore_cannot_be_read(root: Path, bundle: Path) -> None:
    if not os.path.exists("/proc/kcore"):
        pytest.skip("this kernel has no /proc/kcore (CONFIG_PROC_KCORE off)")
    edit(bundle, _all_caps)
    out = run_in(root, bundle, C1, "sh", "-c", "head -c 64 /proc/kcore | wc -c").stdout
    assert out.strip() == "0"


# (A redirection error on a special builtin such as ":" ends a POSIX shell:
# every attempt runs in a subshell so pid 1 survives it.)
# The container's init waits for a runtime process to show up in its pid
# namespace, attacks it through /proc/PID/exe, then releases it.  The exec'd
# runtime blocks on the container's /etc/passwd, a FIFO, while it looks up
# HOME (held there by helpers/passwd_hold: the lookup itself no longer blocks):
# so the attack runs, deterministically, while that process is still the
# runtime's own interpreter inside the container.
ATTACKER = r"""
i=0
: > /dev/shm/report
while [ $i -lt 1000 ]; do
  for p in /proc/[0-9]*; do
    [ "$p" = /proc/1 ] && continue
    if grep -q 'tomato[-]runtime' $p/cmdline 2>/dev/null; then
      # wait until it has entered our mount namespace and root (mountinfo needs no
      # ptrace access); from there it cannot pass the FIFO until we write to it
      j=0
      while [ $j -lt 500 ] && ! cmp -s $p/mountinfo /proc/1/mountinfo; do
        j=$((j+1))
        sleep 0.01
      done
      r=/dev/shm/report
      echo "found" > $r
      { readlink $p/exe && echo READLINK-OK || echo READLINK-DENIED; } >> $r 2>&1
      { cat $p/exe > /dev/null && echo READ-OK; } >> $r 2>&1
      ( : >> $p/exe && echo WRITE-OK ) >> $r 2>&1
      echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd
      exec sleep 600
    fi
  done
  i=$((i+1))
  sleep 0.01
done
echo "timeout" > /dev/shm/report
echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd
exec sleep 600
"""


@pytest.mark.parametrize("userns", [False, True], ids=["plain", "userns-ptrace"])
def test_exec_runtime_exe_is_not_reachable_from_inside(root: Path, bundle: Path,
                                                       workdir: Path, userns: bool) -> None:
    """With a user namespace and CAP_SYS_PTRACE in it, only the exec'd runtime being
    non-dumpable stands between the container's root and the host's interpreter."""
    passwd = bundle / "rootfs" / "etc" / "passwd"
    passwd.unlink()
    os.mkfifo(passwd)
    passwd.chmod(0o666)  # the mapped root is "other" to the host-owned rootfs

    def fn(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = False
        cfg["process"]["env"].append("HOME=/root")  # the init itself must not read passwd
        cfg["process"]["args"] = ["sh", "-c", ATTACKER]
        if userns:
            cfg["linux"]["namespaces"].append({"type": "user"})
            cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            set_caps(cfg, ["CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_KILL"])
    edit(bundle, fn)
    if userns:
        for p in (bundle.parent, bundle):
            p.chmod(0o755)
    run_detached(root, bundle, C1)
    try:
        process = {"args": ["cat", "/dev/shm/report"], "env": ["PATH=/bin"], "cwd": "/",
                   "user": {"uid": 0, "gid": 0}}  # no HOME: it reads /etc/passwd
        spec = workdir / "process.json"
        spec.write_text(json.dumps(process))
        # the plain case is the front end's own (front/exec.c): proven, not assumed
        env = {**os.environ, "LD_PRELOAD": str(build_passwd_hold(workdir)),
               **({} if userns else {"TOMATO_RUNTIME_FRONT_ONLY": "1"})}
        out = runtime(root, "exec", "--process", str(spec), C1, timeout=30, env=env).stdout
        lines = out.splitlines()
        assert lines[0] == "found", out
        assert "READLINK-OK" not in out, out
        assert "READ-OK" not in out, out
        assert "WRITE-OK" not in out, out
        assert "READLINK-DENIED" in out, out
        assert out.count("Permission denied") == 2, out  # cat (read) and sh (write)
    finally:
        delete_reaping(root, C1, [])


def test_created_init_exe_is_not_reachable_from_inside(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].__setitem__("args", ["sleep", "60"]))
    runtime(root, "create", "--bundle", str(bundle), C1)
    try:
        out = runtime(root, "exec", C1, "sh", "-c",
                      "{ readlink /proc/1/exe && echo READLINK-OK; } 2>&1; "
                      "{ cat /proc/1/exe > /dev/null && echo READ-OK; } 2>&1; true").stdout
        assert "READLINK-OK" not in out and "READ-OK" not in out, out
    finally:
        runtime(root, "delete", "--force", C1)


def test_exec_process_json_without_capabilities_gets_the_containers(
        root: Path, bundle: Path, workdir: Path) -> None:
    """A process.json with no capabilities must not run with the runtime's full set."""
    pid = run_detached(root, bundle, C1, "sleep", "60")
    try:
        spec = workdir / "process.json"
        spec.write_text(json.dumps({"args": ["cat", "/proc/self/status"], "cwd": "/",
                                    "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
        out = runtime(root, "exec", "--process", str(spec), C1).stdout
        inside = {k: v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
        init = {k: v.strip() for k, _, v in
                (line.partition(":") for line in Path(f"/proc/{pid}/status").read_text()
                 .splitlines())}
        for key in ("CapEff", "CapPrm", "CapBnd"):
            assert inside[key] == init[key], key
    finally:
        runtime(root, "delete", "--force", C1)


def test_mount_target_swapped_after_resolution_is_refused(workdir: Path) -> None:
    """CVE-2021-30465 class: another container sharing a volume swaps a directory
    on the resolved path for a symlink out of the rootfs between resolution and
    mount.  The init mounts on an O_PATH fd it checked, never on the path."""
    from tomato.errors import InvalidArgument
    from tomato.runtime.rootfs import _Pinned

    rootfs = workdir / "rootfs"
    (rootfs / "vol" / "target").mkdir(parents=True)
    outside = workdir / "host-dir"
    (outside / "target").mkdir(parents=True)
    resolved = str(rootfs / "vol" / "target")  # what resolve_in_root returned
    with _Pinned(str(rootfs), resolved, "/vol/target") as target:
        assert os.path.samefile(target, resolved)
    (rootfs / "vol").rename(rootfs / "vol.old")
    (rootfs / "vol").symlink_to(outside)  # the swap
    with pytest.raises(InvalidArgument, match="escapes the rootfs"):
        _Pinned(str(rootfs), resolved, "/vol/target")
