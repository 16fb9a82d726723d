"""The rest of `docker run --help` through the real docker CLI against `tomato serve`:
HostConfig's Annotations, Runtime and Isolation as docker sends them, read back by
`docker inspect`; DeviceRequests (--gpus), StorageOpt, the Windows-only QoS fields and
an unknown runtime refused in dockerd's words with nothing left behind."""

from __future__ import annotations

import json

import pytest

from .conftest import Server


def test_annotations_and_runtime_through_docker(api: Server) -> None:
    api.docker("create", "--name", "annotated", "--annotation", "org.example.k=v",
               "--runtime", "runc", "--isolation", "default", "busybox", "true")
    host = json.loads(api.docker("inspect", "annotated").stdout)[0]["HostConfig"]
    assert host["Annotations"] == {"org.example.k": "v"}
    assert host["Runtime"] == "runc"
    assert host["Isolation"] == "default"
    out = api.docker("run", "--rm", "--annotation", "a=b", "busybox", "echo", "ran").stdout
    assert out == "ran\n"


@pytest.mark.parametrize("args, words", [
    (("--runtime", "nvidia"), "unknown or invalid runtime name: nvidia"),
    (("--gpus", "all"), 'could not select device driver "" with capabilities: [[gpu]]'),
    (("--storage-opt", "size=1G"),
     "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
])
def test_refused_as_dockerd_refuses(api: Server, args: tuple[str, ...], words: str) -> None:
    before = api.docker("ps", "-aq").stdout
    proc = api.docker("run", "--rm", *args, "busybox", "true", check=False)
    assert proc.returncode == 125, proc.stderr
    assert f"Error response from daemon: {words}" in proc.stderr
    assert api.docker("ps", "-aq").stdout == before


def test_windows_only_fields_from_a_raw_request(api: Server) -> None:
    """docker's client refuses --io-maxiops itself; a raw request gets dockerd's answer."""
    status, body = api.request("POST", "/containers/create", {
        "Image": "busybox", "Cmd": ["true"], "HostConfig": {"IOMaximumIOps": 10}})
    assert status == 400, body
    assert body["message"] == ("Invalid QoS settings: linux does not support Maximum IO "
                               "Bandwidth or Maximum IO IOps")
