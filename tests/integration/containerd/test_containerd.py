"""containerd drives tomato-runtime through its runc shim, exactly as it drives runc.

A private containerd (see helpers/containerd.py) runs busybox with
``ctr run --runc-binary <runtime>``; every test runs once with tomato-runtime
and once with runc, so a difference between the two shows as one failing id.
The shim calls the runtime with runc's command line (``--root R --log
BUNDLE/log.json --log-format json`` then create --bundle --pid-file
[--console-socket], start, exec --process --detach --pid-file
[--console-socket], ps --format json, pause, resume, kill [--all] ID SIG,
delete, delete --force) and passes the last error line of --log to ctr.
Each test also checks that the runtime under test really ran (see
``Runtime.created``) and that nothing of the container is left.
"""

from __future__ import annotations

import errno
import os
import pty
import select
import subprocess
import time

import pytest
from helpers.containerd import Containerd, Runtime, mounts_under

# sh as PID 1 ignores SIGTERM unless it traps it; this one exits 7 on SIGTERM and
# creates /tmp/ready once the trap is set, so a test knows when it may signal.
TRAPPER = ["sh", "-c", 'trap "exit 7" TERM; touch /tmp/ready; echo ready; '
           "while :; do sleep 0.1; done"]


def assert_clean(ctrd: Containerd, runtime: Runtime, cid: str) -> None:
    """The runtime under test ran ``cid``, and nothing of it is left: no task,
    container, runtime state, bundle or mount."""
    assert runtime.created(cid), f"{runtime.name} never created {cid}: {runtime.calls()}"
    assert cid not in ctrd.tasks()
    assert cid not in ctrd.containers()
    assert runtime.containers() == [], f"{runtime.name} kept state for {runtime.containers()}"
    assert not ctrd.task_dir(cid).exists(), f"bundle left: {os.listdir(ctrd.task_dir(cid))}"
    assert mounts_under(ctrd.base) == []


def wait_ready(ctrd: Containerd, cid: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        if ctrd.exec(cid, f"ready{n}", "test", "-f", "/tmp/ready").returncode == 0:
            return
        time.sleep(0.05)
    pytest.fail(f"{cid} never became ready\n{ctrd.log_tail()}")


def stop_and_delete(ctrd: Containerd, cid: str) -> subprocess.CompletedProcess[str]:
    """SIGKILL, wait for STOPPED, delete task and container; returns the task delete."""
    k = ctrd.ctr("task", "kill", "--signal", "SIGKILL", cid)
    assert k.returncode == 0, ctrd.explain(k)
    assert ctrd.wait_status(cid, "STOPPED") == "STOPPED"
    d = ctrd.ctr("task", "delete", cid)
    assert d.returncode == 0, ctrd.explain(d)
    c = ctrd.ctr("container", "delete", cid)
    assert c.returncode == 0, ctrd.explain(c)
    return d


def test_run_returns_exit_code_and_cleans_up(containerd: Containerd, runtime: Runtime) -> None:
    r = containerd.run(runtime, "exit3", "sh", "-c", "exit 3", opts=["--rm"])
    assert r.returncode == 3, containerd.explain(r)
    assert_clean(containerd, runtime, "exit3")


def test_run_output_comes_through(containerd: Containerd, runtime: Runtime) -> None:
    r = containerd.run(runtime, "hello", "sh", "-c", "echo hello; echo pid=$$; echo oops >&2",
                       opts=["--rm"])
    assert r.returncode == 0, containerd.explain(r)
    assert r.stdout == "hello\npid=1\n"
    assert r.stderr == "oops\n"
    assert_clean(containerd, runtime, "hello")


def test_exec_in_detached_container(containerd: Containerd, runtime: Runtime) -> None:
    r = containerd.run(runtime, "det", *TRAPPER, opts=["--detach"])
    assert r.returncode == 0, containerd.explain(r)
    assert containerd.tasks()["det"][1] == "RUNNING"

    e = containerd.exec("det", "e1", "sh", "-c",
                        'echo from-exec; echo pid=$$ >&2; tr "\\0" " " < /proc/1/cmdline; exit 5')
    assert e.returncode == 5, containerd.explain(e)
    lines = e.stdout.splitlines()
    assert lines[0] == "from-exec"
    # The exec'd process shares the container's pid namespace: PID 1 is the trapper.
    assert lines[1].startswith("sh -c trap")
    assert e.stderr.startswith("pid=") and e.stderr != "pid=1\n"

    bad = containerd.exec("det", "e2", "no-such-command")
    assert bad.returncode != 0
    # The runtime's error (its --log JSON) reaches the caller through the shim.
    assert "no-such-command" in bad.stderr, containerd.explain(bad)
    assert containerd.tasks()["det"][1] == "RUNNING"

    stop_and_delete(containerd, "det")
    assert_clean(containerd, runtime, "det")


def test_kill_then_delete(containerd: Containerd, runtime: Runtime) -> None:
    r = containerd.run(runtime, "victim", *TRAPPER, opts=["--detach"])
    assert r.returncode == 0, containerd.explain(r)
    wait_ready(containerd, "victim")

    k = containerd.ctr("task", "kill", "victim")  # SIGTERM
    assert k.returncode == 0, containerd.explain(k)
    assert containerd.wait_status("victim", "STOPPED") == "STOPPED"
    d = containerd.ctr("task", "delete", "victim")
    assert d.returncode == 0, containerd.explain(d)
    # ctr reports the exit status the shim collected: the trap's 7.
    assert "exit code 7" in d.stderr, containerd.explain(d)
    c = containerd.ctr("container", "delete", "victim")
    assert c.returncode == 0, containerd.explain(c)
    assert_clean(containerd, runtime, "victim")


def test_kill_attached_run_returns_exit_code(containerd: Containerd, runtime: Runtime) -> None:
    args = containerd.ctr_argv(*containerd.run_args(runtime, "attached", TRAPPER, ["--rm"]))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no output from the container"
        assert proc.stdout.readline() == b"ready\n"
        k = containerd.ctr("task", "kill", "attached")
        assert k.returncode == 0, containerd.explain(k)
        assert proc.wait(60) == 7
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert_clean(containerd, runtime, "attached")


def test_ps_exec_detached_and_kill_all(containerd: Containerd, runtime: Runtime) -> None:
    r = containerd.run(runtime, "many", "sleep", "1000", opts=["--detach"])
    assert r.returncode == 0, containerd.explain(r)
    e = containerd.ctr("task", "exec", "--detach", "--fifo-dir", str(containerd.fifo_dir),
                       "--exec-id", "bg", "many", "sleep", "999")
    assert e.returncode == 0, containerd.explain(e)

    ps = containerd.ctr("task", "ps", "many")
    assert ps.returncode == 0, containerd.explain(ps)
    pids = [int(line.split()[0]) for line in ps.stdout.splitlines()[1:]]
    init_pid = containerd.tasks()["many"][0]
    assert init_pid in pids and len(pids) == 2, ps.stdout
    assert "ExecID:bg" in ps.stdout

    # sleep as PID 1 ignores SIGTERM; --all SIGKILL reaches every process.
    k = containerd.ctr("task", "kill", "--all", "--signal", "SIGKILL", "many")
    assert k.returncode == 0, containerd.explain(k)
    assert containerd.wait_status("many", "STOPPED") == "STOPPED"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(_gone(pid) for pid in pids):
        time.sleep(0.05)
    assert all(_gone(pid) for pid in pids), f"still running: {pids}"
    d = containerd.ctr("task", "delete", "many")
    assert d.returncode == 0, containerd.explain(d)
    assert containerd.ctr("container", "delete", "many").returncode == 0
    assert_clean(containerd, runtime, "many")


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for the shim to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_pause_resume(containerd: Containerd, runtime: Runtime) -> None:
    r = containerd.run(runtime, "frozen", "sleep", "1000", opts=["--detach"])
    assert r.returncode == 0, containerd.explain(r)
    p = containerd.ctr("task", "pause", "frozen")
    assert p.returncode == 0, containerd.explain(p)
    assert containerd.tasks()["frozen"][1] == "PAUSED"
    u = containerd.ctr("task", "resume", "frozen")
    assert u.returncode == 0, containerd.explain(u)
    assert containerd.tasks()["frozen"][1] == "RUNNING"
    stop_and_delete(containerd, "frozen")
    assert_clean(containerd, runtime, "frozen")


def on_pty(argv: list[str], timeout: float = 60) -> tuple[int, bytes]:
    """Run ``argv`` with a pty as its stdio (``ctr -t`` insists); exit code and output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError as err:
                if err.errno != errno.EIO:  # EIO: every slave fd is closed
                    raise
                break
            if not chunk:
                break
            out += chunk
        return proc.wait(30), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_tty_through_console_socket(containerd: Containerd, runtime: Runtime) -> None:
    """ctr run -t: the shim passes --console-socket and relays the pty master."""
    code, out = on_pty(containerd.ctr_argv(*containerd.run_args(
        runtime, "tty", ["sh", "-c", "tty; echo tty-ok; exit 4"], ["--rm", "--tty"])))
    assert code == 4, out
    assert b"/dev/pts/" in out and b"tty-ok" in out, out
    assert_clean(containerd, runtime, "tty")


def test_exec_tty(containerd: Containerd, runtime: Runtime) -> None:
    """ctr task exec -t: exec --console-socket in a container that has no tty itself."""
    r = containerd.run(runtime, "ttyexec", "sleep", "1000", opts=["--detach"])
    assert r.returncode == 0, containerd.explain(r)
    code, out = on_pty(containerd.ctr_argv(
        "task", "exec", "--tty", "--fifo-dir", str(containerd.fifo_dir), "--exec-id", "t1",
        "ttyexec", "sh", "-c", "tty; echo exec-tty-ok; exit 6"))
    assert code == 6, out
    assert b"/dev/pts/" in out and b"exec-tty-ok" in out, out
    stop_and_delete(containerd, "ttyexec")
    assert_clean(containerd, runtime, "ttyexec")


def test_failed_create_leaves_nothing(containerd: Containerd, runtime: Runtime) -> None:
    r = containerd.run(runtime, "broken", "no-such-command", opts=["--rm"])
    assert r.returncode != 0
    assert "no-such-command" in r.stderr, containerd.explain(r)
    assert_clean(containerd, runtime, "broken")


@pytest.mark.parametrize("opts,script,expected", [
    (["--read-only"], "touch /x 2>/dev/null && echo writable || echo read-only", "read-only"),
    (["--seccomp"], "grep Seccomp: /proc/self/status | tr -d '\\t '", "Seccomp:2"),
    (["--env", "FOO=bar", "--cwd", "/tmp"], 'echo "$FOO $(pwd)"', "bar /tmp"),
    (["--cap-add", "CAP_SYS_ADMIN"],
     "grep CapEff /proc/self/status | cut -f2", "00000000a82425fb"),
], ids=["read-only", "seccomp", "env-cwd", "cap-add"])
# Not here: --no-pivot and --uidmap.  ctr turns them into task options that
# replace the runtime options, so the shim runs plain runc from PATH with
# /run/containerd/runc as its root whatever --runc-binary says.
def test_run_options(containerd: Containerd, runtime: Runtime, opts: list[str], script: str,
                     expected: str) -> None:
    r = containerd.run(runtime, "opts", "sh", "-c", script, opts=["--rm", *opts])
    assert r.returncode == 0, containerd.explain(r)
    assert r.stdout.rstrip("\n") == expected
    assert_clean(containerd, runtime, "opts")


def test_privileged(containerd: Containerd, runtime: Runtime) -> None:
    """--privileged lists every host device, /dev/ptmx among them (which must stay
    the link to pts/ptmx, not be followed into devpts)."""
    r = containerd.run(runtime, "priv", "sh", "-c",
                       "test -L /dev/ptmx && test -c /dev/null && "
                       "grep CapEff /proc/self/status | cut -f2",
                       opts=["--rm", "--privileged"])
    assert r.returncode == 0, containerd.explain(r)
    assert int(r.stdout.strip(), 16) & (1 << 21), "CAP_SYS_ADMIN missing"
    assert_clean(containerd, runtime, "priv")


def test_rootfs_propagation_shared(containerd: Containerd, runtime: Runtime) -> None:
    """pivot_root refuses a shared parent mount: the runtime must make it private."""
    r = containerd.run(runtime, "shared", "sh", "-c", "exit 3",
                       opts=["--rm", "--rootfs-propagation", "shared"])
    assert r.returncode == 3, containerd.explain(r)
    assert_clean(containerd, runtime, "shared")
