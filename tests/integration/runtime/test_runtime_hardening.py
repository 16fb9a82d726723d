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
"""

from __future__ import annotations

import os
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


def test_run_home_from_a_passwd_that_is_not_utf8(root: Path, bundle: Path) -> None:
    """The container's own process (create's init, Python's): the same bytes."""
    _hostile_passwd(bundle)

    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["user"] = {"uid": 7, "gid": 7}
        cfg["process"]["args"] = ["sh", "-c", "echo \"$HOME\""]
        cfg["process"]["env"] = [e for e in cfg["process"]["env"] if not e.startswith("HOME=")]

    edit(bundle, fn)
    proc = subprocess.run([RUNTIME, "--root", str(root), "run", "--bundle", str(bundle), C],
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    runtime(root, "delete", "--force", C, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"/home/\xe9t\xe9\n", b"")


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


def test_create_pid_file_never_follows_a_planted_temporary_name(root: Path, bundle: Path,
                                                                 workdir: Path) -> None:
    """create and run (Python's): the same; the container is not left behind."""
    victim = workdir / "victim"
    for verb in ("create", "run"):
        victim.write_bytes(b"precious")
        pid_file = workdir / f"{verb}.pid"
        args = (verb, "--bundle", str(bundle), "--pid-file", str(pid_file))
        proc = planted(root, victim, pid_file, *args, *(("-d",) if verb == "run" else ()), C)
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

@pytest.mark.parametrize("length", [4094, 4095, 4096, 5000, 8000])
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
