"""More helpers for the runtime's real-kernel tests (rt.py stays the lead's)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .rt import RUNTIME, config, runtime, state, write_config

# Capability numbers (linux/capability.h) used by the tests' expectations.
CAP = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12,
       "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21, "CAP_AUDIT_WRITE": 29}


#: Cgroups are named tomato/<id> whatever --root is, so ids must not collide
#: with other test runs on this machine (every suite likes "c1").
_SUFFIX = secrets.token_hex(3)


def cid(name: str = "c1") -> str:
    return f"{name}-{_SUFFIX}"


def edit(bundle: Path, fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply fn to config.json in place and write it back."""
    cfg = config(bundle)
    fn(cfg)
    write_config(bundle, cfg)
    return cfg


def set_caps(cfg: dict[str, Any], names: list[str]) -> None:
    cfg["process"]["capabilities"] = {k: list(names) for k in
                                      ("bounding", "effective", "permitted", "ambient")}
    cfg["process"]["capabilities"]["inheritable"] = list(names)


def cap_mask(names: list[str]) -> int:
    mask = 0
    for n in names:
        mask |= 1 << CAP[n]
    return mask


def status_line(text: str, key: str) -> str:
    """The value of ``key:`` in a /proc/PID/status dump."""
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} not in status output: {text!r}")


def wait_for(pred: Callable[[], bool], timeout: float = 5.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def wait_stopped(root: Path, cid: str, timeout: float = 5.0) -> None:
    assert wait_for(lambda: state(root, cid)["status"] == "stopped", timeout), \
        f"{cid} did not stop"


def run_detached(root: Path, bundle: Path, cid: str, *args: str) -> int:
    """`run -d` a container with args; return its host pid."""
    if args:
        edit(bundle, lambda cfg: cfg["process"].__setitem__("args", list(args)))
    runtime(root, "run", "-d", "--bundle", str(bundle), cid)
    return int(state(root, cid)["pid"])


def assert_nothing_left(root: Path) -> None:
    """No container listed and no state directory under --root."""
    assert runtime(root, "list", "-q").stdout == ""
    assert not root.exists() or os.listdir(root) == [], os.listdir(root)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str,
                          code: int = 1) -> None:
    """One "tomato-runtime: ..." line naming every needle, and exit ``code`` (255 for
    exec, as runc's)."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tomato-runtime: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, proc.stderr)


def ns_inode(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


class ConsoleListener:
    """A --console-socket: accepts the runtime's connection and receives the pty master."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.sock.settimeout(10)

    def receive(self) -> tuple[int, str]:
        """(master fd, the name the runtime sent with it)."""
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(10)
            msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        assert fds, "no fd received over the console socket"
        return fds[0], msg.decode(errors="replace")

    def close(self) -> None:
        self.sock.close()


def read_until(fd: int, needle: bytes, timeout: float = 5.0) -> bytes:
    """Read a pty master until needle appears (or EOF/timeout); returns all read."""
    import select

    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every slave closed
            break
        if not chunk:
            break
        buf += chunk
    return buf


def popen_runtime(root: Path, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([RUNTIME, "--root", str(root), *args], text=True, **kwargs)


def reap(pid: int) -> bool:
    """Reap pid if it is a zombie child of ours (the suite is the subreaper that
    adopts detached exec'd processes); True once it is gone."""
    try:
        got, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not os.path.exists(f"/proc/{pid}")
    return got == pid


def delete_reaping(root: Path, container_id: str, orphans: list[int],
                   timeout: float = 20) -> None:
    """`delete --force` while reaping the given adopted processes, as containerd's
    shim would: a pid namespace's init is not gone until every process in it is reaped."""
    proc = popen_runtime(root, "delete", "--force", container_id, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    left = list(orphans)
    while proc.poll() is None and time.monotonic() < deadline:
        left = [p for p in left if not reap(p)]
        time.sleep(0.01)
    if proc.poll() is None:
        proc.kill()
    _, err = proc.communicate()
    assert proc.returncode == 0, err


def host_mountinfo() -> str:
    return Path("/proc/self/mountinfo").read_text()


def new_host_mounts(before: str, *under: Path) -> list[str]:
    """Host mounts made since ``before`` on "/" or at/below one of ``under``
    (other test sessions on this machine mount and unmount elsewhere meanwhile)."""
    new = set(host_mountinfo().splitlines()) - set(before.splitlines())
    out = []
    for line in new:
        point = line.split()[4]
        if point == "/" or any(point == str(u) or point.startswith(str(u).rstrip("/") + "/")
                               for u in under):
            out.append(line)
    return out
