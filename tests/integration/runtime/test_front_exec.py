"""`exec` answered by tomato-runtime-front (front/exec.c) and by Python alike.

The front end answers the ordinary exec (containerd's shim's `exec --process F
--detach --pid-file P`, and `exec ID cmd...` with runc's common flags) without
starting Python; everything else goes to Python before anything was changed.
Here each case runs both ways (TOMATO_RUNTIME_PYTHON=1 forces Python) and the
answers are compared: exit code, stdout, stderr, and what the process sees of
itself (ids, capabilities, no_new_privs, seccomp, cwd, env, rlimits, cgroups,
namespaces). TOMATO_RUNTIME_FRONT_ONLY=1 proves the ordinary cases never reach
Python (a hand-over exits 3).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.passwd_hold import build_passwd_hold

from .rt import RUNTIME, runtime
from .rt_extra import ConsoleListener, cid, delete_reaping, edit, read_until, reap, run_detached

FRONT = Path(RUNTIME).parent / "tomato-runtime-front"
pytestmark = pytest.mark.skipif(not FRONT.exists(),
                                reason="tomato-runtime-front is not installed (no C compiler?)")

PATHS = {"front": {"TOMATO_RUNTIME_FRONT_ONLY": "1"}, "python": {"TOMATO_RUNTIME_PYTHON": "1"}}
C = cid("fx")

#: A profile that filters something visible: mkdir fails with EXDEV.
PROFILE = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                         "errnoRet": errno.EXDEV}]}


def call(root: Path, *args: str, path: str = "", env: dict[str, str] | None = None,
         **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    full = {**os.environ, **PATHS.get(path, {}), **(env or {})}
    if "stdout" not in kwargs:  # (a detached process would hold a pipe open)
        kwargs["capture_output"] = True
    return subprocess.run([RUNTIME, "--root", str(root), *args], stdin=subprocess.DEVNULL,
                          env=full, timeout=60, **kwargs)


def both(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The front end alone and Python alone answer alike; the front end's answer."""
    front, python = call(root, *args, path="front"), call(root, *args, path="python")
    assert front.returncode != 3, (args, front.stderr)  # never handed over
    assert (front.returncode, front.stdout, front.stderr) == \
        (python.returncode, python.stdout, python.stderr), args
    assert b"Traceback" not in front.stderr
    return front


@pytest.fixture
def running(root: Path, bundle: Path) -> Iterator[int]:
    """A running sleeper with a seccomp profile, rlimits and a cwd of its own."""
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["seccomp"] = PROFILE
        cfg["process"]["env"].append("FROM_SPEC=yes")
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
                                     {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
        cfg["process"]["cwd"] = "/tmp"

    edit(bundle, fn)
    pid = run_detached(root, bundle, C, "sleep", "600")
    ADOPTED.clear()
    yield pid
    delete_reaping(root, C, ADOPTED)


#: Host pids of detached exec'd processes (adopted by the suite, reaped at delete).
ADOPTED: list[int] = []


def test_create_leaves_the_loadable_program_for_exec(root: Path, running: int) -> None:
    """ROOT/<id>/seccomp.bpf: the cached program and its load flags, 0600."""
    path = root / C / "seccomp.bpf"
    data = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert data[:8] == b"TSECCOMP"
    flags = int.from_bytes(data[8:12], sys.byteorder)
    count = int.from_bytes(data[12:16], sys.byteorder)
    assert flags == 0 and count > 0 and len(data) == 16 + 8 * count
    cached = [p.read_bytes() for p in (root / ".seccomp").iterdir()]
    assert any(c.endswith(data[16:]) for c in cached)


def test_no_program_file_without_a_profile_or_with_warnings(root: Path, bundle: Path) -> None:
    run_detached(root, bundle, C, "sleep", "600")
    try:
        assert not (root / C / "seccomp.bpf").exists()
    finally:
        runtime(root, "delete", "--force", C)
    # a real syscall newer than libseccomp: a warning, so no file (exec stays Python's)
    edit(bundle, lambda cfg: cfg["linux"].__setitem__("seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mseal"], "action": "SCMP_ACT_ERRNO"}]}))
    run_detached(root, bundle, C, "sleep", "600")
    try:
        assert not (root / C / "seccomp.bpf").exists()
    finally:
        runtime(root, "delete", "--force", C)


#: What an exec'd process sees of itself, printed by the container's busybox.
SELF = ("id -u; id -g; id -G; pwd; env | sort; ulimit -n; ulimit -c; umask; "
        "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; "
        "mkdir /tmp/denied 2>&1; for k in ipc uts net cgroup mnt pid; do "
        "readlink /proc/self/ns/$k; done; cat /proc/self/cgroup; ls /proc/self/fd; echo $$")


def _without_pid(out: bytes) -> bytes:
    """The output but its last line (the process's own pid, different each run)."""
    return b"\n".join(out.rstrip(b"\n").split(b"\n")[:-1])


@pytest.mark.parametrize("flags", [
    [],
    ["--env", "FOO=bar", "-e", "FROM_SPEC=overridden", "-e", "HOME=/somewhere"],
    ["--cwd", "/", "--user", "1000:1001"],
    ["-u", "65534", "--no-new-privs"],
    ["--cap", "CAP_SYS_ADMIN", "--cap", "net_raw"],
    ["--user", "1000", "--cap", "CAP_KILL"],
    ["-d=false", "--tty=false", "--preserve-fds", "0"],
    ["-g", "10", "--additional-gids=20", "-u", "1000:1000"],
], ids=["plain", "env", "cwd-user", "nobody-nnp", "caps", "user-caps", "bool-values", "gids"])
def test_exec_both_ways(root: Path, running: int, flags: list[str]) -> None:
    front = call(root, "exec", *flags, C, "sh", "-c", SELF, path="front")
    python = call(root, "exec", *flags, C, "sh", "-c", SELF, path="python")
    assert front.returncode == python.returncode == 0, (front.stderr, python.stderr)
    assert front.stderr == python.stderr == b""
    assert _without_pid(front.stdout) == _without_pid(python.stdout)
    out = front.stdout.decode()
    assert "Seccomp:\t2" in out and os.strerror(errno.EXDEV) in out  # the container's filter
    assert f"{os.readlink(f'/proc/{running}/ns/net')}" in out
    assert int(out.split()[-1]) < 100  # in the container's pid namespace


def test_exec_exit_codes_and_signals_both_ways(root: Path, running: int) -> None:
    for script in ("exit 7", "true", "kill -TERM $$", "kill -KILL $$", "echo out; echo err >&2"):
        both(root, "exec", C, "sh", "-c", script)


@pytest.mark.parametrize("args", [
    ["/nonexistent"], ["nonexistent-command"], ["/etc/passwd"], ["/tmp"], ["/tmp/script"],
    ["/tmp/crlf"], ["/tmp/missing-elf-interp"],
], ids=["missing-path", "missing-command", "not-executable", "directory", "no-interpreter",
        "crlf", "elf-interp"])
def test_exec_failures_both_ways(root: Path, running: int, bundle: Path,
                                 args: list[str]) -> None:
    tmp = bundle / "rootfs" / "tmp"
    (tmp / "script").write_text("#!/no/such/shell -x\necho hi\n")
    (tmp / "crlf").write_bytes(b"#!/bin/sh\r\necho hi\r\n")
    elf = bytearray(Path("/bin/true").read_bytes())
    at = elf.find(b"/lib64/ld-linux-x86-64.so.2")
    if at > 0:
        elf[at:at + 5] = b"/nope"
    (tmp / "missing-elf-interp").write_bytes(bytes(elf))
    for name in ("script", "crlf", "missing-elf-interp"):
        (tmp / name).chmod(0o755)
    proc = both(root, "exec", C, *args)
    assert proc.returncode == 255 and proc.stderr.count(b"\n") == 1, proc.stderr
    both(root, "exec", "--cwd", "/nonexistent", C, "true")
    both(root, "exec", "--user", "1000", "--cwd", "/root", C, "true")


def test_containerd_shims_exec_both_ways(root: Path, running: int, workdir: Path) -> None:
    """`exec --process F --detach --pid-file P`, as containerd's shim runs it: the
    process (with capabilities of its own, or the container's) runs inside, in its
    cgroups, and the pid file names it."""
    init_caps = [line for line in Path(f"/proc/{running}/status").read_text().splitlines()
                 if line.startswith("Cap")]
    for path in PATHS:
        for caps in (None, {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                            "permitted": ["CAP_KILL"]}):
            process: dict[str, Any] = {"args": ["sleep", "30"], "cwd": "/", "env": ["A=b"],
                                       "user": {"uid": 0, "gid": 0,
                                                "additionalGids": [0, 10]},
                                       "terminal": False, "noNewPrivileges": True}
            if caps:
                process["capabilities"] = caps
            spec = workdir / "process.json"
            spec.write_text(json.dumps(process))
            pid_file = workdir / f"{path}.pid"
            proc = call(root, "exec", "--process", str(spec), "--detach", "--pid-file",
                        str(pid_file), C, path=path, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
            assert proc.returncode == 0, (path, caps)
            child = int(pid_file.read_text())
            ADOPTED.append(child)
            try:
                assert Path(f"/proc/{child}/cgroup").read_text() == \
                    Path(f"/proc/{running}/cgroup").read_text()
                for kind in ("ipc", "uts", "net", "cgroup", "mnt", "pid"):
                    assert os.readlink(f"/proc/{child}/ns/{kind}") == \
                        os.readlink(f"/proc/{running}/ns/{kind}"), kind
                text = Path(f"/proc/{child}/status").read_text()
                caps_seen = [line for line in text.splitlines() if line.startswith("Cap")]
                if caps:
                    assert "CapEff:\t0000000000000020" in caps_seen, caps_seen
                else:
                    assert caps_seen[1:] == init_caps[1:], (caps_seen, init_caps)
                assert "NoNewPrivs:\t1" in text and "Seccomp:\t2" in text
                assert "Groups:\t0 10" in text
            finally:
                os.kill(child, 9)
                assert reap(child) or True


def test_exec_tty_through_a_console_socket(root: Path, running: int, workdir: Path) -> None:
    listener = ConsoleListener(workdir / "console.sock")
    try:
        proc = subprocess.Popen(
            [RUNTIME, "--root", str(root), "exec", "-t", "--console-socket",
             str(workdir / "console.sock"), "-d", "--pid-file", str(workdir / "pid"), C,
             "sh", "-c", "tty; echo $((6*7)); sleep 30"],
            env={**os.environ, **PATHS["front"]}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        master, name = listener.receive()
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        try:
            out = read_until(master, b"42")
            assert name.startswith("/dev/pts/") and name.encode() in out, (name, out)
        finally:
            os.close(master)
            ADOPTED.append(int((workdir / "pid").read_text()))
            os.kill(ADOPTED[-1], 9)
    finally:
        listener.close()


def test_exec_into_a_stopped_container_is_worded_alike(root: Path, bundle: Path) -> None:
    run_detached(root, bundle, C, "true")
    try:
        for _ in range(500):
            if json.loads(runtime(root, "state", C).stdout)["status"] == "stopped":
                break
        front, python = call(root, "exec", C, "true"), call(root, "exec", C, "true",
                                                            path="python")
        assert (front.returncode, front.stderr) == (python.returncode, python.stderr)
        assert front.returncode == 255 and b"stopped" in front.stderr, front.stderr
    finally:
        runtime(root, "delete", "--force", C)


def test_what_exec_hands_to_python(root: Path, running: int, workdir: Path) -> None:
    """Not ordinary: handed over (FRONT_ONLY: exit 3) before anything was changed; as
    installed, Python answers."""
    for argv in (["exec", "-t", C, "true"], ["exec", "--cgroup", "sub", C, "true"],
                 ["exec", "--apparmor", "x", C, "true"], ["exec", "-g", "-1", C, "true"],
                 ["exec", "--bogus", C, "true"], ["exec", C], ["exec", "nosuch", "true"],
                 ["exec", "--pid-file", str(workdir / "no/dir/p"), C, "true"],
                 ["exec", "--process", str(workdir / "missing.json"), C],
                 ["exec", "--user", "x", C, "true"], ["exec", "--cap", "CAP_NOPE", C, "true"],
                 ["exec", "-e", "NOEQUALS", C, "true"], ["--explain", "exec", C, "true"]):
        proc = call(root, *argv, path="front")
        assert proc.returncode == 3 and b"handed over" in proc.stderr, (argv, proc.stderr)
    (workdir / "odd.json").write_text(json.dumps({"args": ["true"], "scheduler": {}}))
    proc = call(root, "exec", "--process", str(workdir / "odd.json"), C, path="front")
    assert proc.returncode == 3, proc.stderr
    # a container made by an older tomato: no program file, so Python compiles it
    (root / C / "seccomp.bpf").unlink()
    assert call(root, "exec", C, "true", path="front").returncode == 3
    assert call(root, "exec", C, "true").returncode == 0


#: process.json files Python refuses or words: the front end must answer alike.
HOSTILE_PROCESSES: dict[str, bytes] = {
    "no args": b'{"args": []}',
    "args a string": b'{"args": "true"}',
    "arg not a string": b'{"args": ["true", 1]}',
    "env without =": b'{"args": ["true"], "env": ["NOEQUALS"]}',
    "env empty name": b'{"args": ["true"], "env": ["=x"]}',
    "negative uid": b'{"args": ["true"], "user": {"uid": -1}}',
    "huge uid": b'{"args": ["true"], "user": {"uid": 99999999999999999999}}',
    "uid as text": b'{"args": ["true"], "user": {"uid": "0"}}',
    "unknown rlimit": b'{"args": ["true"], "rlimits": [{"type": "RLIMIT_X", "soft": 1, '
                      b'"hard": 1}]}',
    "soft above hard": b'{"args": ["true"], "rlimits": [{"type": "RLIMIT_CORE", "soft": 2, '
                       b'"hard": 1}]}',
    "rlimit twice": b'{"args": ["true"], "rlimits": [{"type": "RLIMIT_CORE", "soft": 0, '
                    b'"hard": 0}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]}',
    "unknown capability": b'{"args": ["true"], "capabilities": {"bounding": ["CAP_NOPE"]}}',
    "unknown capability set": b'{"args": ["true"], "capabilities": {"extra": []}}',
    "effective not permitted": b'{"args": ["true"], "capabilities": {"effective": ["CAP_KILL"]}}',
    "relative cwd": b'{"args": ["true"], "cwd": "tmp"}',
    "terminal without socket": b'{"args": ["true"], "terminal": true}',
    "terminal as number": b'{"args": ["true"], "terminal": 1}',
    "duplicate member": b'{"args": ["false"], "args": ["true"]}',
    "lone surrogate": b'{"args": ["\\ud800"]}',
    "bad utf-8": b'{"args": ["\xff"]}',
    "nul": b'{"args": ["tr\\u0000ue"]}',
    "deep": b'{"args": ["true"], "x": ' + b"[" * 100000 + b"]" * 100000 + b"}",
    "not json": b'{"args": ["true"',
    "not an object": b'["true"]',
    "empty": b"",
    "apparmor": b'{"args": ["true"], "apparmorProfile": "unconfined"}',
    "clamped rlimit": b'{"args": ["sh", "-c", "ulimit -n"], "rlimits": [{"type": '
                      b'"RLIMIT_NOFILE", "soft": 4194304, "hard": 4194304}]}',
}


@pytest.mark.parametrize("name", HOSTILE_PROCESSES)
def test_hostile_process_files_both_ways(root: Path, running: int, workdir: Path,
                                         name: str) -> None:
    spec = workdir / "process.json"
    spec.write_bytes(HOSTILE_PROCESSES[name])
    installed = call(root, "exec", "--process", str(spec), C)
    python = call(root, "exec", "--process", str(spec), C, path="python")
    assert (installed.returncode, installed.stdout, installed.stderr) == \
        (python.returncode, python.stdout, python.stderr), name
    assert b"Traceback" not in installed.stderr and installed.stderr.count(b"\n") <= 1, \
        installed.stderr
    if name == "clamped rlimit":  # the front end's own, with Python's warning
        front = call(root, "exec", "--process", str(spec), C, path="front")
        assert front.returncode == 0 and b"clamped to" in front.stderr, front.stderr
        assert (front.stdout, front.stderr) == (python.stdout, python.stderr)


def test_exec_log_records_both_ways(root: Path, running: int, workdir: Path) -> None:
    """--debug records on stderr and --log records (the shim reads "exec failed: ...")
    alike from both, but for the exec'd process's pid and the time."""
    import re

    def norm(text: bytes) -> bytes:
        text = re.sub(rb"process \d+ joined", b"process N joined", text)
        return re.sub(rb'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', b"TIME", text)

    for argv in (["--debug", "exec", C, "true"], ["--debug", "exec", C, "nosuch"]):
        front, python = call(root, *argv, path="front"), call(root, *argv, path="python")
        assert front.returncode != 3
        assert (front.returncode, norm(front.stderr)) == (python.returncode, norm(python.stderr))
    for fmt in ("json", "text"):
        logs = []
        for path in PATHS:
            log = workdir / f"{path}-{fmt}.log"
            proc = call(root, "--log", str(log), "--log-format", fmt, "--debug", "exec", C,
                        "/nonexistent", path=path)
            assert proc.returncode == 255, proc.stderr
            logs.append(norm(log.read_bytes()))
        assert logs[0] == logs[1] and b"exec failed: " in logs[0], logs


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@pytest.mark.parametrize("path", PATHS)
def test_the_exec_child_is_not_dumpable_while_it_enters(root: Path, bundle: Path,
                                                         workdir: Path, path: str) -> None:
    """CVE-2019-5736: the runtime's child is non-dumpable from its first step, so a
    process with its very credentials but no CAP_SYS_PTRACE cannot reach its
    /proc/PID/exe.  The child is held where it reads the container's /etc/passwd (a
    FIFO: no HOME; opened blocking through helpers/passwd_hold); the runtime, and
    the prober, run with CAP_SYS_PTRACE out of their bounding sets, so only
    dumpability tells them apart: the (dumpable) runtime parent's exe is readable by
    the same prober."""
    if shutil.which("setpriv") is None:
        pytest.skip("no setpriv (util-linux)")
    passwd = bundle / "rootfs" / "etc" / "passwd"
    passwd.unlink()
    os.mkfifo(passwd)
    edit(bundle, lambda cfg: cfg["process"]["env"].append("HOME=/root"))  # the init's
    run_detached(root, bundle, C, "sleep", "600")
    no_ptrace = ["setpriv", "--bounding-set", "-sys_ptrace"]
    try:
        spec = workdir / "process.json"
        spec.write_text(json.dumps({"args": ["true"], "cwd": "/", "env": ["PATH=/bin"]}))
        runner = subprocess.Popen([*no_ptrace, RUNTIME, "--root", str(root), "exec",
                                   "--process", str(spec), C],
                                  env={**os.environ, **PATHS[path],
                                       "LD_PRELOAD": str(build_passwd_hold(workdir))},
                                  stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        init_mnt = os.readlink(f"/proc/{json.loads(runtime(root, 'state', C).stdout)['pid']}"
                               "/ns/mnt")
        child = 0
        for _ in range(1000):  # bounded: 10 s
            kids = _children(runner.pid)
            if kids and os.readlink(f"/proc/{kids[0]}/ns/mnt") == init_mnt:
                child = kids[0]
                break
            time.sleep(0.01)
        assert child, runner.stderr.read() if runner.poll() is not None and runner.stderr else ""
        probe = subprocess.run([*no_ptrace, "readlink", "-v", f"/proc/{child}/exe"],
                               capture_output=True, text=True, timeout=30)
        control = subprocess.run([*no_ptrace, "readlink", f"/proc/{runner.pid}/exe"],
                                 capture_output=True, text=True, timeout=30)
        try:  # let it go on (a FIFO is not read: the runtime may close it before we write)
            with open(passwd, "w") as f:
                f.write("root:x:0:0:root:/root:/bin/sh\n")
        except BrokenPipeError:
            pass
        assert runner.wait(timeout=30) == 0, runner.stderr.read() if runner.stderr else ""
        assert control.returncode == 0, control.stderr  # same credentials: allowed...
        assert probe.returncode != 0 and "Permission denied" in probe.stderr, probe  # ...but
    finally:
        runtime(root, "delete", "--force", C)


def test_review_findings_both_ways(root: Path, running: int, bundle: Path,
                                   workdir: Path) -> None:
    """A review's cases: an executable FIFO is an error, not a hang (the interpreter
    check opened it blocking); `--pid-file ""` is no pid file; a console socket closed
    at once is an error, not a silent success with a dead pid."""
    fifo = bundle / "rootfs" / "tmp" / "fifo"
    os.mkfifo(fifo)
    fifo.chmod(0o755)
    proc = both(root, "exec", C, "/tmp/fifo")
    assert proc.returncode == 255 and b"exec /tmp/fifo: permission denied" in proc.stderr
    assert both(root, "exec", "--pid-file", "", C, "true").returncode == 0
    assert not list(Path.cwd().glob(".*.tmp"))
    sock_path = workdir / "closer.sock"
    import socket
    import threading

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(8)

    def close_each() -> None:
        for _ in range(2):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()
    closer = threading.Thread(target=close_each, daemon=True)
    closer.start()
    try:
        for p in ("front", "python"):
            # The pty's master goes out after the connect; whether the closer's close
            # comes first is the scheduler's choice: an error (255), or a success whose
            # process is alive -- never a success with a dead pid (the review's case).
            pid_file = workdir / f"closer-{p}.pid"
            proc = call(root, "exec", "-t", "-d", "--pid-file", str(pid_file),
                        "--console-socket", str(sock_path), C, "sleep", "30", path=p)
            assert proc.returncode in (0, 255), proc.stderr
            if proc.returncode == 0:
                pid = int(pid_file.read_text())
                ADOPTED.append(pid)  # reaped at delete: the pid namespace waits for it
                assert Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
            else:
                assert proc.stderr.startswith(b"tomato-runtime: "), proc.stderr
    finally:
        server.close()
        closer.join(timeout=5)
