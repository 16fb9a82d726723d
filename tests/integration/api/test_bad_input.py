"""Bad input gets Docker-shaped errors and the server keeps serving; clients that
hang up mid-stream leave nothing broken."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from typing import Any

import pytest

from .conftest import DOCKER, Server


def _is_docker_error(status: int, body: Any, want: int) -> None:
    assert status == want, body
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]


def test_malformed_json(api: Server) -> None:
    status, body = api.request("POST", "/v1.43/containers/create", b"{not json",
                               {"Content-Type": "application/json"})
    _is_docker_error(status, body, 400)
    assert "invalid JSON" in body["message"]
    status, body = api.request("POST", "/containers/create", {"Cmd": ["true"]})
    _is_docker_error(status, body, 400)  # no image
    status, body = api.request("GET", "/containers/json?filters=%7Bbroken")
    _is_docker_error(status, body, 400)
    status, body = api.request("POST", "/containers/create",
                               {"Image": "busybox", "HostConfig": {"Binds": ["a:b:c:d"]}})
    _is_docker_error(status, body, 400)
    assert api.alive()


def test_unknown_endpoints_and_methods(api: Server) -> None:
    status, body = api.request("GET", "/v1.43/no/such/endpoint")
    _is_docker_error(status, body, 404)
    assert "page not found" in body["message"]
    status, body = api.request("PATCH", "/containers/json")
    assert status in (404, 405, 501)
    status, body = api.request("GET", "/v1.43/images/search?term=x")
    _is_docker_error(status, body, 501)
    assert api.alive()


@pytest.mark.parametrize("version,word", [("1.12", "too old"), ("1.99", "too new"),
                                          ("2.0", "too new")])
def test_unsupported_api_versions(api: Server, version: str, word: str) -> None:
    status, body = api.request("GET", f"/v{version}/version")
    _is_docker_error(status, body, 400)
    assert word in body["message"]
    env = {**api.env(), "DOCKER_API_VERSION": version}
    proc = subprocess.run([DOCKER, "ps"], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode != 0
    assert api.alive()


@pytest.mark.parametrize("version", ["1.24", "1.30", "1.40", "1.43"])
def test_older_clients_accepted(api: Server, version: str) -> None:
    env = {**api.env(), "DOCKER_API_VERSION": version}
    proc = subprocess.run([DOCKER, "run", "--rm", "busybox", "echo", version],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{version}\n"


def test_ambiguous_prefix(api: Server) -> None:
    ids: list[str] = []
    while True:  # 17 ids always share a first hex digit
        status, body = api.request("POST", "/containers/create",
                                   {"Image": "busybox", "Cmd": ["true"],
                                    "HostConfig": {"NetworkMode": "none"}})
        assert status == 201, body
        ids.append(body["Id"])
        firsts = [i[0] for i in ids]
        shared = next((ch for ch in firsts if firsts.count(ch) > 1), None)
        if shared:
            break
    status, body = api.request("GET", f"/containers/{shared}/json")
    _is_docker_error(status, body, 400)
    assert "multiple IDs found with provided prefix" in body["message"]
    proc = api.docker("rm", shared, check=False)
    assert proc.returncode != 0 and "multiple IDs found" in proc.stderr
    status, body = api.request("GET", f"/containers/{ids[-1][:12]}/json")
    assert status == 200 and body["Id"] == ids[-1]  # a unique prefix still resolves
    assert api.alive()


def test_conflicts_and_missing(api: Server) -> None:
    api.docker("create", "--name", "dup", "busybox", "true")
    proc = api.docker("create", "--name", "dup", "busybox", "true", check=False)
    assert proc.returncode != 0 and 'The container name "/dup" is already in use' in proc.stderr
    status, body = api.request("POST", "/containers/dup/exec", {"Cmd": ["true"]})
    _is_docker_error(status, body, 409)
    status, body = api.request("GET", "/containers/nosuch/json")
    _is_docker_error(status, body, 404)
    assert body["message"] == "No such container: nosuch"
    status, body = api.request("POST", "/containers/create", {"Image": "nosuch:tag"})
    _is_docker_error(status, body, 404)
    assert body["message"] == "No such image: nosuch:tag"
    proc = api.docker("start", "nosuch", check=False)
    assert "No such container: nosuch" in proc.stderr


def _hijack(api: Server, path: str, body: bytes = b"") -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(api.sock)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
              + body)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED"), head
    assert b"Upgrade: tcp" in head
    return s


def test_disconnect_mid_attach(api: Server) -> None:
    api.docker("run", "-d", "--name", "chatty", "busybox", "sh", "-c",
               "while true; do echo chatter; sleep 0.05; done")
    s = _hijack(api, "/v1.43/containers/chatty/attach?stream=1&stdout=1&stderr=1")
    data = b""
    while data.count(b"chatter") < 3:
        data += s.recv(4096)
    assert data[:1] == b"\x01" and data[4:8] == (8).to_bytes(4, "big")  # stdout, 8-byte frame
    s.close()  # hang up mid-stream
    time.sleep(0.5)
    assert api.alive()
    assert api.docker("inspect", "-f", "{{.State.Running}}", "chatty").stdout.strip() == "true"
    s = _hijack(api, "/v1.43/containers/chatty/attach?stream=1&stdout=1")
    assert b"chatter" in s.recv(4096)  # attaching again works
    s.close()
    # a foreground `docker run` killed mid-attach: the container lives on, rm -f cleans up
    run = subprocess.Popen([DOCKER, "run", "--name", "orphan", "busybox", "sh", "-c",
                            "echo up; sleep 1000"], stdout=subprocess.PIPE, env=api.env())
    assert run.stdout is not None and run.stdout.readline() == b"up\n"
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert api.docker("inspect", "-f", "{{.State.Running}}", "orphan").stdout.strip() == "true"
    api.docker("rm", "-f", "orphan", "chatty")
    assert api.docker("ps", "-aq").stdout == ""


def test_disconnect_mid_exec(api: Server) -> None:
    api.docker("run", "-d", "--name", "ex", "busybox", "sleep", "1000")
    status, body = api.request("POST", "/containers/ex/exec",
                               {"Cmd": ["sh", "-c", "while true; do echo x; sleep 0.05; done"],
                                "AttachStdout": True})
    assert status == 201
    s = _hijack(api, f"/exec/{body['Id']}/start", json.dumps({"Detach": False}).encode())
    assert b"x\n" in s.recv(4096)
    s.close()
    assert api.alive()
    assert api.docker("exec", "ex", "echo", "still").stdout == "still\n"


def test_disconnect_mid_pull(api: Server, registry: Any) -> None:
    repo = f"{registry.addr}/busybox"
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(api.sock)
        s.sendall(f"POST /v1.43/images/create?fromImage={repo}&tag=latest HTTP/1.1\r\n"
                  "Host: docker\r\nContent-Length: 0\r\n\r\n".encode())
        assert s.recv(64).startswith(b"HTTP/1.1 200")
        s.close()
        api.request("DELETE", f"/images/{repo}:latest")
    assert api.alive()
    proc = api.docker("pull", f"{repo}:latest")
    assert "Digest: sha256:" in proc.stdout
    assert api.docker("run", "--rm", f"{repo}:latest", "echo", "ok").stdout == "ok\n"
    api.docker("rmi", f"{repo}:latest")


def test_socket_permissions(api: Server) -> None:
    st = os.stat(api.sock)
    assert st.st_mode & 0o777 == 0o660
    assert st.st_uid == 0


def test_tcp_only_on_loopback(server: Server) -> None:
    import sys
    from pathlib import Path

    tomato = str(Path(sys.executable).parent / "tomato")
    proc = subprocess.run([tomato, "serve", "--host", "tcp://0.0.0.0:2375"], capture_output=True,
                          text=True, env={**os.environ, "TOMATO_ROOT": str(server.root)},
                          timeout=30)
    assert proc.returncode != 0
    assert "only a loopback address" in proc.stderr


def _serve_extra(server: Server, host: str, *extra: str) -> subprocess.Popen[bytes]:
    import sys
    from pathlib import Path

    tomato = str(Path(sys.executable).parent / "tomato")
    return subprocess.Popen([tomato, "serve", "--host", host, *extra],
                            env={**os.environ, "TOMATO_ROOT": str(server.root)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_socket_group_and_loopback_tcp(server: Server, workdir: Any) -> None:
    import grp

    from helpers.registry import free_port

    sock = str(workdir / "grp.sock")
    port = free_port()
    procs = [_serve_extra(server, f"unix://{sock}", "--group", "daemon"),
             _serve_extra(server, f"tcp://127.0.0.1:{port}", "--insecure-tcp")]
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        st = os.stat(sock)
        assert st.st_gid == grp.getgrnam("daemon").gr_gid and st.st_mode & 0o777 == 0o660
        env = {**server.env(), "DOCKER_HOST": f"tcp://127.0.0.1:{port}"}
        for _ in range(100):
            proc = subprocess.run([DOCKER, "version", "--format", "{{.Server.APIVersion}}"],
                                  capture_output=True, text=True, env=env, timeout=30)
            if proc.returncode == 0:
                break
            time.sleep(0.1)
        assert proc.stdout.strip() == "1.43"
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
    assert not os.path.exists(sock)  # removed on SIGTERM


def test_import_and_commit_changes_through_the_api(api: Server) -> None:
    """The API's `changes` are the CLI's: a bad line is a 400 (it was a 500), a broken
    exec form is the shell form."""
    import io
    import tarfile

    empty = io.BytesIO()
    tarfile.open(fileobj=empty, mode="w").close()
    status, body = api.request("POST", "/images/create?fromSrc=-&repo=apichanges&tag=v1"
                               "&changes=CMD%20%5Boops&changes=EXPOSE%2080",
                               empty.getvalue())
    assert status == 200, body
    status, image = api.request("GET", "/images/apichanges:v1/json")
    assert image["Config"]["Cmd"] == ["/bin/sh", "-c", "[oops"]
    assert "80/tcp" in image["Config"]["ExposedPorts"]
    status, body = api.request("POST", "/images/create?fromSrc=-&repo=apichanges&tag=v2"
                               "&changes=FROM%20x", empty.getvalue())
    assert status == 400 and "FROM is not a valid change command" in body["message"]
    api.request("DELETE", "/images/apichanges:v1")
