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
    edit,
    read_until,
    wait_stopped,
)

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
