"""terminal: true: the pty master reaches --console-socket by SCM_RIGHTS, as runc sends it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .rt import runtime
from .rt_extra import (
    ConsoleListener,
    assert_nothing_left,
    assert_one_line_error,
    cid,
    delete_reaping,
    edit,
    read_until,
    wait_stopped,
)
from .runc_side import needs_runc, runc_root  # noqa: F401 (fixture)

C1 = cid("c1")


def _terminal(bundle: Path, *args: str, size: tuple[int, int] | None = None) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["terminal"] = True
        cfg["process"]["args"] = list(args)
        if size:
            cfg["process"]["consoleSize"] = {"height": size[0], "width": size[1]}
    edit(bundle, fn)


def test_console_socket_gets_a_working_pty(root: Path, bundle: Path, workdir: Path) -> None:
    _terminal(bundle, "sh", "-c",
              "tty; stty size; echo ready; read line; echo got:$line; exit 3", size=(33, 101))
    listener = ConsoleListener(workdir / "console.sock")
    master = -1
    try:
        runtime(root, "create", "--bundle", str(bundle), "--console-socket",
                str(listener.path), C1)
        master, name = listener.receive()
        assert name == "/dev/pts/0"
        assert os.isatty(master)
        runtime(root, "start", C1)
        seen = read_until(master, b"ready")
        text = seen.decode(errors="replace").replace("\r", "")
        assert text.splitlines()[:3] == ["/dev/pts/0", "33 101", "ready"], text
        os.write(master, b"hello tty\n")
        assert b"got:hello tty" in read_until(master, b"got:hello tty")
        wait_stopped(root, C1)
        runtime(root, "delete", C1)
    finally:
        if master >= 0:
            os.close(master)
        listener.close()


def test_container_has_a_controlling_terminal(root: Path, bundle: Path, workdir: Path) -> None:
    # ^C typed on the master becomes SIGINT for the container's foreground process.
    _terminal(bundle, "sh", "-c",
              "trap 'echo interrupted; exit 0' INT; echo armed; "
              "while :; do sleep 0.05; done")
    listener = ConsoleListener(workdir / "console.sock")
    master = -1
    try:
        runtime(root, "create", "--bundle", str(bundle), "--console-socket",
                str(listener.path), C1)
        master, _ = listener.receive()
        runtime(root, "start", C1)
        assert b"armed" in read_until(master, b"armed")
        os.write(master, b"\x03")
        assert b"interrupted" in read_until(master, b"interrupted")
        wait_stopped(root, C1)
        runtime(root, "delete", C1)
    finally:
        if master >= 0:
            os.close(master)
        listener.close()


def test_run_in_the_foreground_proxies_the_pty(root: Path, bundle: Path) -> None:
    _terminal(bundle, "sh", "-c", "tty; exit 4")
    proc = runtime(root, "run", "--bundle", str(bundle), C1, check=False)
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout.replace("\r", "").splitlines() == ["/dev/pts/0"]
    assert_nothing_left(root)


def test_terminal_without_console_socket_is_refused(root: Path, bundle: Path) -> None:
    _terminal(bundle, "true")
    proc = runtime(root, "create", "--bundle", str(bundle), C1, check=False)
    assert_one_line_error(proc, "--console-socket")
    assert_nothing_left(root)


def test_console_socket_without_terminal_is_refused(root: Path, bundle: Path,
                                                     workdir: Path) -> None:
    listener = ConsoleListener(workdir / "console.sock")
    try:
        proc = runtime(root, "create", "--bundle", str(bundle), "--console-socket",
                       str(listener.path), C1, check=False)
    finally:
        listener.close()
    assert_one_line_error(proc, "terminal")
    assert_nothing_left(root)


def test_unreachable_console_socket(root: Path, bundle: Path, workdir: Path) -> None:
    _terminal(bundle, "true")
    missing = workdir / "nobody-listens.sock"
    proc = runtime(root, "create", "--bundle", str(bundle), "--console-socket", str(missing),
                   C1, check=False)
    assert_one_line_error(proc, "console socket", str(missing))
    assert_nothing_left(root)


OWNER = "stat -L -c 'owner %u %g %a' /proc/self/fd/0; echo done"


def _owner_through(root_cmd: list[str], listener: ConsoleListener) -> str:
    """Run a runtime command that hands a pty to ``listener``; what the process said."""
    import subprocess

    proc = subprocess.Popen(root_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    master = -1
    try:
        master, _ = listener.receive()
        seen = read_until(master, b"done").decode(errors="replace").replace("\r", "")
    finally:
        out, err = proc.communicate(timeout=30)
        if master >= 0:
            os.close(master)
    assert proc.returncode == 0, err
    return next((line for line in seen.splitlines() if line.startswith("owner ")), seen)


@needs_runc
def test_the_pty_is_the_process_users_for_run_and_exec(root: Path, bundle: Path,
                                                       workdir: Path,
                                                       runc_root: Path) -> None:  # noqa: F811
    """As runc: the slave is given to process.user.uid; its group stays devpts' gid=5."""
    from .rt import RUNTIME
    from .runc_side import RUNC

    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["terminal"] = True
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        cfg["process"]["args"] = ["sh", "-c", OWNER]
    edit(bundle, fn)
    seen = {}
    for name, binary, state_root in (("ours", RUNTIME, root), ("runc", RUNC, runc_root)):
        listener = ConsoleListener(workdir / f"{name}.sock")
        base = [str(binary), "--root", str(state_root)]
        try:  # runc takes a console socket only when it detaches
            seen[name] = _owner_through([*base, "run", "-d", "--bundle", str(bundle),
                                         "--console-socket", str(listener.path),
                                         f"{name[0]}{C1}"], listener)
        finally:
            listener.close()
            import subprocess

            subprocess.run([*base, "delete", "--force", f"{name[0]}{C1}"], capture_output=True)
    assert seen["ours"] == seen["runc"] == "owner 1000 5 620"

    # exec -t of a process of another user: its own pty, given to it as well
    edit(bundle, lambda cfg: cfg["process"].update(terminal=False, args=["sleep", "60"]))
    runtime(root, "run", "-d", "--bundle", str(bundle), C1)
    listener = ConsoleListener(workdir / "exec.sock")
    pid_file = workdir / "exec.pid"
    try:
        seen_exec = _owner_through([str(RUNTIME), "--root", str(root), "exec", "-t", "-d",
                                    "--pid-file", str(pid_file), "--user", "2000:2000",
                                    "--console-socket", str(listener.path), C1, "sh", "-c",
                                    OWNER], listener)
    finally:
        listener.close()
        orphans = [int(pid_file.read_text())] if pid_file.exists() else []
        delete_reaping(root, C1, orphans)
    assert seen_exec == "owner 2000 5 620"
