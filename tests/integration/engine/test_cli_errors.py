"""Issue 13 item 15 (and issue 19's abbreviated flags), through the real `tomato`: usage
errors are docker's few lines (not argparse's dump) with docker's exit codes, bad values
are refused in docker's words before anything is pulled or made, a missing interpreter
says which and why (127/126), and a user who is not root gets one line, never a
traceback.  Every CLI case runs twice: the slow way (TOMATO_NO_FORKSERVER) and through
the CLI's fork server, which must answer the same."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tomato.cli import forkserver

from .conftest import TOMATO, Engine, until

SYSTEM_PYTHON = "/usr/bin/python3"
SRC = Path(__file__).resolve().parents[3] / "src"
NCPU = os.cpu_count() or 1


def _both_ways(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    """``tomato args`` without and then through the fork server; both must agree."""
    slow = subprocess.run([TOMATO, *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL,
                          env={**engine.env(), "TOMATO_NO_FORKSERVER": "1"})
    root = str(engine.root)
    if not forkserver.server_pid(root):
        engine.run("ps")  # leaves one
        assert until(lambda: forkserver.server_pid(root) != 0)
    served = engine.run(*args, check=False)
    assert (served.returncode, served.stdout, served.stderr) == \
        (slow.returncode, slow.stdout, slow.stderr), args
    return served


RUN_TAIL = ("\n\nUsage:  tomato run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
            "Run 'tomato run --help' for more information\n")


@pytest.mark.parametrize(("args", "code", "stderr"), [
    (["run", "--pids-limit", "abc", "busybox"], 125,
     'tomato: invalid argument "abc" for "--pids-limit" flag: strconv.ParseInt: parsing '
     '"abc": invalid syntax' + RUN_TAIL),
    (["run", "--pi", "host", "busybox"], 125, "tomato: unknown flag: --pi" + RUN_TAIL),
    (["run", "--pids-lim=3", "busybox"], 125, "tomato: unknown flag: --pids-lim" + RUN_TAIL),
    (["run", "-dz", "busybox"], 125, "tomato: unknown shorthand flag: 'z' in -z" + RUN_TAIL),
    (["run"], 1, "tomato: 'tomato run' requires at least 1 argument" + RUN_TAIL),
    (["ps", "--bogus"], 125, "tomato: unknown flag: --bogus\n\nUsage:  tomato ps [OPTIONS]\n\n"
                             "Run 'tomato ps --help' for more information\n"),
    (["rm"], 1, "tomato: 'tomato rm' requires at least 1 argument\n\n"
                "Usage:  tomato rm [OPTIONS] CONTAINER [CONTAINER...]\n\n"
                "Run 'tomato rm --help' for more information\n"),
    (["rum", "busybox"], 1, "tomato: unknown command: tomato rum\n\n"
                            "Run 'tomato --help' for more information\n"),
])
def test_usage_errors_are_dockers(engine: Engine, args: list[str], code: int,
                                  stderr: str) -> None:
    proc = _both_ways(engine, *args)
    assert (proc.returncode, proc.stdout, proc.stderr) == (code, "", stderr)
    assert engine.ids() == []


@pytest.mark.parametrize(("args", "message"), [
    (["-m", "1k"], "Minimum memory limit allowed is 6MB"),
    (["-m", "20m", "--memory-swap", "10m"],
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    (["--cpus", str(NCPU + 1)],
     f"Range of CPUs is from 0.01 to {NCPU}.00, as there are only {NCPU} CPUs available"),
    (["--restart", "sometimes"], "invalid restart policy: unknown policy 'sometimes'; use one "
                                 "of 'no', 'always', 'on-failure', or 'unless-stopped'"),
    (["-p", "99999:80"], "invalid hostPort: 99999"),
    (["-e", "=x"], 'invalid argument "=x" for "-e, --env" flag: invalid environment '
                   "variable: =x"),
    (["--ulimit", "nofile=a"], 'invalid argument "nofile=a" for "--ulimit" flag: '
                               'strconv.ParseInt: parsing "a": invalid syntax'),
    (["-v", "/x:"], "invalid spec: /x:: empty section between colons"),
])
def test_bad_values_are_refused_before_a_pull(engine: Engine, args: list[str],
                                              message: str) -> None:
    # an image that is nowhere: the value is refused before the engine looks for it
    proc = _both_ways(engine, "run", "--rm", *args, f"no-such-image-{uuid.uuid4().hex[:8]}")
    assert (proc.returncode, proc.stderr) == (125, f"tomato: {message}\n")
    assert engine.ids() == []


# -- a command that cannot be run ----------------------------------------------------
@pytest.fixture(scope="module")
def broken_image(engine_root: Path, busybox_rootfs: Path, storage: Path) -> Iterator[str]:
    """busybox plus programs whose interpreter is missing or cannot be run."""
    rootfs = storage / f"broken-{uuid.uuid4().hex[:8]}"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    scripts = {"entry.sh": "#!/nonexistent/sh\necho never\n",
               "crlf.sh": "#!/bin/sh\r\necho never\n",
               "nested.sh": "#!/not-executable.sh\necho never\n"}
    for name, text in scripts.items():
        (rootfs / name).write_text(text)
        os.chmod(rootfs / name, 0o755)
    (rootfs / "not-executable.sh").write_text("echo never\n")
    shutil.copy2("/usr/bin/true", rootfs / "dynamic")  # the host's: its loader is not here
    tarball = rootfs.with_suffix(".tar")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    name = "broken:latest"
    Engine(engine_root).run("import", "-c", 'ENTRYPOINT ["/entry.sh"]', str(tarball), name)
    yield name
    Engine(engine_root).run("rmi", name)
    shutil.rmtree(rootfs)
    tarball.unlink()


def _loader(path: str) -> str:
    from tomato.runtime.process import _interpreter

    return _interpreter(path)


def test_a_missing_interpreter_is_named(engine: Engine, broken_image: str) -> None:
    loader = _loader("/usr/bin/true")
    assert loader.startswith("/") and os.path.exists(loader)  # the host's own, found
    cases = [
        ([broken_image], 127, 'exec /entry.sh: interpreter "/nonexistent/sh": '
                              "no such file or directory"),
        (["--entrypoint", "/crlf.sh", broken_image], 127,
         'exec /crlf.sh: interpreter "/bin/sh\\r": no such file or directory'),
        (["--entrypoint", "/dynamic", broken_image], 127,
         f'exec /dynamic: interpreter "{loader}": no such file or directory'),
        (["--entrypoint", "/nested.sh", broken_image], 126,
         'exec /nested.sh: interpreter "/not-executable.sh": permission denied'),
    ]
    for args, code, line in cases:
        proc = _both_ways(engine, "run", "--rm", "--network", "none", *args)
        assert (proc.returncode, proc.stderr) == (code, f"tomato-runtime: {line}\n"), args
    # detached: the line is in its logs, the exit code in its state
    cid = engine.run("run", "-d", "--network", "none", broken_image).stdout.strip()
    assert until(lambda: engine.inspect(cid)["State"]["Status"] == "exited")
    assert engine.inspect(cid)["State"]["ExitCode"] == 127
    assert "interpreter \"/nonexistent/sh\"" in engine.run("logs", cid).stderr
    # exec in a running container says the same, as the CLI's own error
    engine.run("run", "-d", "--name", "alive", "--network", "none", "--entrypoint", "sleep",
               broken_image, "60")
    for args, code, line in cases:
        program = args[1] if len(args) > 1 else "/entry.sh"
        proc = _both_ways(engine, "exec", "alive", program)
        assert (proc.returncode, proc.stderr) == (code, f"tomato: {line}\n"), program
    assert sorted(engine.ids()) == sorted([cid, engine.inspect("alive")["Id"]])


# -- a user who is not root ----------------------------------------------------------
@pytest.fixture
def other_user() -> Iterator[pwd.struct_passwd]:
    name = f"tomato-u{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", name],
                   check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)


def _as(user: pwd.struct_passwd, *argv: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """``argv`` as ``user``: its uid and gid, no capabilities.  Where others may not
    even search "/" (this machine's is 0710), the user also gets the group of "/", or
    nothing could be run at all; that group gives it no more of the engine's root."""
    groups = ["--clear-groups"]
    top = os.stat("/")
    if not top.st_mode & stat.S_IXOTH and top.st_mode & stat.S_IXGRP:
        groups = [f"--groups={top.st_gid}"]
    return subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                           *groups, "--reset-env", *argv], capture_output=True, text=True,
                          timeout=60, env=env or {"PATH": "/usr/bin:/bin"})


def test_a_user_who_is_not_root_gets_one_line(engine: Engine,
                                              other_user: pwd.struct_passwd) -> None:
    hint = "(not your engine's root: yours is $XDG_DATA_HOME/tomato, the default --root)"
    # The launcher, whatever this machine lets that user run (here the venv's python
    # may live under root's home): one line, never a traceback.
    for args in (["ps"], ["--root", str(engine.root), "run", "busybox", "true"]):
        proc = _as(other_user, TOMATO, *args)
        assert proc.returncode in (1, 125) and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("tomato: ") and "Traceback" not in proc.stderr
    # The Python CLI itself, from this source tree with the system's python, if that user
    # may read it (a checkout under a private home could not be tested this way).
    probe = _as(other_user, SYSTEM_PYTHON, "-c", f"import os; os.listdir({str(SRC)!r})")
    if not os.path.exists(SYSTEM_PYTHON) or probe.returncode != 0:
        pytest.skip(f"{other_user.pw_name} cannot read {SRC} with {SYSTEM_PYTHON}")
    code = (f"import sys; sys.path.insert(0, {str(SRC)!r}); "
            "from tomato.cli.engine import main; sys.exit(main())")
    cases = [
        (["--root", str(engine.root), "ps"], 1, engine.root),
        (["--root", str(engine.root), "run", "busybox", "true"], 125, engine.root),
        (["--root", str(engine.root), "images"], 1, engine.root),
        (["--root", str(engine.root), "rm", "-f", "x"], 1, engine.root),
        (["--root", str(engine.root / "new"), "volume", "ls"], 1, engine.root / "new"),
    ]
    for args, exit_code, path in cases:
        proc = _as(other_user, SYSTEM_PYTHON, "-I", "-B", "-c", code, *args)
        assert (proc.returncode, proc.stdout, proc.stderr) == \
            (exit_code, "", f"tomato: permission denied: {path} {hint}\n"), args
    # the default root too (a user's own, under a home this user cannot write: the
    # rootless engine's, issue 18), and nothing is made there
    default = Path(other_user.pw_dir) / ".local" / "share" / "tomato"
    existed = default.exists()
    proc = _as(other_user, SYSTEM_PYTHON, "-I", "-B", "-c", code, "ps")
    assert (proc.returncode, proc.stderr) == (1, f"tomato: permission denied: {default} {hint}\n")
    assert default.exists() == existed
    assert not (engine.root / "new").exists()
