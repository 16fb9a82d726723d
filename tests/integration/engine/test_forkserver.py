"""The CLI's fork server (tomato/cli/forkserver.py, client/tomato-client.c): commands
run in a child of the server on the client's stdio, signals and all; anything the
server must not serve runs the slow way, unchanged."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tomato.cli import forkserver

from .conftest import TOMATO, Engine, until

CLIENT = Path(TOMATO).parent / "tomato-client"
pytestmark = pytest.mark.skipif(not CLIENT.exists(),
                                reason="tomato-client is not built (scripts/install.sh)")


def _server(engine: Engine) -> int:
    """The root's server, started by a command if there is none yet."""
    root = str(engine.root)
    if not forkserver.server_pid(root):
        engine.run("ps")
    assert until(lambda: forkserver.server_pid(root) != 0)
    return forkserver.server_pid(root)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _fd1(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/fd/1")
    except OSError:
        return ""


def _exe(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/exe")


def _start(engine: Engine, *args: str, prefix: tuple[str, ...] = (),
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*prefix, TOMATO, *args], env=env or engine.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


@pytest.fixture
def fresh_root(storage: Path) -> Iterator[Path]:
    root = storage / f"fork-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    yield root
    pid = forkserver.server_pid(str(root))
    shutil.rmtree(root, ignore_errors=True)
    if pid:  # its socket is gone: it leaves within a second
        assert until(lambda: not Path(f"/proc/{pid}").exists() or
                     Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z")


def test_the_first_command_leaves_a_server_and_it_goes_with_its_root(fresh_root: Path) -> None:
    engine = Engine(fresh_root)
    assert engine.run("ps").stdout.startswith("CONTAINER ID")
    assert until(lambda: forkserver.server_pid(str(fresh_root)) != 0)
    pid = forkserver.server_pid(str(fresh_root))
    assert oct((fresh_root / "cli.sock").stat().st_mode & 0o777) == "0o600"
    assert engine.run("ps").stdout.startswith("CONTAINER ID")  # served
    assert forkserver.server_pid(str(fresh_root)) == pid  # one server per root
    shutil.rmtree(fresh_root)
    assert until(lambda: not Path(f"/proc/{pid}").exists() or
                 Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z")


def test_a_command_runs_in_a_child_of_the_server_and_dies_with_its_client(
        engine: Engine) -> None:
    server = _server(engine)
    proc = _start(engine, "run", "--network", "none", "--name", "fsk", "busybox", "sh", "-c",
                  "echo up; sleep 30")
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        assert _exe(proc.pid).endswith(("/tomato-client", "/bin/tomato"))  # the C client
        # the command is a child of the server writing straight to the pipe we read (the
        # server's other children are monitors it adopted as their subreaper)
        ours = os.readlink(f"/proc/{proc.pid}/fd/1")
        (child,) = [c for c in _children(server) if _fd1(c) == ours]
        proc.kill()  # kill -9 of the CLI...
        proc.wait()
        assert until(lambda: child not in _children(server))  # ...takes the command along
        assert engine.inspect("fsk")["State"]["Status"] == "running"  # as docker's CLI would
    finally:
        proc.kill()
        proc.wait()
        engine.run("rm", "-f", "fsk")


def test_signals_stdio_exit_codes_and_the_working_directory(engine: Engine,
                                                              tmp_path: Path) -> None:
    _server(engine)
    proc = _start(engine, "run", "--rm", "--network", "none", "busybox", "sh", "-c",
                  'trap "echo got-int; exit 3" INT; echo ready; while true; do sleep 0.1; done')
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)  # Ctrl-C reaches the client; it passes it on
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3 and out == b"got-int\n"

    both = engine.run("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                      "echo out; echo err >&2; exit 7", check=False)
    assert (both.returncode, both.stdout, both.stderr) == (7, "out\n", "err\n")
    cat = engine.run("run", "--rm", "-i", "--network", "none", "busybox", "cat",
                     input="through stdin\n")
    assert cat.stdout == "through stdin\n"
    (tmp_path / "vars").write_text("GREETING=from-a-relative-path\n")
    env = subprocess.run([TOMATO, "run", "--rm", "--network", "none", "--env-file", "vars",
                          "busybox", "sh", "-c", "echo $GREETING"], cwd=tmp_path,
                         env=engine.env(), capture_output=True, text=True, timeout=60)
    assert env.stdout == "from-a-relative-path\n", env.stderr
    bad = engine.run("run", "--memory", "1x", "busybox", "true", check=False)
    assert bad.returncode == 125 and "invalid size" in bad.stderr


def test_another_network_namespace_runs_the_command_itself(engine: Engine) -> None:
    server = _server(engine)
    proc = _start(engine, "run", "--rm", "--network", "none", "busybox", "sh", "-c",
                  "echo up; sleep 1", prefix=("unshare", "-n"))
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    assert "python" in os.path.basename(_exe(proc.pid))  # refused: the Python CLI ran it
    ours = os.readlink(f"/proc/{proc.pid}/fd/1")
    assert [c for c in _children(server) if _fd1(c) == ours] == []
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert forkserver.server_pid(str(engine.root)) == server  # and it keeps serving


def test_turned_off_it_neither_serves_nor_starts(engine: Engine, fresh_root: Path) -> None:
    _server(engine)
    off = {**engine.env(), "TOMATO_NO_FORKSERVER": "1"}
    proc = _start(engine, "run", "--rm", "--network", "none", "busybox", "sh", "-c",
                  "echo up; sleep 1", env=off)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    assert "python" in os.path.basename(_exe(proc.pid))
    proc.communicate(timeout=30)
    subprocess.run([TOMATO, "ps"], env={**off, "TOMATO_ROOT": str(fresh_root)}, check=True,
                   capture_output=True)
    time.sleep(0.3)
    assert not forkserver.running(str(fresh_root))


def test_garbage_on_the_socket_leaves_the_server_serving(engine: Engine) -> None:
    server = _server(engine)
    for payload in (b"zz", b"0000000ftomato1\0", b"ffffffff" + b"x" * 64,
                    b"00000010notatomato\0\0\0\0\0\0\0\0",
                    b"0000000ftomato1\x000\x005\x00ps\x00"):  # argc says 5, one follows
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(engine.root / "cli.sock"))
            # with stdio and a directory along, as the client sends them, so a malformed
            # request is parsed rather than refused for lack of them
            null = os.open(os.devnull, os.O_RDWR)
            try:
                socket.send_fds(s, [payload], [null, null, null, null])
            finally:
                os.close(null)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            reply = s.recv(100)
            assert reply == b"" or reply.startswith(b"refuse"), reply
    assert engine.run("ps").returncode == 0
    assert forkserver.server_pid(str(engine.root)) == server


def test_code_changed_on_disk_retires_the_server(engine: Engine) -> None:
    server = _server(engine)
    from tomato.engine import humanize

    path = Path(humanize.__file__)
    before = path.stat()
    try:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
        time.sleep(1.1)  # the server compares its code with the disk's once a second
        assert engine.run("ps").stdout.startswith("CONTAINER ID")  # run the slow way
        assert until(lambda: not Path(f"/proc/{server}").exists() or
                     Path(f"/proc/{server}/stat").read_text().split()[2] == "Z")
    finally:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_what_is_served() -> None:
    assert forkserver._served(["run", "--rm", "busybox", "true"])
    assert forkserver._served(["--root", "/x", "ps"])
    assert forkserver._served(["network", "ls"]) and forkserver._served(["pull", "x"])
    assert not forkserver._served(["login", "registry"])  # its prompt wants /dev/tty
    assert not forkserver._served(["unshare", "-u", "sh"])
    assert not forkserver._served(["serve"])
    assert not forkserver._served(["--help"]) and not forkserver._served([])


def test_the_labs_commands_run_as_processes_of_their_own(engine: Engine) -> None:
    """`tomato unshare` execs the command (it is the process under study): never the
    server's child, whose exit the client would then not hear about."""
    _server(engine)
    proc = _start(engine, "unshare", "-u", "sh", "-c", "echo up; sleep 1; exit 4")
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    assert not _exe(proc.pid).endswith(("/tomato-client", "/bin/tomato"))  # but Python
    proc.communicate(timeout=30)
    assert proc.returncode == 4


def test_run_d_hands_over_and_keeps_nothing_of_the_users(engine: Engine) -> None:
    """A served `run -d` becomes the container's monitor once it has started it: the
    user gets the id at once, and the monitor keeps none of the user's stdio."""
    server = _server(engine)
    proc = _start(engine, "run", "-d", "--network", "none", "busybox", "sleep", "30")
    out, err = proc.communicate(timeout=30)  # EOF: nobody holds our pipes any more
    assert proc.returncode == 0, err
    cid = out.decode().strip()
    try:
        monitor = engine.inspect(cid)["State"]["Pid"]
        shim = _parent(monitor)
        assert _parent(shim) == server  # adopted by the server, as every monitor
        for fd in (0, 1, 2):
            target = os.readlink(f"/proc/{shim}/fd/{fd}")
            assert target == "/dev/null" or target.endswith("monitor.log"), target
        failed = engine.run("run", "-d", "--network", "none", "busybox", "nosuchcmd",
                            check=False)
        assert failed.returncode == 125 and "nosuchcmd" in failed.stderr
    finally:
        engine.run("rm", "-f", cid)


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _pid_ns(pid: int | str) -> int:
    return os.stat(f"/proc/{pid}/ns/pid").st_ino


def test_exec_never_leaves_a_server_inside_the_container(engine_root: Path) -> None:
    """Issue 13: `exec` joins the container's pid namespace for its child; a server left
    behind by that command would be born there (host root, every capability), visible to
    and reachable from the container.  With no server running, exec runs the slow way;
    whatever server exists afterwards lives in our pid namespace, and the container
    sees only its own processes."""
    eng = Engine(engine_root)
    root = str(engine_root)
    env = {**eng.env(), "TOMATO_FORKSERVER_IDLE": "30"}
    cid = eng.run("run", "-d", "--network", "none", "busybox", "sleep", "60").stdout.strip()
    try:
        for _ in range(3):  # the server may be left by exec or the next command
            pid = forkserver.server_pid(root)
            if pid:
                os.kill(pid, signal.SIGKILL)
                assert until(lambda p=pid: not forkserver.running(root))
            done = subprocess.run([TOMATO, "exec", cid, "true"], env=env,
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert until(lambda: forkserver.server_pid(root) != 0)
            server = forkserver.server_pid(root)
            assert _pid_ns(server) == _pid_ns("self"), "the server was born in the container"
            seen = eng.run("exec", cid, "ps", "-o", "pid,comm").stdout.split("\n")[1:]
            names = {line.split()[1] for line in seen if line.strip()}
            assert names <= {"sleep", "ps"}, names
    finally:
        eng.run("rm", "-f", cid)
        pid = forkserver.server_pid(root)
        if pid:
            os.kill(pid, signal.SIGKILL)
