"""The last review's hardening of the runtime (issue 14/13), each case both ways: the
front end alone (TOMATO_RUNTIME_FRONT_ONLY=1: a hand-over exits 3) and Python alone
(TOMATO_RUNTIME_PYTHON=1), compared.

- HOME from a hostile image's /etc/passwd (bytes that are not UTF-8) is read as bytes,
  as runc and the front end read it: the same HOME, byte for byte, never a traceback.
- --pid-file's temporary name (PATH.PID.tmp, beside it) is made with O_EXCL|O_NOFOLLOW:
  a symlink planted there is never followed (the file it names is never truncated), the
  command fails as runc's does ("file exists"), and what the runtime made is removed.
- An exec failure longer than the front end's old 4 KB buffer comes out whole, and one
  that is not UTF-8 (the container's bytes) as Python prints it (U+FFFD for each bad
  sequence).
- exec opens the init's /proc/PID/ns/* and root while its pid is pinned (a pidfd): an
  init that dies meanwhile and whose pid a host process gets is "not running", never
  an exec into the host's namespaces and root.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .rt import RUNTIME, runtime
from .rt_extra import cid, delete_reaping, edit, run_detached

FRONT = Path(RUNTIME).parent / "tomato-runtime-front"
pytestmark = pytest.mark.skipif(not FRONT.exists(),
                                reason="tomato-runtime-front is not installed (no C compiler?)")

PATHS = {"front": {"TOMATO_RUNTIME_FRONT_ONLY": "1"}, "python": {"TOMATO_RUNTIME_PYTHON": "1"}}
C = cid("hard")


def call(root: Path, *args: str, path: str = "", env: dict[str, str] | None = None,
         **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    full = {**os.environ, **PATHS.get(path, {}), **(env or {})}
    if "stdout" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run([RUNTIME, "--root", str(root), *args], stdin=subprocess.DEVNULL,
                          env=full, timeout=60, **kwargs)


def both(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The front end alone and Python alone answer alike; the front end's answer."""
    front, python = call(root, *args, path="front"), call(root, *args, path="python")
    assert front.returncode != 3, (args, front.stderr)  # never handed over
    assert b"Traceback" not in python.stderr, python.stderr
    assert (front.returncode, front.stdout, front.stderr) == \
        (python.returncode, python.stdout, python.stderr), args
    return front


@pytest.fixture
def running(root: Path, bundle: Path) -> Iterator[int]:
    pid = run_detached(root, bundle, C, "sleep", "600")
    ADOPTED.clear()
    yield pid
    delete_reaping(root, C, ADOPTED)


#: Host pids of detached exec'd processes (adopted by the suite, reaped at delete).
ADOPTED: list[int] = []


# ---- HOME from a hostile /etc/passwd ----

#: Not UTF-8 (\xff, \xe9 alone), a CR before the newline, a line with a NUL (C's
#: lookup stops there), and the uids' lines after them.
HOSTILE_PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
                  b"\xff\xfe:x:7:7:\xe9:/home/\xe9t\xe9:/bin/sh\n"
                  b"cr:x:8:8::/home/cr\r\n"
                  b"nul:x:9:9::/home/n\0ul:/bin/sh\n"
                  b"late:x:10:10::/home/late:/bin/sh\n")


def _hostile_passwd(bundle: Path) -> None:
    (bundle / "rootfs" / "etc" / "passwd").write_bytes(HOSTILE_PASSWD)


@pytest.mark.parametrize("uid, home", [(7, b"/home/\xe9t\xe9"), (8, b"/home/cr\r"),
                                       (0, b"/root"), (9, b"/home/n"), (10, b"/")])
def test_exec_home_from_a_passwd_that_is_not_utf8(root: Path, bundle: Path, uid: int,
                                                  home: bytes) -> None:
    """exec -u UID: HOME is the passwd's bytes (C's lookup, runc's), both ways."""
    run_detached(root, bundle, C, "sleep", "600")
    try:
        _hostile_passwd(bundle)  # the image's, once it runs
        proc = both(root, "exec", "-u", str(uid), C, "sh", "-c", "echo \"$HOME\"")
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, home + b"\n", b"")
    finally:
        delete_reaping(root, C, [])


@pytest.mark.parametrize("path", PATHS)
def test_run_home_from_a_passwd_that_is_not_utf8(root: Path, bundle: Path, path: str) -> None:
    """The container's own process (create's init, C's or Python's): the same bytes."""
    _hostile_passwd(bundle)

    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["user"] = {"uid": 7, "gid": 7}
        cfg["process"]["args"] = ["sh", "-c", "echo \"$HOME\""]
        cfg["process"]["env"] = [e for e in cfg["process"]["env"] if not e.startswith("HOME=")]

    edit(bundle, fn)
    proc = call(root, "run", "--bundle", str(bundle), C, path=path)
    runtime(root, "delete", "--force", C, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"/home/\xe9t\xe9\n", b"")


#: A blank line before the user's (C's scan once stopped there) and a HOME longer than
#: C's old 4 KiB buffer, after 70 KiB of other users (its old 64 KiB read).
LONG_HOME = b"/home/" + b"h" * 5000
LONG_PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n\n"
               + b"".join(b"u%d:x:%d:%d::/home/u:/bin/sh\n" % (n, n, n)
                          for n in range(1000, 3500))
               + b"long:x:11:11::" + LONG_HOME + b":/bin/sh\n")


@pytest.mark.parametrize("path", PATHS)
def test_home_past_a_blank_line_and_longer_than_4k(root: Path, bundle: Path,
                                                    path: str) -> None:
    (bundle / "rootfs" / "etc" / "passwd").write_bytes(LONG_PASSWD)

    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["user"] = {"uid": 11, "gid": 11}
        cfg["process"]["args"] = ["sh", "-c", "echo \"$HOME\""]
        cfg["process"]["env"] = [e for e in cfg["process"]["env"] if not e.startswith("HOME=")]

    edit(bundle, fn)
    proc = call(root, "run", "--bundle", str(bundle), C, path=path)
    runtime(root, "delete", "--force", C, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, LONG_HOME + b"\n", b"")
    run_detached(root, bundle, C, "sleep", "600")
    try:
        got = both(root, "exec", "-u", "11", C, "sh", "-c", "echo \"$HOME\"")
        assert (got.returncode, got.stdout) == (0, LONG_HOME + b"\n")
    finally:
        delete_reaping(root, C, [])


# ---- --pid-file's temporary name ----

#: Runs the runtime in the very process that planted a symlink at PIDFILE.$$.tmp
#: (exec keeps the pid; the front end hands over to Python by exec too).
PLANT = 'ln -s "$1" "$2.$$.tmp" && shift 2 && exec "$@"'


def planted(root: Path, target: Path, pid_file: Path, *args: str,
            path: str = "") -> subprocess.CompletedProcess[bytes]:
    # to files: a process it did start would hold a pipe open as long as it lives
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(["sh", "-c", PLANT, "sh", str(target), str(pid_file), RUNTIME,
                               "--root", str(root), *args], stdout=out, stderr=err,
                              stdin=subprocess.DEVNULL, timeout=60,
                              env={**os.environ, **PATHS.get(path, {})})
        out.seek(0)
        err.seek(0)
        proc.stdout, proc.stderr = out.read(), err.read()
    return proc


def _in_container(init: int) -> list[int]:
    """Host pids of the processes in init's pid namespace but init."""
    ns = os.readlink(f"/proc/{init}/ns/pid")
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and int(name) != init and \
                    os.readlink(f"/proc/{name}/ns/pid") == ns:
                found.append(int(name))
        except OSError:
            continue  # gone meanwhile
    return found


def test_exec_pid_file_never_follows_a_planted_temporary_name(root: Path, running: int,
                                                               workdir: Path) -> None:
    victim = workdir / "victim"
    pid_file = workdir / "exec.pid"
    answers = {}
    for path in PATHS:
        victim.write_bytes(b"precious")
        proc = planted(root, victim, pid_file, "exec", "-d", "--pid-file", str(pid_file), C,
                       "sleep", "600", path=path)
        assert victim.read_bytes() == b"precious", path  # neither truncated nor written
        assert not pid_file.exists() and not pid_file.is_symlink(), path
        answers[path] = (proc.returncode, proc.stdout, proc.stderr)
        links = list(workdir.glob("exec.pid.*.tmp"))
        assert len(links) == 1 and links[0].is_symlink(), links  # the planted link, not ours
        links[0].unlink()
        assert _in_container(running) == [], path  # as runc: killed, not left unaccounted
    assert answers["front"] == answers["python"], answers
    assert answers["front"] == (255, b"", f"tomato-runtime: cannot write --pid-file "
                                          f"{pid_file}: file exists\n".encode()), answers


def test_exec_pid_file_failures_leave_no_temporary_file(root: Path, running: int,
                                                        workdir: Path) -> None:
    """The rename fails (the pid file's name is a directory): the temporary file the
    runtime made is gone, both ways."""
    taken = workdir / "taken"
    (taken / "inside").mkdir(parents=True)
    proc = both(root, "exec", "-d", "--pid-file", str(taken), C, "true")  # (killed)
    assert proc.returncode == 255 and b"is a directory" in proc.stderr, proc.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["bundle", "state", "taken"]


def test_pid_file_mode_is_runcs(root: Path, running: int, workdir: Path) -> None:
    """0666 less the umask (runc's O_CREATE 0o666), both ways."""
    for path in PATHS:
        pid_file = workdir / f"{path}.pid"
        proc = call(root, "exec", "-d", "--pid-file", str(pid_file), C, "true", path=path,
                    preexec_fn=lambda: os.umask(0o002), stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE)
        assert proc.returncode == 0, proc.stderr
        ADOPTED.append(int(pid_file.read_text()))
        assert (pid_file.stat().st_mode & 0o777) == 0o664, path


@pytest.mark.parametrize("path", PATHS)
def test_create_pid_file_never_follows_a_planted_temporary_name(root: Path, bundle: Path,
                                                                 workdir: Path,
                                                                 path: str) -> None:
    """create and run (C's and Python's): the same; the container is not left behind."""
    victim = workdir / "victim"
    for verb in ("create", "run"):
        victim.write_bytes(b"precious")
        pid_file = workdir / f"{verb}.pid"
        args = (verb, "--bundle", str(bundle), "--pid-file", str(pid_file))
        proc = planted(root, victim, pid_file, *args, *(("-d",) if verb == "run" else ()), C,
                       path=path)
        assert victim.read_bytes() == b"precious", verb
        assert not pid_file.exists() and not pid_file.is_symlink(), verb
        assert (proc.returncode, proc.stderr) == (1, f"tomato-runtime: cannot write "
                                                     f"--pid-file {pid_file}: file exists\n"
                                                     .encode()), proc.stderr
        assert runtime(root, "list", "-q").stdout == ""
        for tmp in workdir.glob(f"{verb}.pid.*.tmp"):
            assert tmp.is_symlink()
            tmp.unlink()


# ---- long (and not UTF-8) exec failures ----

@pytest.mark.parametrize("length", [4094, 4095, 4096, 5000, 8000, 9000, 20000])
def test_exec_failure_longer_than_4k_comes_out_whole(root: Path, running: int,
                                                     length: int) -> None:
    path = "/" + "a" * (length - 1)  # no such file: the child's words, over the error pipe
    proc = both(root, "exec", C, path)
    assert (proc.returncode, proc.stderr) == (
        255, f'tomato-runtime: exec: "{path}": no such file or directory\n'.encode())


#: #! lines naming interpreters that are not there, with bytes that are not UTF-8: the
#: dmz's words (both ways) hold the container's bytes; Python prints them decoded with
#: errors="replace".
BAD_UTF8 = [b"\xff", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82(", b"\xf0\x9f\x98",
            b"\xf4\x90\x80\x80", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe0\x80\xaf",
            b"\xf8\x88\x80\x80\x80", b"caf\xc3\xa9", b"\xf0\x9f\x98\x80", b"\xc2\x85x"]


def test_exec_failure_not_utf8_printed_as_python_does(root: Path, running: int,
                                                      bundle: Path) -> None:
    tmp = bundle / "rootfs" / "tmp"
    for i, name in enumerate(BAD_UTF8):
        script = tmp / f"s{i}"
        script.write_bytes(b"#!/no/" + name + b"sh\necho hi\n")
        script.chmod(0o755)
        proc = both(root, "exec", C, f"/tmp/s{i}")
        assert proc.returncode == 255 and proc.stderr.startswith(
            f"tomato-runtime: exec /tmp/s{i}: interpreter".encode()), proc.stderr
        assert proc.stderr.decode("utf-8").count("\n") == 1  # valid UTF-8, one line


# ---- the init's /proc/PID opens, pinned ----

#: LD_PRELOAD: before the process opens $HOLD_PATH (once), or sends its first signal
#: ($HOLD_SIGNAL), it says so on the FIFO $HOLD_READY and waits for a byte on the FIFO
#: $HOLD_GO -- the window between the runtime's liveness check and its opens or its
#: signal, held open for the test.
HOLD_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void wait_go(void) {
    char byte = '1';
    int ready = (int)syscall(SYS_openat, AT_FDCWD, getenv("HOLD_READY"), O_WRONLY | O_CLOEXEC);
    if (ready < 0 || write(ready, &byte, 1) != 1)
        _exit(99);
    close(ready);
    int go = (int)syscall(SYS_openat, AT_FDCWD, getenv("HOLD_GO"), O_RDONLY | O_CLOEXEC);
    if (go < 0 || read(go, &byte, 1) != 1)
        _exit(99);
    close(go);
}

static void hold(const char *path) {
    const char *want = getenv("HOLD_PATH");
    if (!want || !path || strcmp(path, want) != 0)
        return;
    unsetenv("HOLD_PATH"); /* once: not again in Python after a hand-over */
    wait_go();
}

/* HOLD_SIGNAL: before the first signal sent (kill, or pidfd_send_signal through
 * syscall(), as Python's signal module and the front end call it) */
static void hold_signal(long sig) {
    if (sig == 0 || !getenv("HOLD_SIGNAL"))
        return;
    unsetenv("HOLD_SIGNAL");
    wait_go();
}

long syscall(long n, ...) {
    static long (*real)(long, ...);
    if (!real)
        real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    va_list ap;
    long a[6];
    va_start(ap, n);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (n == SYS_pidfd_send_signal)
        hold_signal(a[1]);
    return real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int kill(pid_t pid, int sig) {
    hold_signal(sig);
    return (int)syscall(SYS_kill, pid, sig);
}

#define MODE(flags) ({ mode_t m = 0; if ((flags) & (O_CREAT | O_TMPFILE)) { va_list ap; \
    va_start(ap, flags); m = va_arg(ap, mode_t); va_end(ap); } m; })
int open(const char *p, int flags, ...) {
    mode_t m = MODE(flags); hold(p);
    return (int)syscall(SYS_openat, AT_FDCWD, p, flags, m);
}
int open64(const char *p, int flags, ...) {
    mode_t m = MODE(flags); hold(p);
    return (int)syscall(SYS_openat, AT_FDCWD, p, flags, m);
}
int openat(int dir, const char *p, int flags, ...) {
    mode_t m = MODE(flags); hold(p);
    return (int)syscall(SYS_openat, dir, p, flags, m);
}
int openat64(int dir, const char *p, int flags, ...) {
    mode_t m = MODE(flags); hold(p);
    return (int)syscall(SYS_openat, dir, p, flags, m);
}
int __open_2(const char *p, int flags) {
    hold(p);
    return (int)syscall(SYS_openat, AT_FDCWD, p, flags, 0);
}
int __open64_2(const char *p, int flags) {
    hold(p);
    return (int)syscall(SYS_openat, AT_FDCWD, p, flags, 0);
}
"""

#: spawn_at PID PROGRAM ARGS...: PROGRAM as process PID of our pid namespace (clone3's
#: set_tid, root's), printed; waits for it (this machine's pid 1 reaps nobody) and
#: prints the signal that ended it.
SPAWN_AT_C = r"""
#define _GNU_SOURCE
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    pid_t want = (pid_t)atoi(argv[1]);
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.exit_signal = SIGCHLD;
    args.set_tid = (uint64_t)(uintptr_t)&want;
    args.set_tid_size = 1;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0) {
        perror("clone3");
        return 1;
    }
    if (pid == 0) {
        execv(argv[2], argv + 2);
        _exit(127);
    }
    printf("%ld\n", pid);
    fflush(stdout);
    int status = 0;
    waitpid((pid_t)pid, &status, 0);
    printf("%d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1); /* what ended it */
    return 0;
}
"""


@pytest.fixture
def hold_tools(workdir: Path) -> tuple[Path, Path]:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler for the test's helpers")
    for name, source in (("hold", HOLD_C), ("spawn_at", SPAWN_AT_C)):
        (workdir / f"{name}.c").write_text(source)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(workdir / "hold.so"),
                    str(workdir / "hold.c")], check=True)
    subprocess.run([cc, "-o", str(workdir / "spawn_at"), str(workdir / "spawn_at.c")],
                   check=True)
    return workdir / "hold.so", workdir / "spawn_at"


def _wait_readable(fd: int, what: str) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    assert poller.poll(30_000), f"never reached: {what}"


def _race(root: Path, bundle: Path, workdir: Path, tools: tuple[Path, Path], path: str,
          hold: dict[str, str], *argv: str) -> tuple[int, bytes, bytes, bool]:
    """Runs the runtime with ARGV, held where HOLD says; meanwhile the init is killed
    and reaped, and a host process (sleep) is made with its pid.  The runtime's answer,
    and whether that process is still alive."""
    hold_so, spawn_at = tools
    init = run_detached(root, bundle, C, "sleep", "600")
    ready, go = workdir / "ready", workdir / "go"
    os.mkfifo(ready)
    os.mkfifo(go)
    ready_fd = os.open(ready, os.O_RDONLY | os.O_NONBLOCK)
    env = {**os.environ, **PATHS.get(path, {}), "LD_PRELOAD": str(hold_so),
           "HOLD_READY": str(ready), "HOLD_GO": str(go)}
    env.update({k: v.replace("INIT", str(init)) for k, v in hold.items()})
    out, err = (open(workdir / name, "w+b") for name in ("out", "err"))
    runner = subprocess.Popen([RUNTIME, "--root", str(root), *argv], env=env,
                              stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    impostor, pin = None, -1
    try:
        _wait_readable(ready_fd, "the runtime's hold")
        os.kill(init, signal.SIGKILL)
        os.waitpid(init, 0)  # the suite is the subreaper: the pid is free
        impostor = subprocess.Popen([str(spawn_at), str(init), "/bin/sleep", "600"],
                                    stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert impostor.stdout is not None
        assert impostor.stdout.readline().strip() == str(init).encode(), \
            "clone3 could not give the pid to our process (taken by another meanwhile?)"
        pin = os.pidfd_open(init)  # the impostor's, for our own signal below
        go_fd = os.open(go, os.O_WRONLY)  # the runtime waits there for it
        os.write(go_fd, b"1")
        os.close(go_fd)
        code = runner.wait(timeout=60)
    finally:
        os.close(ready_fd)
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if impostor is not None:
            # Ended by us (SIGTERM), unless a SIGKILL of the runtime's came first: a
            # group already dying of SIGKILL dies of it, whatever is sent after.
            try:
                if pin >= 0:
                    signal.pidfd_send_signal(pin, signal.SIGTERM)
                elif impostor.poll() is None:
                    impostor.kill()  # (spawn_at itself: the test failed before the pin)
            except ProcessLookupError:
                pass
            impostor.wait(timeout=30)
        runtime(root, "delete", "--force", C, check=False)
    assert impostor.stdout is not None
    survived = impostor.stdout.read().strip() == str(int(signal.SIGTERM)).encode()
    impostor.stdout.close()
    os.close(pin)
    out.seek(0)
    err.seek(0)
    answer = (code, out.read(), err.read(), survived)
    out.close()
    err.close()
    return answer


@pytest.mark.parametrize("path", ["front", "python", "installed"])
def test_exec_never_enters_a_process_that_got_the_dead_inits_pid(
        root: Path, bundle: Path, workdir: Path, hold_tools: tuple[Path, Path],
        path: str) -> None:
    """Held right before its first open of the init's namespaces: the exec must not run
    (in the host's namespaces and root, it would make ESCAPED), and says what an exec
    into a dead container says."""
    escaped = workdir / "escaped"
    code, out, err, _ = _race(root, bundle, workdir, hold_tools, path,
                              {"HOLD_PATH": "/proc/INIT/ns/ipc"},
                              "exec", C, "/bin/sh", "-c", f"touch {escaped}")
    assert not escaped.exists(), (code, out, err)  # it ran in the host's ns and root
    expected = {
        "front": (3, b"", b"tomato-runtime-front: handed over to Python\n"),
        "python": (255, b"", f"tomato-runtime: container {C} is not running\n".encode()),
        "installed": (255, b"", f"tomato-runtime: cannot exec in a stopped container "
                                f"{C}\n".encode()),
    }
    assert (code, out, err) == expected[path]


@pytest.mark.parametrize("path", ["front", "python", "installed"])
def test_kill_never_signals_a_process_that_got_the_dead_inits_pid(
        root: Path, bundle: Path, workdir: Path, hold_tools: tuple[Path, Path],
        path: str) -> None:
    """Held right before it signals: the process that got the pid is not killed, and
    the answer is runc's for a container gone ("container not running", containerd's
    shim matches it)."""
    code, out, err, survived = _race(root, bundle, workdir, hold_tools, path,
                                     {"HOLD_SIGNAL": "1"}, "kill", C, "KILL")
    assert survived, (code, out, err)
    expected = {
        "front": (3, b"", b"tomato-runtime-front: handed over to Python\n"),
        "python": (1, b"", f"tomato-runtime: container not running: {C}\n".encode()),
        "installed": (1, b"", f"tomato-runtime: container not running: {C}\n".encode()),
    }
    assert (code, out, err) == expected[path]
