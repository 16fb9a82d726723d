"""`tomato serve` on a temp socket, driven by clients nobody here wrote: the docker
CLI (/usr/local/bin/docker or Debian's docker.io; never dockerd), docker-py and
docker-compose.  One server for the package, in a network namespace of its own
(as the network tests: our bridges and veths stay off the host's); after each
test every container, user network and volume is removed through the API."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers.engine import TOMATO, engine_root_with_busybox

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


class UnixHTTP(http.client.HTTPConnection):
    """http.client over the API's unix socket (raw requests for the bad-input tests)."""

    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


@dataclass
class Server:
    root: Path
    sock: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        return {**env, "DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.root / "dockercfg")}

    def docker(self, *args: str, check: bool = True, timeout: float = 60,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout,
                              env=self.env(), input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): "
                                 f"{proc.stderr}\nserver log: {self.log.read_text()[-2000:]}")
        return proc

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        conn = UnixHTTP(self.sock)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            conn.request(method, path, body=data, headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read()
            try:
                return resp.status, json.loads(raw) if raw else None
            except ValueError:
                return resp.status, raw
        finally:
            conn.close()

    def alive(self) -> bool:
        try:
            return self.request("GET", "/_ping")[0] == 200
        except OSError:
            return False


@pytest.fixture(scope="package", autouse=True)
def own_netns() -> Iterator[None]:
    from helpers.engine import own_network_namespace

    with own_network_namespace():
        yield


@pytest.fixture(scope="package")
def server(storage: Path, busybox_rootfs: Path, own_netns: None) -> Iterator[Server]:
    if not os.access(DOCKER, os.X_OK):
        pytest.skip("needs the docker CLI (apt-get install docker.io for its client)")
    root = engine_root_with_busybox(storage / "api-engine", busybox_rootfs)
    env = {**os.environ, "TOMATO_ROOT": str(root), "TOMATO_API_TRACE": "1"}
    (root / "dockercfg").mkdir(exist_ok=True)
    sockdir = Path(tempfile.mkdtemp(prefix="api-", dir=storage))
    sock = str(sockdir / "docker.sock")
    log = sockdir / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([TOMATO, "serve", "--host", f"unix://{sock}"], env=env,
                                stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    srv = Server(root, sock, proc, log)
    deadline = time.monotonic() + 20
    while not srv.alive():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"tomato serve did not start: {log.read_text()}")
        time.sleep(0.05)
    try:
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        keep = os.environ.get("TOMATO_API_KEEP_LOG")  # where to keep the request trace
        if keep:
            shutil.copyfile(log, keep)
        shutil.rmtree(sockdir, ignore_errors=True)


def _cleanup(srv: Server) -> None:
    status, containers = srv.request("GET", "/containers/json?all=1")
    for c in containers if status == 200 else []:
        srv.request("DELETE", f"/containers/{c['Id']}?force=1&v=1")
    status, nets = srv.request("GET", "/networks")
    for n in nets if status == 200 else []:
        if n["Name"] not in ("bridge", "host", "none"):
            srv.request("DELETE", f"/networks/{n['Id']}")
    status, vols = srv.request("GET", "/volumes")
    for v in (vols or {}).get("Volumes") or [] if status == 200 else []:
        srv.request("DELETE", f"/volumes/{v['Name']}?force=1")


@pytest.fixture
def api(server: Server) -> Iterator[Server]:
    """The server, with everything a test made removed after it (and the server alive)."""
    yield server
    _cleanup(server)
    assert server.proc.poll() is None, f"tomato serve died: {server.log.read_text()[-3000:]}"


@pytest.fixture(scope="package")
def registry(storage: Path, own_netns: None) -> Iterator[Any]:
    """A docker-registry on 127.0.0.1 (in our netns) holding busybox:latest, pushed by skopeo."""
    from helpers.registry import Registry, build_oci_image, need, skopeo_push

    need("docker-registry", "skopeo", "umoci")
    base = Path(tempfile.mkdtemp(prefix="api-registry-", dir=storage))
    with Registry(base / "reg") as reg:
        from helpers.rootfs import build_busybox_rootfs

        rootfs = build_busybox_rootfs(storage / "busybox-rootfs")
        build_oci_image(base / "oci", "latest", [rootfs])
        skopeo_push(f"oci:{base / 'oci'}:latest", reg, "busybox:latest")
        yield reg
