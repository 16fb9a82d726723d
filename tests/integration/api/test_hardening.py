"""The API server against hostile, slow and unlucky clients (issue 13, items 9-12):
bodies of any size and in any number of writes, chunked bodies, connections that
send nothing or half a request, wrong JSON types and garbage, commands that do
not exist.  Every answer is Docker's {"message": ...} in one line, and the server
keeps serving."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.engine import TOMATO, until

from .conftest import DOCKER, Server

PYTHON_ERRORS = re.compile(r"\b(\w+Error|Exception|Traceback|KeyError|StopIteration)\b")


def _connect(api: Server, timeout: float = 30) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(api.sock)
    return s


def _read_response(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (a length-delimited body); what follows it stays in the socket's
    buffer object (``_pending``), for the next call."""
    data = _pending.pop(s.fileno(), b"")
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", len(body)))
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    if body[length:]:
        _pending[s.fileno()] = body[length:]
    return status, headers, body[:length]


_pending: dict[int, bytes] = {}


def _raw(api: Server, *pieces: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send a request in these separate writes (a pause between them), read the answer."""
    with _connect(api) as s:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(0.2)  # separate writes, as a slow client's
            s.sendall(piece)
        return _read_response(s)


def _docker_error(status: int, headers: dict[str, str], body: bytes, want: int) -> str:
    assert status == want, body
    assert headers.get("content-type") == "application/json", headers
    message = json.loads(body)["message"]
    assert isinstance(message, str) and message and "\n" not in message
    assert not PYTHON_ERRORS.search(message), message
    return message


def _create_request(body: bytes, chunked: bool = False) -> bytes:
    if chunked:
        return (b"POST /v1.43/containers/create HTTP/1.1\r\nHost: docker\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    return (b"POST /v1.43/containers/create HTTP/1.1\r\nHost: docker\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def _labelled(size: int) -> bytes:
    return json.dumps({"Image": "busybox", "Cmd": ["true"], "Labels": {"big": "x" * size},
                       "HostConfig": {"NetworkMode": "none"}}).encode()


def _label_size(api: Server, cid: str) -> int:
    status, info = api.request("GET", f"/containers/{cid}/json")
    assert status == 200, info
    return len(info["Config"]["Labels"]["big"])


# -- item 9: bodies read whole -------------------------------------------------------------
def test_large_body(api: Server) -> None:
    body = _labelled(1 << 20)  # once cut at ~212 KB (one read of the socket's buffer)
    status, _, answer = _raw(api, _create_request(body))
    assert status == 201, answer
    assert _label_size(api, json.loads(answer)["Id"]) == 1 << 20


def test_body_in_two_writes(api: Server) -> None:
    request = _create_request(_labelled(5000))
    cut = request.index(b"\r\n\r\n") + 4 + 100
    status, _, answer = _raw(api, request[:cut], request[cut:])
    assert status == 201, answer
    assert _label_size(api, json.loads(answer)["Id"]) == 5000


def test_chunked_body(api: Server) -> None:
    body = _labelled(300_000)
    chunks = [body[i:i + 7000] for i in range(0, len(body), 7000)]
    wire = b"".join(b"%x;ext=1\r\n%b\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    status, _, answer = _raw(api, _create_request(b"", chunked=True) + wire[:5000],
                             wire[5000:200_000], wire[200_000:])
    assert status == 201, answer
    assert _label_size(api, json.loads(answer)["Id"]) == 300_000


def test_large_label_file_with_the_docker_cli(api: Server, workdir: Path) -> None:
    labels = workdir / "labels"
    labels.write_text("".join(f"label{i}={'v' * 100}\n" for i in range(6000)))  # ~650 KB
    cid = api.docker("create", "--label-file", str(labels), "--network", "none",
                     "busybox", "true").stdout.strip()
    status, info = api.request("GET", f"/containers/{cid}/json")
    assert len(info["Config"]["Labels"]) == 6000


def test_an_error_reaches_a_client_still_sending(api: Server, workdir: Path) -> None:
    """/build refuses a network mode before reading the context: the client, still
    writing 20 MB, must read why (not a broken pipe)."""
    (workdir / "Dockerfile").write_text("FROM busybox\n")
    (workdir / "big").write_bytes(os.urandom(20 << 20))
    proc = subprocess.run([DOCKER, "build", "--network", "container:other", str(workdir)],
                          capture_output=True, text=True,
                          env={**api.env(), "DOCKER_BUILDKIT": "0"}, timeout=60)
    assert proc.returncode == 1
    assert "Error response from daemon: --network=container:... is not supported by build" \
        in proc.stderr
    assert "closed pipe" not in proc.stderr and "broken pipe" not in proc.stderr


def test_pipelined_and_kept_alive(api: Server) -> None:
    ping = b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"
    with _connect(api) as s:
        s.sendall(ping * 3)  # three requests in one write
        for _ in range(3):
            status, _, body = _read_response(s)
            assert (status, body) == (200, b"OK")
        s.sendall(ping)  # and the connection is still there for a fourth
        assert _read_response(s)[0] == 200
        _pending.pop(s.fileno(), None)


# -- item 10: half-open connections -------------------------------------------------------
def _serve_pid(api: Server) -> int:
    """The process serving (tomato's launcher execs the interpreter in place)."""
    cmdline = Path(f"/proc/{api.proc.pid}/cmdline").read_bytes()
    assert b"serve" in cmdline, cmdline
    return api.proc.pid


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_half_open_connections(api: Server) -> None:
    pid = _serve_pid(api)
    api.docker("info")
    threads, fds = _threads(pid), _fds(pid)
    idle: list[socket.socket] = []
    try:
        for i in range(600):
            s = _connect(api)
            if i % 3 == 1:  # half a head
                s.sendall(b"GET /v1.43/info HTTP/1.1\r\nHost: docker\r\n")
            elif i % 3 == 2:  # a head and half its body
                s.sendall(b"POST /v1.43/containers/create HTTP/1.1\r\nHost: docker\r\n"
                          b"Content-Length: 100\r\n\r\n{\"Ima")
            idle.append(s)
        info = api.docker("info", "--format", "{{.ServerVersion}}", timeout=30)
        assert info.stdout.strip().endswith("tomato")
        assert _threads(pid) <= threads + 8, "a thread for each silent connection"
    finally:
        for s in idle:
            s.close()
    assert until(lambda: _fds(pid) <= fds + 4, timeout=30), "600 connections left open"
    assert _threads(pid) <= threads + 8


def test_many_clients_at_once(api: Server) -> None:
    """A burst bigger than the worker pool: every client is answered (queued, not refused)."""
    import concurrent.futures

    def ping(_: int) -> int:
        return api.request("GET", "/v1.43/containers/json")[0]

    with concurrent.futures.ThreadPoolExecutor(200) as pool:
        assert set(pool.map(ping, range(600))) == {200}
    assert _threads(_serve_pid(api)) < 200


@pytest.fixture
def quick_server(server: Server, storage: Path) -> Iterator[Server]:
    """A second server on the same engine, with timeouts of a second (the test's clock)."""
    import tempfile

    sockdir = Path(tempfile.mkdtemp(prefix="api-quick-", dir=storage))
    sock, log = str(sockdir / "quick.sock"), sockdir / "serve.log"
    env = {**os.environ, "TOMATO_ROOT": str(server.root), "TOMATO_API_IDLE_TIMEOUT": "1",
           "TOMATO_API_HEAD_TIMEOUT": "1", "TOMATO_API_BODY_TIMEOUT": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([TOMATO, "serve", "--host", f"unix://{sock}"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    quick = Server(server.root, sock, proc, log)
    try:
        assert until(quick.alive, timeout=20), f"no quick server: {log.read_text()}"
        yield quick
    finally:
        proc.terminate()
        proc.wait(20)
        import shutil

        shutil.rmtree(sockdir, ignore_errors=True)


def test_idle_and_slow_connections_time_out(quick_server: Server) -> None:
    idle = _connect(quick_server)
    idle.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
    assert _read_response(idle)[0] == 200
    assert idle.recv(1) == b""  # closed after a second of silence (the 30 s socket timeout
    slow = _connect(quick_server)  # would fail the test first)
    slow.sendall(b"GET /_ping HTTP/1.1\r\nHost: do")
    _docker_error(*_read_response(slow), want=408)
    body = _connect(quick_server)
    body.sendall(b"POST /v1.43/containers/create HTTP/1.1\r\nContent-Length: 100000\r\n\r\n"
                 + b"{" * 70000)  # past what the loop reads for a worker: the worker waits
    _docker_error(*_read_response(body), want=408)
    for s in (idle, slow, body):
        s.close()
    assert quick_server.alive()


def test_long_streams_outlive_the_timeouts(quick_server: Server) -> None:
    srv = quick_server
    srv.docker("run", "-d", "--name", "slowtalker", "--network", "none", "busybox", "sh", "-c",
               "sleep 3; echo late; sleep 1000")
    try:
        logs = subprocess.Popen([DOCKER, "logs", "-f", "slowtalker"], env=srv.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        events = _connect(srv)
        events.sendall(b"GET /v1.43/events HTTP/1.1\r\nHost: docker\r\n\r\n")
        assert _read_response(events)[0] == 200  # headers now, events as they come
        exec_ = subprocess.run([DOCKER, "exec", "-i", "slowtalker", "sh", "-c",
                                "sleep 3; cat"], input=b"piped\n", capture_output=True,
                               env=srv.env(), timeout=60)
        assert exec_.returncode == 0 and exec_.stdout == b"piped\n", exec_.stderr
        assert logs.stdout is not None and logs.stdout.readline() == b"late\n"
        srv.docker("kill", "slowtalker")
        seen = b""
        while b'"kill"' not in seen:
            data = events.recv(65536)
            assert data, "the events stream was closed"
            seen += data
        events.close()
        assert logs.wait(30) == 0
    finally:
        srv.docker("rm", "-f", "slowtalker", check=False)


# -- item 11: wrong JSON, garbage -----------------------------------------------------------
BAD_BODIES: list[tuple[str, str, bytes]] = [
    ("POST", "/containers/create", b'{"Image": 123}'),
    ("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": {"Memory": "abc"}}'),
    ("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": {"Binds": [1, 2]}}'),
    ("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": {"Memory": 1.5}}'),
    ("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": []}'),
    ("POST", "/containers/create", b'{"Image": "busybox", "Labels": {"a": 1}}'),
    ("POST", "/containers/create", b'{"Image": "busybox", "Env": "A=1"}'),
    ("POST", "/containers/create", b'{"Image": "busybox", "ExposedPorts": ["80/tcp"]}'),
    ("POST", "/containers/create",
     b'{"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": "8080"}}}'),
    ("POST", "/containers/create",
     b'{"Image": "busybox", "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "x"}]}}'),
    ("POST", "/containers/create",
     b'{"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"bridge": 7}}}'),
    ("POST", "/containers/create", b"[" * 100_000 + b"]" * 100_000),
    ("POST", "/containers/create", b'{"Image": ' + b"[" * 500 + b"]" * 500 + b"}"),
    ("POST", "/containers/create", b"this is not JSON"),
    ("POST", "/containers/create", b'["busybox"]'),
    ("POST", "/containers/create", b'"busybox"'),
    ("POST", "/containers/create", b'{"Image": NaN}'),
    ("POST", "/containers/create", b"\xff\xfe{}"),
    ("POST", "/containers/anything/exec", b'{"Cmd": 5}'),
    ("POST", "/containers/anything/exec", b'{"Cmd": ["sh"], "Tty": "yes"}'),
    ("POST", "/containers/anything/update", b'{"Memory": "abc"}'),
    ("POST", "/volumes/create", b'{"Name": 5}'),
    ("POST", "/volumes/create", b'{"Labels": ["a"]}'),
    ("POST", "/networks/create", b'{"Name": "n", "IPAM": {"Config": "x"}}'),
    ("POST", "/networks/bridge/connect", b'{"Container": ["a"]}'),
    ("POST", "/auth", b'{"username": 1}'),
]


@pytest.mark.parametrize("method,path,body", BAD_BODIES,
                         ids=[f"{i}-{p.split('/')[-1]}" for i, (_, p, _) in
                              enumerate(BAD_BODIES)])
def test_bad_json(api: Server, method: str, path: str, body: bytes) -> None:
    request = (f"{method} /v1.43{path} HTTP/1.1\r\nHost: docker\r\nContent-Type: "
               f"application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    _docker_error(*_raw(api, request), want=400)
    assert api.alive()


@pytest.mark.parametrize("request_bytes,want", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n", 400),
    (b"GET /_ping HTTP/1.1 extra\r\n\r\n", 400),
    (b"POST /v1.43/containers/create HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}", 400),
    (b"POST /v1.43/containers/create HTTP/1.1\r\nContent-Length: 2\r\n"
     b"Content-Length: 3\r\n\r\n{}", 400),
    (b"POST /v1.43/containers/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"zz\r\n{}\r\n0\r\n\r\n", 400),
    (b"GET /_ping HTTP/1.1\r\nX: " + b"y" * 70_000 + b"\r\n\r\n", 431),
    (b"GET /_ping HTTP/3.0\r\n\r\n", 505),
    (b"POST /v1.43/containers/create HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n{}", 413),
], ids=["garbage", "tls-hello", "extra-word", "length-abc", "two-lengths", "bad-chunk",
        "huge-head", "http3", "too-large"])
def test_garbage(api: Server, request_bytes: bytes, want: int) -> None:
    _docker_error(*_raw(api, request_bytes), want=want)
    assert api.alive()


def test_unhandled_errors_name_no_python_exception(api: Server) -> None:
    """A failure nobody planned for is a 500 with a plain message; details in the log."""
    status, body = api.request("GET", "/v1.43/containers/json?limit=1e999")
    assert status in (200, 400), body
    if status == 400:
        assert not PYTHON_ERRORS.search(body["message"])


# -- item 12: a command that is not there -----------------------------------------------------
def test_run_rm_of_a_missing_command(api: Server) -> None:
    proc = api.docker("run", "--rm", "--network", "none", "busybox", "/nonexistent",
                      check=False, timeout=60)  # once: hung for ever, the container Created
    assert proc.returncode == 127, proc.stderr
    assert "no such file or directory" in proc.stderr and "/nonexistent" in proc.stderr
    assert until(lambda: api.docker("ps", "-aq").stdout == "", timeout=20), "not removed"


def test_exec_right_after_run_detached(api: Server) -> None:
    """docker's CLI waits on a container even for `run -d`, so its start is an attached
    one: the answer must still come once the container runs (an exec at once was 409)."""
    for i in range(30):
        api.docker("run", "-d", "--name", f"quick{i}", "--network", "none", "busybox",
                   "sleep", "1000")
        status, body = api.request("POST", f"/containers/quick{i}/exec", {"Cmd": ["true"]})
        assert status == 201, (i, body)
        api.docker("rm", "-f", f"quick{i}")


def test_run_of_a_missing_command_keeps_it_created(api: Server) -> None:
    proc = api.docker("run", "--name", "missing", "--network", "none", "busybox", "nope-nope",
                      check=False, timeout=60)
    assert proc.returncode == 127, proc.stderr
    assert api.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                      "missing").stdout.strip() == "created 127"  # dockerd's record
    api.docker("rm", "missing")


def test_start_of_a_missing_command_is_docker_s_400(api: Server) -> None:
    status, body = api.request("POST", "/containers/create",
                               {"Image": "busybox", "Cmd": ["/nonexistent"],
                                "HostConfig": {"NetworkMode": "none"}})
    assert status == 201, body
    status, err = api.request("POST", f"/containers/{body['Id']}/start")
    assert status == 400 and "no such file or directory" in err["message"], err


def test_exec_of_a_missing_command(api: Server) -> None:
    api.docker("run", "-d", "--name", "execme", "--network", "none", "busybox", "sleep", "1000")
    proc = api.docker("exec", "execme", "/nonexistent", check=False, timeout=60)
    assert "Unrecognized input header" not in proc.stderr + proc.stdout
    assert proc.returncode == 127, (proc.stdout, proc.stderr)
    assert "no such file or directory" in proc.stdout + proc.stderr
    proc = api.docker("exec", "execme", "/etc", check=False, timeout=60)  # not executable
    assert proc.returncode == 126, (proc.stdout, proc.stderr)
    assert api.docker("exec", "execme", "echo", "fine").stdout == "fine\n"


def test_docker_py_missing_commands(api: Server) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=api.host, version="1.43", timeout=60)
    try:
        with pytest.raises(docker.errors.APIError) as info:
            client.containers.run("busybox", "/nonexistent", remove=True, network_mode="none")
        assert info.value.status_code == 400 and "no such file" in str(info.value)
        c = client.containers.run("busybox", "sleep 1000", detach=True, network_mode="none")
        code, output = c.exec_run("/nonexistent")
        assert code == 127 and b"no such file or directory" in output
        c.remove(force=True)
    finally:
        client.close()

