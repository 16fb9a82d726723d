"""A fork server's child, becoming the client's command (cli/forkserver.py forks it):
the client's stdio, working directory, umask and environment; SIGIO when the client
goes (a killed client takes its command along, as killing the CLI would); and
``Served``, the command's hold on its client, released with the exit code -- at the
end, or earlier by a `run -d` that lives on as the container's monitor."""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable


class Served:
    """A child's hold on its client: the command's ``main`` gets it (``served``), and
    ``release`` tells the client the exit code and lets it go -- at the command's end,
    or earlier when the child lives on (`run -d` that became a container's monitor)."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn: socket.socket | None = conn

    def release(self, code: int) -> None:
        """Tell the client the exit code and let it go, once.  A child that lives on
        after that is no longer tied to it."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        import signal

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        signal.signal(signal.SIGIO, signal.SIG_IGN)  # its hang-up is no longer our death
        try:
            conn.sendall(f"exit {code}\n".encode())
        except OSError:
            pass
        conn.close()


def run_child(conn: socket.socket, fds: list[int], umask: int, argv: list[str],
           env: dict[str, str], run: Callable[[list[str], Served], int]) -> None:
    """Become the command: the client's stdio, directory, umask and environment."""
    import signal

    served = Served(conn)
    code = 125
    try:
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt
        conn.settimeout(None)
        from tomato._sys.libc import set_comm

        set_comm("tomato")
        watch_client(conn)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        os.fchdir(fds[3])
        # Nothing of the server's stays (its listener, its lock): only stdio and conn.
        keep = conn.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        os.umask(umask)
        os.environ.clear()
        os.environ.update(env)
        time.tzset()
        client_stdio()
        sys.argv = argv
        conn.sendall(f"pid {os.getpid()}\n".encode())
        code = run(argv[1:], served)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, int) and exit_.code is not None:
            print(exit_.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 — reported as the CLI would, a traceback
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        served.release(code)
        os._exit(code & 0xFF)


def watch_client(conn: socket.socket) -> None:
    """SIGIO (default: terminate) when the client's end closes: a killed client
    takes its command along, as killing the CLI itself would."""
    import fcntl
    import select
    import signal

    signal.signal(signal.SIGIO, signal.SIG_DFL)
    fd = conn.fileno()
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    if select.select([fd], [], [], 0)[0]:  # it went before we were watching
        os._exit(128 + signal.SIGIO)


def client_stdio() -> None:
    """sys.stdin/stdout/stderr on the client's fds, buffered as Python's own."""
    import io

    def stream(fd: int, writing: bool, errors: str, line: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, "w" if writing else "r", closefd=False)
        buffered = io.BufferedWriter(raw) if writing else io.BufferedReader(raw)
        return io.TextIOWrapper(buffered, encoding="utf-8", errors=errors,
                                line_buffering=line)

    sys.stdin = stream(0, False, "surrogateescape", False)
    sys.stdout = stream(1, True, "surrogateescape", os.isatty(1))
    sys.stderr = stream(2, True, "backslashreplace", True)
    for name in ("stdin", "stdout", "stderr"):  # what shutil.get_terminal_size reads
        setattr(sys, f"__{name}__", getattr(sys, name))
