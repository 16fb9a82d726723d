"""`exec`: a new process inside a running container, with runc's flags."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .rt import runtime
from .rt_extra import (
    CAP,
    ConsoleListener,
    assert_one_line_error,
    cid,
    delete_reaping,
    edit,
    ns_inode,
    popen_runtime,
    read_until,
    run_detached,
    status_line,
)

C1 = cid("c1")


#: Host pids of detached exec'd processes, reaped while the container is deleted.
ADOPTED: list[int] = []


@pytest.fixture
def running(root: Path, bundle: Path) -> Iterator[int]:
    """A running container (sleep) whose host pid is yielded; force-deleted after."""
    edit(bundle, lambda cfg: cfg["process"]["env"].append("FROM_SPEC=yes"))
    pid = run_detached(root, bundle, C1, "sleep", "600")
    ADOPTED.clear()
    yield pid
    delete_reaping(root, C1, ADOPTED)


def test_exec_joins_the_containers_namespaces(root: Path, running: int) -> None:
    script = "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$; " + "; ".join(
        f"echo {k} $(readlink /proc/self/ns/{k})" for k in ("mnt", "net", "ipc", "uts", "pid",
                                                           "cgroup"))
    out = runtime(root, "exec", C1, "sh", "-c", script).stdout.splitlines()
    assert out[0].strip() == "sleep 600"  # it sees the container's init as pid 1
    assert out[1] != "1" and int(out[1]) < 100
    inside = dict(line.split() for line in out[2:])
    for kind, value in inside.items():
        assert value == ns_inode(running, kind), kind


def test_exec_exit_code(root: Path, running: int) -> None:
    assert runtime(root, "exec", C1, "sh", "-c", "exit 42", check=False).returncode == 42
    assert runtime(root, "exec", C1, "true").returncode == 0


def test_exec_env_cwd_and_user(root: Path, running: int) -> None:
    out = runtime(root, "exec", "--env", "FOO=bar", "-e", "BAZ=qux", "--cwd", "/tmp",
                  "--user", "65534", C1, "sh", "-c",
                  'echo "$FOO $BAZ $FROM_SPEC"; pwd; id -u; id -g').stdout.split("\n")
    assert out[:4] == ["bar qux yes", "/tmp", "65534", "0"]
    out = runtime(root, "exec", "--user", "1000:1001", C1, "sh", "-c", "id -u; id -g").stdout
    assert out.split() == ["1000", "1001"]


def test_exec_inherits_the_containers_security(root: Path, running: int) -> None:
    status = runtime(root, "exec", C1, "cat", "/proc/self/status").stdout
    init_status = Path(f"/proc/{running}/status").read_text()
    for key in ("CapEff", "CapBnd", "NoNewPrivs"):
        assert status_line(status, key) == status_line(init_status, key), key
    assert status_line(status, "NoNewPrivs") == "1"


def test_exec_cap_adds_a_capability(root: Path, running: int) -> None:
    bit = 1 << CAP["CAP_SYS_ADMIN"]
    plain = runtime(root, "exec", C1, "cat", "/proc/self/status").stdout
    assert not int(status_line(plain, "CapEff"), 16) & bit
    added = runtime(root, "exec", "--cap", "CAP_SYS_ADMIN", C1, "cat",
                    "/proc/self/status").stdout
    assert int(status_line(added, "CapEff"), 16) & bit
    assert int(status_line(added, "CapBnd"), 16) & bit


def test_exec_process_json(root: Path, running: int, workdir: Path) -> None:
    spec = {"args": ["sh", "-c", 'echo "$ONLY"; pwd; id -u; echo "${FROM_SPEC-unset}"'],
            "env": ["ONLY=from-process-json", "PATH=/bin:/usr/bin"],
            "cwd": "/dev", "user": {"uid": 2000, "gid": 2000}}
    path = workdir / "process.json"
    path.write_text(json.dumps(spec))
    out = runtime(root, "exec", "--process", str(path), C1).stdout.splitlines()
    assert out == ["from-process-json", "/dev", "2000", "unset"]


def test_exec_detached_with_pid_file(root: Path, running: int, workdir: Path) -> None:
    pid_file = workdir / "exec.pid"
    runtime(root, "exec", "-d", "--pid-file", str(pid_file), C1, "sleep", "300")
    pid = int(pid_file.read_text())
    ADOPTED.append(pid)
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"300"]
    assert ns_inode(pid, "pid") == ns_inode(running, "pid")
    assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{running}/cgroup").read_text()
    listed = json.loads(runtime(root, "ps", "--format", "json", C1).stdout)
    assert sorted(listed) == sorted([running, pid])


def test_exec_tty_with_console_socket(root: Path, running: int, workdir: Path) -> None:
    listener = ConsoleListener(workdir / "console.sock")
    master = -1
    proc = popen_runtime(root, "exec", "--tty", "--console-socket", str(listener.path), C1,
                         "sh", "-c", "tty; echo ready; read x; echo got:$x; exit 5",
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        master, name = listener.receive()
        assert name.startswith("/dev/pts/")
        text = read_until(master, b"ready").decode(errors="replace").replace("\r", "")
        assert text.splitlines()[:2] == [name, "ready"], text
        os.write(master, b"abc\n")
        assert b"got:abc" in read_until(master, b"got:abc")
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 5, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if master >= 0:
            os.close(master)
        listener.close()


def test_exec_tty_in_the_foreground(root: Path, running: int) -> None:
    proc = runtime(root, "exec", "-t", C1, "sh", "-c", "tty; exit 6", check=False)
    assert proc.returncode == 6, proc.stderr
    assert proc.stdout.replace("\r", "").strip().startswith("/dev/pts/")


def test_exec_bad_cwd_and_missing_command(root: Path, running: int) -> None:
    bad_cwd = runtime(root, "exec", "--cwd", "/no/such/dir", C1, "true", check=False)
    assert_one_line_error(bad_cwd, "/no/such/dir", code=255)
    missing = runtime(root, "exec", C1, "no-such-command", check=False)
    assert_one_line_error(missing, "no-such-command", code=255)


@pytest.mark.parametrize("text", ['{"args": ["a\x01b"]}', '{"args": ["\\ud800"]}',
                                  "[" * 100000, '{"args": ', "\xff"])
def test_exec_of_a_hostile_process_file(root: Path, running: int, workdir: Path,
                                        text: str) -> None:
    """A control character, a lone surrogate, deep nesting, truncation, bad UTF-8: one
    line naming the file, never a traceback (the JSON decoder's own errors included)."""
    path = workdir / "process.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    proc = runtime(root, "exec", "--process", str(path), C1, check=False)
    assert_one_line_error(proc, str(path), code=255)


def test_exec_into_a_stopped_container_fails(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].__setitem__("args", ["true"]))
    runtime(root, "run", "--keep", "--bundle", str(bundle), C1)
    try:
        proc = runtime(root, "exec", C1, "true", check=False)
        assert_one_line_error(proc, "stopped", C1, code=255)
    finally:
        runtime(root, "delete", C1)


def test_exec_into_a_missing_container_fails(root: Path) -> None:
    proc = runtime(root, "exec", "nosuch", "true", check=False)
    assert_one_line_error(proc, "nosuch", code=255)


def test_exec_into_a_created_container(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].__setitem__("args", ["sleep", "600"]))
    runtime(root, "create", "--bundle", str(bundle), C1)
    try:
        out = runtime(root, "exec", C1, "sh", "-c", "echo $$; hostname").stdout.split()
        assert out[0] != "1" and out[1] == "runc"
        assert json.loads(runtime(root, "state", C1).stdout)["status"] == "created"
    finally:
        runtime(root, "delete", "--force", C1)


def test_exec_detached_process_is_killed_on_delete(root: Path, bundle: Path,
                                                    workdir: Path) -> None:
    pid = run_detached(root, bundle, C1, "sleep", "600")
    pid_file = workdir / "exec.pid"
    runtime(root, "exec", "-d", "--pid-file", str(pid_file), C1, "sleep", "300")
    child = int(pid_file.read_text())
    delete_reaping(root, C1, [child])
    for p in (pid, child):
        stat = Path(f"/proc/{p}/stat")
        assert not stat.exists() or stat.read_text().split()[2] in ("Z", "X")


def test_exec_into_a_user_namespace(root: Path, bundle: Path, workdir: Path) -> None:
    def fn(cfg: dict) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    edit(bundle, fn)
    for p in (bundle.parent, bundle):
        p.chmod(0o755)
    pid = run_detached(root, bundle, C1, "sleep", "600")
    pid_file = workdir / "exec.pid"
    try:
        out = runtime(root, "exec", C1, "sh", "-c", "id -u; cat /proc/self/uid_map").stdout
        assert out.split() == ["0", "0", "100000", "65536"]
        runtime(root, "exec", "-d", "--pid-file", str(pid_file), "--user", "1000", C1,
                "sleep", "300")
        child = int(pid_file.read_text())
        # uid 1000 inside is 101000 on the host, in the container's user namespace
        uids = status_line(Path(f"/proc/{child}/status").read_text(), "Uid").split()
        assert uids == ["101000"] * 4
        assert ns_inode(child, "user") == ns_inode(pid, "user")
    finally:
        delete_reaping(root, C1, [int(pid_file.read_text())] if pid_file.exists() else [])


def test_exec_gets_the_containers_seccomp(root: Path, bundle: Path) -> None:
    import errno as errno_mod

    edit(bundle, lambda cfg: cfg["linux"].__setitem__("seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": errno_mod.EXDEV}]}))
    run_detached(root, bundle, C1, "sleep", "600")
    try:
        out = runtime(root, "exec", C1, "sh", "-c",
                      "grep Seccomp: /proc/self/status; mkdir /dev/shm/d 2>&1; true").stdout
        lines = out.splitlines()
        assert lines[0].split() == ["Seccomp:", "2"]
        assert os.strerror(errno_mod.EXDEV) in lines[1], out
    finally:
        runtime(root, "delete", "--force", C1)


def test_exec_unreachable_console_socket(root: Path, running: int, workdir: Path) -> None:
    missing = workdir / "nobody-listens.sock"
    proc = runtime(root, "exec", "-t", "--console-socket", str(missing), C1, "true",
                   check=False)
    assert_one_line_error(proc, "console socket", str(missing), code=255)
