"""The CLI's fork server: `tomato` commands without Python's start-up.

Starting the interpreter and importing the engine costs a `tomato` command
~30 ms of its ~100, and as much CPU again on every one of fifty `run -d` at
once.  So the first command run the slow way leaves a server behind: a
process with the engine imported, listening on ``ROOT/cli.sock``.  The next
`tomato` is the C client (an install's bin/tomato is ``tomato-client`` itself, the
Python launcher beside it as tomato-launcher; the repository's bin/tomato runs
``tomato-client`` when it is there), which sends its argv, environment, umask, working directory and
stdio; the server forks a child that becomes that command -- the same
CLI's ``main`` on the client's terminal (handed to ``serve`` by cli/engine.py,
which this module never imports) -- and the child reports
its pid and exit code back to the client.  See client/tomato-client.c.

It changes nothing the command can see:

- only a client in exactly the server's namespaces and root, with the
  server's uid, is served; any other is refused and runs the command itself;
- code changed on disk since the server started: refused, and the server
  leaves (the next slow command starts a fresh one);
- the client forwards its signals to the child; if the client dies, the
  child gets SIGIO from the connection and dies too, as the CLI would.

The server is single-threaded (its children fork), is the subreaper of what
they leave and ignores SIGCHLD so the kernel reaps it all, holds
``locks/cli-server.lock`` for its lifetime (one per root), and leaves when
idle, when its socket is gone or replaced, or on SIGTERM.
``TOMATO_NO_FORKSERVER=1`` turns all of it off.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from tomato.cli.served import Served

SOCKET_NAME = "cli.sock"
LOCK_NAME = "cli-server.lock"
LOG_NAME = "cli-server.log"
IDLE_SECONDS = float(os.environ.get("TOMATO_FORKSERVER_IDLE", "600"))
NAMESPACES = ("mnt", "net", "pid", "ipc", "uts", "user", "cgroup", "time")
MAX_REQUEST = 1 << 20
PR_SET_CHILD_SUBREAPER = 36

#: the CLI modules of the common commands (the engine's: tomato.engine.preload)
CLI_MODULES = (
    "tomato.cli.engine", "tomato.cli.commands", "tomato.cli.render", "tomato.cli.images",
    "tomato.cli.system", "tomato.cli.containers", "tomato.cli.run_options",
    "tomato.cli.container_tools", "tomato.cli.attaching", "tomato.cli.volumes",
    "tomato.cli.networks", "tomato.cli.served", "tomato.cli.build", "tomato.build.builder",
)


# -- the CLI's side -------------------------------------------------------------------
def lock_path(root: str) -> str:
    return os.path.join(root, "locks", LOCK_NAME)


def server_pid(root: str) -> int:
    """The pid of this root's server, 0 if none (the lock file names its holder)."""
    if not running(root):
        return 0
    try:
        with open(lock_path(root)) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def running(root: str) -> bool:
    """Whether a server holds this root's lock (a flock: gone with its process)."""
    import fcntl

    try:
        fd = os.open(lock_path(root), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def birthplace() -> tuple[tuple[str, int], ...]:
    """Where this process's children are born: its namespaces and root, and the pid and
    time namespaces its children get (which setns can point into a container)."""
    found = list(_namespaces("self"))
    for name in ("pid_for_children", "time_for_children"):
        try:
            found.append((name, os.stat(f"/proc/self/ns/{name}").st_ino))
        except OSError:
            continue
    return tuple(found)


def maybe_start(root: str, born: tuple[tuple[str, int], ...] | None = None,
                entry: str = "tomato.cli.engine") -> None:
    """After a command run the slow way: leave a server for the next ones.

    ``born`` is ``birthplace()`` from when the command began: a command that has since
    joined a container's namespaces (exec, nsenter) must not leave the server -- host
    root, every capability -- where the container can see or reach it.  ``entry`` is
    the module whose ``serve_commands(root)`` the server runs (the CLI's entry point).
    A command a server forked never calls this (it is not run the slow way).
    """
    if os.environ.get("TOMATO_NO_FORKSERVER") or not sys.argv:
        return
    if born is None or birthplace() != born:
        return
    launcher = sys.argv[0]
    if os.path.basename(launcher) not in LAUNCHERS:
        return  # main() called from Python (tests, tools): no server behind their back
    if not client_beside(launcher) or not os.path.isdir(root) or running(root):
        return
    root = os.path.abspath(root)
    code = (f"import sys; sys.path[:] = {sys.path!r}; "
            f"from {entry} import serve_commands; sys.exit(serve_commands({root!r}))")
    pid = os.fork()
    if pid == 0:  # pragma: no cover — the detached server's parent, gone at once
        try:
            os.setsid()
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDWR)
                log = os.open(os.path.join(root, LOG_NAME),
                              os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.dup2(null, 0)
                os.dup2(null, 1)
                os.dup2(log, 2)
                os.closerange(3, 1 << 16)
                os.chdir("/")
                os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", code])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


#: the Python launcher's names: bin/tomato (scripts/install.sh, a tomato-client's
#: script), bin/tomato-launcher (where the installed `tomato` is the client itself)
LAUNCHERS = ("tomato", "tomato-launcher")


def client_beside(launcher: str) -> str:
    """The C client that runs this launcher's commands through a server, "" if none:
    bin/tomato-client, or bin/tomato itself when it is the client (an ELF)."""
    bin_dir = os.path.dirname(os.path.abspath(launcher))
    for name in ("tomato-client", "tomato"):
        path = os.path.join(bin_dir, name)
        if path != os.path.abspath(launcher) and os.access(path, os.X_OK):
            if name == "tomato-client" or _is_elf(path):
                return path
    return ""


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


# -- the server -----------------------------------------------------------------------
def _namespaces(pid: int | str) -> tuple[tuple[str, int], ...]:
    found = []
    for name in NAMESPACES:
        try:
            found.append((name, os.stat(f"/proc/{pid}/ns/{name}").st_ino))
        except OSError:
            continue  # a kernel without it: the same for both sides
    st = os.stat(f"/proc/{pid}/root")  # a chroot is not a namespace, but as different
    found += [("root-dev", st.st_dev), ("root-ino", st.st_ino)]
    return tuple(found)


def _code_stamp() -> tuple[tuple[str, int, int], ...]:
    """Our modules' files as loaded: a change on disk means this server is stale."""
    out = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and (name == "tomato" or name.startswith("tomato.")):
            try:
                st = os.stat(path)
            except OSError:
                out.append((path, 0, 0))
                continue
            out.append((path, st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


#: the command modules served: the engine's everyday commands.  The lab's
#: (chroot, unshare, nsenter: they exec, or are the process under study) and
#: `serve` run as processes of their own.
SERVED_HOMES = ("tomato.cli.containers", "tomato.cli.networks", "tomato.cli.images",
                "tomato.cli.system", "tomato.cli.events")
#: ...but not `login`: its password prompt wants the controlling terminal (/dev/tty),
#: which a child of the server does not have
NOT_SERVED = frozenset({"login"})


def _served(args: list[str]) -> bool:
    from tomato.cli.commands import COMMAND_HOMES, command_word

    word = command_word(args)
    return (word is not None and word not in NOT_SERVED
            and COMMAND_HOMES.get(word) in SERVED_HOMES)


_checked = [0.0]  # when the code on disk was last compared with ours


def _stale(stamp: tuple[tuple[str, int, int], ...]) -> bool:
    """Whether our modules changed on disk: ~150 stats, so at most once a second (a
    burst of fifty `run -d` pays it once; an edit is noticed a second late at worst)."""
    now = time.monotonic()
    if now - _checked[0] < 1.0:
        return False
    _checked[0] = now
    return _code_stamp() != stamp


def _receive(conn: socket.socket) -> tuple[list[bytes], list[int]]:
    """The client's request: its NUL-separated fields and the fds that came along."""
    import array
    import socket

    fds: list[int] = []
    data = b""
    need = 8
    while len(data) < need:
        got = array.array("i")
        chunk, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got.frombytes(payload[:len(payload) - len(payload) % got.itemsize])
                fds.extend(got)
        if not chunk:
            break
        data += chunk
        if need == 8 and len(data) >= 8:
            need = 8 + int(data[:8], 16)
            if need > 8 + MAX_REQUEST:
                break
    if len(data) != need or need == 8:
        for fd in fds:
            os.close(fd)
        raise ValueError("a short or oversized request")
    return data[8:].split(b"\0")[:-1], fds


def _parse(fields: list[bytes]) -> tuple[int, list[str], dict[str, str]]:
    """(umask, argv, environ) from ``tomato1 UMASK ARGC ARGV... ENVC ENV...``."""
    if not fields or fields[0] != b"tomato1":
        raise ValueError("not a tomato-client request")
    text = [os.fsdecode(f) for f in fields]
    try:
        umask, argc = int(text[1]), int(text[2])
        argv = text[3:3 + argc]
        envc = int(text[3 + argc])
    except IndexError:
        raise ValueError("a request cut short") from None
    env = {}
    for item in text[4 + argc:4 + argc + envc]:
        key, sep, value = item.partition("=")
        if sep and key:
            env[key] = value
    if len(argv) != argc or not argv:
        raise ValueError("a malformed argv")
    return umask, argv, env


def serve(root: str, prepare: Callable[[], None],
          run: Callable[[list[str], Served], int]) -> int:
    """Serve ``root``'s clients until idle: ``prepare()`` once (every parser built), then
    each command as ``run(args, served)`` in a forked child (the CLI's ``main``)."""
    import fcntl
    import select
    import signal

    root = os.path.abspath(root)
    os.makedirs(os.path.join(root, "locks"), mode=0o700, exist_ok=True)
    lock = os.open(lock_path(root), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server has this root
    os.ftruncate(lock, 0)
    from tomato.engine.preload import freeze, preload

    preload(CLI_MODULES)
    prepare()
    freeze()  # the parsers too
    stamp = _code_stamp()
    own = _namespaces("self")
    from tomato._sys.libc import set_comm

    set_comm("tomato-forksrv")
    path = os.path.join(root, SOCKET_NAME)
    listener, inode = _bind(root)
    os.write(lock, f"{os.getpid()}\n".encode())  # ready: who we are, for people and tests
    # Subreaper of what our children leave (the container monitors they fork, which
    # outlive them), and SIGCHLD ignored so the kernel reaps them all: nothing is left
    # a zombie of a pid 1 that does not reap.
    from tomato._sys import libc

    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    leaving: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: leaving.append(1))
    signal.signal(signal.SIGINT, lambda *_: leaving.append(1))
    last = time.monotonic()
    try:
        while not leaving:
            try:
                ready, _, _ = select.select([listener], [], [], 1.0)
            except InterruptedError:
                continue
            if not ready:
                if time.monotonic() - last > IDLE_SECONDS or not _still_ours(path, inode):
                    break
                continue
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            last = time.monotonic()
            with conn:
                try:
                    verdict = _handle(conn, own, stamp, run)
                except Exception as err:  # noqa: BLE001 — one bad request never ends us
                    sys.stderr.write(f"tomato fork server: {err!r}\n")
                    verdict = "bad"
            if verdict == "stale":
                break
    finally:
        if _still_ours(path, inode):
            try:
                os.unlink(path)
            except OSError:
                pass
        listener.close()
        os.close(lock)
    return 0


def _bind(root: str) -> tuple[socket.socket, int]:
    import socket

    from tomato.engine.attach import short_path

    path = os.path.join(root, SOCKET_NAME)
    try:
        os.unlink(path)  # a dead server's (we hold the lock: no live one)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    from pathlib import Path

    short, dir_fd = short_path(Path(path))
    old = os.umask(0o177)  # 0600 from the start: it runs anything as us
    try:
        listener.bind(short)
    finally:
        os.umask(old)
        os.close(dir_fd)
    listener.listen(128)
    return listener, os.stat(path).st_ino


def _still_ours(path: str, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _handle(conn: socket.socket, own: tuple[tuple[str, int], ...],
            stamp: tuple[tuple[str, int, int], ...],
            run: Callable[[list[str], Served], int]) -> str:
    import socket
    import struct

    conn.settimeout(5)
    try:
        fields, fds = _receive(conn)
    except (OSError, ValueError):
        return "bad"
    try:
        pid, uid, _gid = struct.unpack("3i", conn.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        if uid != os.geteuid():
            verdict = "refuse another user"
        elif _namespaces(pid) != own:
            verdict = "refuse another namespace"
        elif _stale(stamp):
            verdict = "refuse stale"
        elif len(fds) != 4:
            verdict = "refuse no stdio"
        else:
            verdict = ""
        if not verdict:
            umask, argv, env = _parse(fields)
            if not _served(argv[1:]):
                verdict = "refuse not served here"
    except (OSError, ValueError) as err:
        verdict = f"refuse {err}"
    if verdict:
        for fd in fds:
            os.close(fd)
        try:
            conn.sendall(verdict.encode() + b"\n")
        except OSError:
            pass
        return "stale" if verdict == "refuse stale" else "refused"
    child = os.fork()
    if child == 0:  # pragma: no cover — the forked command
        from tomato.cli.served import run_child

        run_child(conn, fds, umask, argv, env, run)
    for fd in fds:
        os.close(fd)
    return "forked"
