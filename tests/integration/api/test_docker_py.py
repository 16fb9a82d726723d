"""docker-py (PyPI `docker`) against `tomato serve`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Server

docker = pytest.importorskip("docker", reason="needs docker-py: pip install docker")


@pytest.fixture
def client(api: Server) -> Iterator[Any]:
    c = docker.DockerClient(base_url=api.host, version="auto", timeout=60)
    try:
        yield c
    finally:
        c.close()


def test_ping_and_version(client: Any) -> None:
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.43"
    assert client.api.api_version == "1.43"


def test_containers_run(client: Any) -> None:
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], remove=True,
                                stderr=True)
    assert out in (b"out\nerr\n", b"err\nout\n")
    with pytest.raises(docker.errors.ContainerError) as info:
        client.containers.run("busybox", ["sh", "-c", "exit 3"], remove=True)
    assert info.value.exit_status == 3
    with pytest.raises(docker.errors.ImageNotFound):
        # docker-py then pulls (loopback: refused) and asks again
        client.containers.run("127.0.0.1:1/nosuch-image-here:1", "true")


def test_detached_exec_run_logs_stream(client: Any) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; "
                                          "sleep 0.2; done; sleep 1000"],
                              detach=True, name="pyrun", labels={"suite": "api"})
    c.reload()
    assert c.status == "running" and c.name == "pyrun" and c.labels == {"suite": "api"}
    code, output = c.exec_run(["sh", "-c", "echo from-exec; exit 2"])
    assert code == 2 and output == b"from-exec\n"
    code, output = c.exec_run("cat /etc/hostname")
    assert code == 0 and output.decode().strip() == c.id[:12]
    code, (out, err) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert (out, err) == (b"o\n", b"e\n")
    seen = []
    for chunk in c.logs(stream=True, follow=True):
        seen.append(chunk.decode())
        if "line 5" in "".join(seen):
            break
    assert "".join(seen).splitlines()[:5] == [f"line {i}" for i in range(1, 6)]
    assert [x.name for x in client.containers.list(filters={"label": "suite=api"})] == ["pyrun"]
    assert client.containers.list(filters={"label": "suite=other"}) == []
    c.stop(timeout=1)
    assert c.wait(timeout=30)["StatusCode"] == 137
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("pyrun")


def test_wait_and_attach_socket(client: Any) -> None:
    c = client.containers.create("busybox", ["sh", "-c", "read x; echo got-$x; exit 7"],
                                 stdin_open=True)
    sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
    c.start()
    raw = sock._sock  # the hijacked socket
    raw.sendall(b"abc\n")
    data = b""
    deadline = time.monotonic() + 20
    while b"got-abc" not in data and time.monotonic() < deadline:
        chunk = raw.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data[:1] == b"\x01"  # stdout, multiplexed
    assert b"got-abc\n" in data
    assert c.wait(timeout=30)["StatusCode"] == 7
    raw.close()
    c.remove()


def test_images_pull(client: Any, registry: Any) -> None:
    repo = f"{registry.addr}/busybox"
    img = client.images.pull(repo, tag="latest")
    assert f"{repo}:latest" in img.tags
    assert client.images.get(f"{repo}:latest").id == img.id
    events = list(client.api.pull(repo, tag="latest", stream=True, decode=True))
    assert any("Image is up to date" in e.get("status", "") for e in events)
    client.images.remove(f"{repo}:latest")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(f"{repo}:latest")
    with pytest.raises(docker.errors.APIError):
        for _ in client.api.pull(f"{registry.addr}/nosuch", tag="x", stream=True, decode=True):
            pass  # docker-py raises on an error message inside the stream
        raise docker.errors.APIError("no error in the stream")


def test_volumes_and_networks(client: Any) -> None:
    v = client.volumes.create("pyvol", labels={"a": "b"})
    assert client.volumes.get("pyvol").attrs["Labels"] == {"a": "b"}
    out = client.containers.run("busybox", "sh -c 'echo x > /v/f; cat /v/f'",
                                volumes={"pyvol": {"bind": "/v", "mode": "rw"}}, remove=True)
    assert out == b"x\n"
    v.remove()
    n = client.networks.create("pynet", driver="bridge")
    assert client.networks.get("pynet").name == "pynet"
    n.remove()


def test_stats_top_and_archive(client: Any) -> None:
    c = client.containers.run("busybox", "sleep 1000", detach=True)
    s = c.stats(stream=False)
    assert s["id"] == c.id and s["pids_stats"]["current"] == 1
    assert s["cpu_stats"]["system_cpu_usage"] > 0
    stream = c.stats(stream=True, decode=True)
    first, second = next(stream), next(stream)
    assert second["precpu_stats"]["cpu_usage"]["total_usage"] == \
        first["cpu_stats"]["cpu_usage"]["total_usage"]
    stream.close()
    assert "sleep 1000" in " ".join(c.top()["Processes"][0])
    bits, stat = c.get_archive("/etc/hostname")
    assert stat["name"] == "hostname"
    import io
    import tarfile

    tf = tarfile.open(fileobj=io.BytesIO(b"".join(bits)))
    assert tf.extractfile("hostname").read().decode().strip() == c.id[:12]  # type: ignore
    c.remove(force=True)
