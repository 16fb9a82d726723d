"""`tomato serve` as an ordinary user (the rootless engine's API): the socket is
$XDG_RUNTIME_DIR/tomato/docker.sock, the user's alone, and the docker CLI and
docker-compose drive the user's containers through it as the user."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator

import pytest
from helpers.rootless import RootlessUser

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
COMPOSE = shutil.which("docker-compose")


class UserServer:
    def __init__(self, user: RootlessUser) -> None:
        self.user = user
        self.sock = user.run_dir / "tomato" / "docker.sock"
        self.log = user.home / "serve.log"
        self.config = user.home / "dockercfg"

    def env(self) -> dict[str, str]:
        return self.user.env(DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=str(self.config))

    def run(self, argv: list[str], cwd: str = "/", timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.user.command(argv, self.env()), capture_output=True,
                              text=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} as {self.user.name} failed ({proc.returncode}): "
                                 f"{proc.stdout}\n{proc.stderr}\nserver log: "
                                 f"{self.log.read_text()[-2000:]}")
        return proc

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([DOCKER, *args], check=check)


@pytest.fixture
def served(busybox_user: RootlessUser) -> Iterator[UserServer]:
    u = busybox_user
    srv = UserServer(u)
    log = os.open(srv.log, os.O_WRONLY | os.O_CREAT, 0o644)
    proc = subprocess.Popen(u.command([*u.tomato_argv(), "serve"], u.env()), stdout=log,
                            stderr=log, stdin=subprocess.DEVNULL, cwd="/")
    os.close(log)
    try:
        for _ in range(200):  # bounded: ~10 s
            if srv.sock.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert srv.sock.exists(), f"no socket: {srv.log.read_text()}"
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def _fetch(port: int) -> str:
    last: OSError | None = None
    for _ in range(100):  # bounded: the container's server may not listen yet
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                data = c.recv(200).decode()
                if data:
                    return data
        except OSError as err:
            last = err
        time.sleep(0.05)
    raise AssertionError(f"nothing on 127.0.0.1:{port}: {last}")


def test_the_docker_cli_as_the_user(served: UserServer, other_user: RootlessUser) -> None:
    st = served.sock.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == served.user.uid
    info = served.docker("info", "--format", "{{json .SecurityOptions}}").stdout
    assert "rootless" in info
    out = served.docker("run", "--rm", "busybox", "sh", "-c", "id -u; echo hi").stdout
    assert out == "0\nhi\n"
    port = _free_port()
    cid = served.docker("run", "-d", "-p", f"{port}:80", "busybox", "sh", "-c",
                        "while true; do echo from-the-users-container | nc -l -p 80; done"
                        ).stdout.strip()
    assert _fetch(port) == "from-the-users-container\n"
    assert served.docker("port", cid).stdout.strip() == f"80/tcp -> 0.0.0.0:{port}"
    assert served.docker("ps", "-q").stdout.split() == [cid[:12]]
    # The same containers as the user's tomato sees.
    assert served.user.tomato("ps", "-q").stdout.split() == [cid[:12]]
    refused = served.docker("run", "--rm", "-p", "80:80", "busybox", "true", check=False)
    assert refused.returncode == 125
    assert "cannot publish port 80: ports below 1024 need root" in refused.stderr
    # Another user cannot reach this user's socket.
    other = subprocess.run(other_user.command(
        [DOCKER, "-H", f"unix://{served.sock}", "ps"], other_user.env()),
        capture_output=True, text=True, timeout=60, cwd="/")
    assert other.returncode != 0 and "permission denied" in other.stderr
    served.docker("rm", "-f", cid)
    assert served.docker("ps", "-aq").stdout == ""


COMPOSE_FILE = """\
version: "3"
services:
  web:
    image: busybox
    ports: ["{port}:80"]
    command: ["sh", "-c", "while true; do echo from-compose | nc -l -p 80; done"]
  client:
    image: busybox
    depends_on: [web]
    command:
      - sh
      - -c
      - for i in $$(seq 50); do nc -w 2 web 80 </dev/null && exit 0; sleep 0.2; done; exit 1
"""


@pytest.mark.skipif(COMPOSE is None, reason="needs docker-compose v1 (apt-get install "
                    "docker-compose)")
def test_docker_compose_as_the_user(served: UserServer) -> None:
    assert COMPOSE is not None
    project = served.user.home / "proj"
    project.mkdir()
    port = _free_port()
    (project / "docker-compose.yml").write_text(COMPOSE_FILE.format(port=port))
    shutil.chown(project, served.user.uid, served.user.gid)
    try:
        # The project's network is a user network: the client finds the web by name.
        up = served.run([COMPOSE, "-p", "rootless", "up", "--exit-code-from", "client",
                         "--no-color"], cwd=str(project), check=False)
        assert up.returncode == 0 and "from-compose" in up.stdout, up.stdout + up.stderr
        assert "rootless_default" in served.docker("network", "ls").stdout
        # Up again, detached: the stopped web starts, its port forwarded again.
        served.run([COMPOSE, "-p", "rootless", "up", "-d", "--no-color", "web"],
                   cwd=str(project))
        assert served.docker("port", "rootless_web_1").stdout.strip() == \
            f"80/tcp -> 0.0.0.0:{port}"
        assert _fetch(port) == "from-compose\n"
    finally:
        served.run([COMPOSE, "-p", "rootless", "down"], cwd=str(project), check=False)
    assert served.docker("ps", "-aq").stdout == ""
