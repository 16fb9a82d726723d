"""Users for the rootless engine (tests/helpers/rootless.py): made per test, with their
/etc/subuid and /etc/subgid lines, and removed after, also on failure."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.rootless import SYSTEM_PYTHON, RootlessUser, make_user


def _needs() -> None:
    for tool in (SYSTEM_PYTHON, "/usr/bin/newuidmap", "/usr/bin/newgidmap"):
        if not os.path.exists(tool):
            pytest.skip(f"the rootless engine's tests need {tool} (uidmap, python3)")


@pytest.fixture(scope="session")
def busybox_tar(storage: Path, busybox_rootfs: Path) -> Path:
    """The busybox rootfs as a tar any user can read (`tomato import` as the user)."""
    tar = storage / "rootless-busybox.tar"
    if not tar.exists():
        subprocess.run(["tar", "-C", str(busybox_rootfs), "-cf", str(tar), "."], check=True)
        os.chmod(tar, 0o644)
    return tar


@pytest.fixture
def user(storage: Path) -> Iterator[RootlessUser]:
    _needs()
    with make_user(storage, "a") as made:
        yield made


@pytest.fixture
def other_user(storage: Path) -> Iterator[RootlessUser]:
    _needs()
    with make_user(storage, "b") as made:
        yield made


@pytest.fixture
def busybox_user(user: RootlessUser, busybox_tar: Path) -> RootlessUser:
    """``user`` with busybox:latest imported into its own engine."""
    user.tomato("import", str(busybox_tar), "busybox:latest")
    return user


def free_port() -> int:
    """A port of the host's 127.0.0.1 nobody listens on (for -p and forwards)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.fixture
def host_server() -> Iterator[int]:
    """A server on the host's 127.0.0.1 that greets every connection; its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.sendall(b"host loopback\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(srv.getsockname()[1])
    stop.set()
    thread.join(5)
    srv.close()
