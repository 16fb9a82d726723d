"""One user namespace per user, kept alive by a keeper process (podman's pause process).

The keeper unshares a user and a mount namespace; from outside, newuidmap and
newgidmap (setuid helpers of Debian's uidmap package, which check /etc/subuid and
/etc/subgid themselves) map the user to 0 and the subordinate range to 1..N.
Every rootless command then joins both namespaces with setns(2): inside, the
engine is "root" of that namespace, so it chowns unpacked layers to the mapped
ids, mounts overlayfs and makes containers as root's engine does, while the
kernel keeps every id inside the user's own ranges.

    USER's shell ── tomato ──fork──> keeper: unshare(NEWUSER|NEWNS), waits
                           newuidmap KEEPER 0 UID 1 1 SUB COUNT   (and newgidmap)
                           ──> keeper: mapped, execs `sleep infinity` as "tomato-userns"
    every command: setns(/proc/KEEPER/ns/user), setns(/proc/KEEPER/ns/mnt)

The keeper is recorded in RUN_DIR/userns.pid as "pid start-time" (pid reuse);
one killed (kill -9) is found dead by its start time or state and replaced.  The
mounts made in the old one's mount namespace went with it: start.py mounts a
container's rootfs again when it is missing, as after a reboot.  Never call
from a threaded process (setns into a user namespace refuses one).
"""

from __future__ import annotations

import os

from tomato._sys import libc as c
from tomato.errors import PermissionDenied, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.explain import Explainer

PID_FILE = "userns.pid"
LOCK_FILE = "userns.lock"
KEEPER_NAME = "tomato-userns"  # argv[0] of the keeper, as ps shows it
SLEEP = "/bin/sleep"


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of stat), None for a dead one or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):  # killed, not yet reaped: its namespaces are gone
        return None
    return fields[19]


def alive(run_dir: str) -> int | None:
    """The keeper's pid if the one recorded still runs, else None."""
    try:
        with open(os.path.join(run_dir, PID_FILE)) as f:
            pid_text, _, start = f.read().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if pid <= 1 or _start_time(pid) != start:
        return None
    return pid


def _helper(name: str) -> str:
    import shutil

    found = shutil.which(name)
    if found is None:
        raise Unavailable(f"{name} not found in PATH: a rootless engine needs it "
                          "(install the uidmap package: apt-get install uidmap)")
    return found


def helpers() -> tuple[str, str]:
    """newuidmap's and newgidmap's paths; Unavailable, saying what to install, if not."""
    if not os.access(SLEEP, os.X_OK):
        raise Unavailable(f"{SLEEP} is missing (coreutils): the user namespace keeper runs it")
    return _helper("newuidmap"), _helper("newgidmap")


def start(run_dir: str, uid: int, gid: int, uid_range: tuple[int, int],
          gid_range: tuple[int, int], ex: Explainer | None = None) -> int:
    """A new keeper whose namespaces map ``uid``/``gid`` to 0 and the ranges to 1..N;
    its pid.  Nothing is left behind when the mapping fails."""
    import subprocess

    uidmap, gidmap = helpers()
    unshared_r, unshared_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the keeper
        try:
            os.close(unshared_r)
            os.close(mapped_w)
            os.setsid()
            c.unshare(c.CLONE_NEWUSER | c.CLONE_NEWNS)
            os.write(unshared_w, b"u")
            if os.read(mapped_r, 1) != b"m":
                os._exit(1)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, 65536)
            os.chdir("/")
            os.execv(SLEEP, [KEEPER_NAME, "infinity"])
        finally:
            os._exit(1)
    os.close(unshared_w)
    os.close(mapped_r)
    try:
        if os.read(unshared_r, 1) != b"u":
            raise Unavailable("cannot make a user namespace (unshare(CLONE_NEWUSER) failed: "
                              "is user.max_user_namespaces 0?)")
        for helper, own, (first, count), name in ((uidmap, uid, uid_range, "uid_map"),
                                                  (gidmap, gid, gid_range, "gid_map")):
            argv = [helper, str(pid), "0", str(own), "1", "1", str(first), str(count)]
            if ex is not None and ex.enabled:
                ex.step(f"{os.path.basename(helper)}({pid}): /proc/{pid}/{name} = "
                        f"\"0 {own} 1\\n1 {first} {count}\"", " ".join(argv))
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                raise PermissionDenied(f"{os.path.basename(helper)} refused the mapping "
                                       f"0 {own} 1 1 {first} {count}: {why}")
        os.write(mapped_w, b"m")
    except BaseException:
        _kill(pid)
        raise
    finally:
        os.close(unshared_r)
        os.close(mapped_w)
    start_time = _start_time(pid)
    tmp = os.path.join(run_dir, f".{PID_FILE}.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(f"{pid} {start_time}\n")
    os.replace(tmp, os.path.join(run_dir, PID_FILE))
    return pid


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _map_text(pid: int, name: str) -> str:
    try:
        with open(f"/proc/{pid}/{name}") as f:
            return " / ".join(" ".join(line.split()) for line in f.read().splitlines())
    except OSError as err:
        return err.strerror or "unreadable"


def join(pid: int, ex: Explainer | None = None) -> None:
    """Enter the keeper's user and mount namespaces (cwd kept: setns(NEWNS) moves it)."""
    user = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        mnt = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        os.close(user)
        raise
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "/"
    try:
        if ex is not None and ex.enabled:
            ex.step(f"/proc/{pid}/uid_map: {_map_text(pid, 'uid_map')}; "
                    f"/proc/{pid}/gid_map: {_map_text(pid, 'gid_map')}",
                    f"cat /proc/{pid}/uid_map /proc/{pid}/gid_map")
            ex.step(f"setns(/proc/{pid}/ns/user, CLONE_NEWUSER); "
                    f"setns(/proc/{pid}/ns/mnt, CLONE_NEWNS)",
                    f"nsenter --user --mount --preserve-credentials -t {pid}")
        c.setns(user, c.CLONE_NEWUSER)
        c.setns(mnt, c.CLONE_NEWNS)
    finally:
        os.close(user)
        os.close(mnt)
    try:
        os.chdir(cwd)
    except OSError:
        os.chdir("/")
