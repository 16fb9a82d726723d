"""Unprivileged users for the rootless engine's tests (issue 18).

``make_user`` adds a system user (no home of useradd's: the test gives it one on the
session's tmpfs), its /etc/subuid and /etc/subgid lines, and a runtime directory;
on the way out -- also when the test failed -- it ends every process of the user
and of its subordinate range (by pid), deletes the user and removes exactly the
lines it added.  ``RootlessUser.tomato`` runs the CLI as that user with the system
Python (the venv's lives under /root, which the user cannot read) on a copy of
the sources the user can read.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"
SUB_COUNT = 65536
SRC = Path(__file__).resolve().parents[2] / "src"


def _readable_by_all(path: Path) -> bool:
    """Others may read the file and search every directory above it."""
    return bool(os.stat(path).st_mode & 0o004) and \
        all(os.stat(p).st_mode & 0o001 for p in path.parents)


def readable_sources(dest: Path) -> Path:
    """src/ itself where every user may read it, else a copy every user can read (the
    checkout may be under root's home)."""
    if _readable_by_all(SRC / "tomato" / "cli" / "engine.py"):
        src = SRC
    else:
        src = dest
        _copy_sources(dest)
    cache = pycache_of(dest)
    if not cache.exists():
        # The users' bytecode (python -X pycache_prefix): a user cannot write src's
        # __pycache__, and compiling the engine anew for every command costs seconds
        # under TCG (the cgroup v2 guest).  Sticky and open, as /tmp: the first user
        # to import a module leaves its bytecode for the others to read.
        cache.mkdir(mode=0o1777)
        os.chmod(cache, 0o1777)
    return src


def pycache_of(src_copy: Path) -> Path:
    return src_copy.with_name(src_copy.name + "-pycache")


def _copy_sources(dest: Path) -> None:
    if not dest.exists():
        shutil.copytree(SRC, dest, ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
        for parent in dest.parents:
            if str(parent) in ("/", "/tmp"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o055)


@dataclass
class RootlessUser:
    name: str
    uid: int
    gid: int
    home: Path
    run_dir: Path
    sub_start: int
    src: Path
    pycache: Path | None = None
    sub_count: int = SUB_COUNT
    extra_env: dict[str, str] = field(default_factory=dict)
    #: run (as root) before dropping to the user, e.g. a move into a delegated cgroup
    prefix: list[str] = field(default_factory=list)

    @property
    def data_root(self) -> Path:
        return self.home / ".local" / "share" / "tomato"

    def env(self, **overrides: str | None) -> dict[str, str]:
        env = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
               "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
               "XDG_RUNTIME_DIR": str(self.run_dir), **self.extra_env}
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def command(self, argv: list[str], env: dict[str, str]) -> list[str]:
        """``argv`` as this user, with exactly ``env`` (setpriv, as test_rootless.py)."""
        return [*self.prefix, "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                "--clear-groups",
                "--reset-env", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]

    def tomato_argv(self) -> list[str]:
        code = (f"import sys; sys.path.insert(0, {str(self.src)!r}); "
                "from tomato.cli.engine import main; sys.exit(main())")
        cache = ["-X", f"pycache_prefix={self.pycache}"] if self.pycache else []
        return [SYSTEM_PYTHON, "-I", *cache, "-c", code]

    def tomato(self, *args: str, check: bool = True, timeout: float = 60,
               input: str | None = None, **env: str | None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.command([*self.tomato_argv(), *args], self.env(**env)),
                              capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              cwd="/")
        if check and proc.returncode != 0:
            raise AssertionError(f"tomato {' '.join(args)} as {self.name} failed "
                                 f"({proc.returncode}): {proc.stderr}")
        return proc

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.command(["/bin/sh", "-c", script], self.env()),
                              capture_output=True, text=True, timeout=60, cwd="/")
        if check and proc.returncode != 0:
            raise AssertionError(f"{script!r} as {self.name} failed: {proc.stderr}")
        return proc

    def keeper_pid(self) -> int | None:
        try:
            return int((self.run_dir / "tomato" / "userns.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pids(self) -> list[int]:
        """Every process running as the user or as one of its subordinate ids."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                uid = os.stat(f"/proc/{entry}").st_uid
            except OSError:
                continue
            if uid == self.uid or self.sub_start <= uid < self.sub_start + self.sub_count:
                found.append(int(entry))
        return found


def _edit_subids(path: str, add: str | None = None, remove_prefix: str | None = None) -> None:
    """Append a line or remove the lines of one user, under an flock (tests in other
    sessions edit the same files)."""
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        lines = f.read().splitlines()
        if remove_prefix is not None:
            lines = [line for line in lines if not line.startswith(remove_prefix)]
        if add is not None:
            lines.append(add)
        f.seek(0)
        f.truncate()
        f.write("".join(line + "\n" for line in lines))


def end_processes(user: RootlessUser) -> None:
    """Kill the user's processes (containers, monitors, the keeper) by pid, bounded."""
    for _ in range(50):
        pids = user.pids()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        while True:  # our own children among them (pytest is the subreaper)
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break


@contextmanager
def make_user(base: Path, tag: str, sub_start: int | None = None,
              subids: bool = True) -> Iterator[RootlessUser]:
    """A user named after this process and ``tag`` with a home under ``base``."""
    name = f"trl{os.getpid() % 100000}{tag}"
    if sub_start is None:  # ranges apart from other sessions' and from each other
        sub_start = 1_000_000 + ((os.getpid() % 2000) * 4 + (sum(map(ord, tag)) % 4)) * 131072
    home = base / f"home-{name}"
    run_dir = base / f"run-{name}"
    src = readable_sources(base / "rootless-src")
    pycache = pycache_of(base / "rootless-src")
    os.chmod(base, 0o755)
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", str(home),
                    "--shell", "/bin/sh", name], check=True, capture_output=True)
    try:
        info = pwd.getpwnam(name)
        user = RootlessUser(name, info.pw_uid, info.pw_gid, home, run_dir, sub_start, src,
                            pycache)
        for path in (home, run_dir):
            path.mkdir(mode=0o700)
            os.chown(path, user.uid, user.gid)
        if subids:
            _edit_subids(SUBUID, add=f"{name}:{sub_start}:{SUB_COUNT}")
            _edit_subids(SUBGID, add=f"{name}:{sub_start}:{SUB_COUNT}")
        yield user
    finally:
        try:
            info = pwd.getpwnam(name)
            end_processes(RootlessUser(name, info.pw_uid, info.pw_gid, home, run_dir,
                                       sub_start, src))
        finally:
            subprocess.run(["userdel", name], check=False, capture_output=True)
            _edit_subids(SUBUID, remove_prefix=f"{name}:")
            _edit_subids(SUBGID, remove_prefix=f"{name}:")
            for path in (home, run_dir):
                subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)
