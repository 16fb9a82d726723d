"""X-Registry-Auth on pull and push: the docker CLI sends the credentials it keeps (its
own config.json, never stored in the engine) with each request, against a registry that
wants them (docker-registry with htpasswd, on loopback in the tests' namespace)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DOCKER, Server


@pytest.fixture
def locked_registry(workdir: Path) -> Iterator[str]:
    sys.path.insert(0, str(Path(__file__).parents[2]))
    from helpers.registry import Registry, need

    need("docker-registry")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt through libxcrypt: what docker-registry's htpasswd wants

        hashed = crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH))
    (workdir / "htpasswd").write_text(f"alice:{hashed}\n")
    (workdir / "reg").mkdir()
    with Registry(workdir / "reg", htpasswd=workdir / "htpasswd") as reg:
        yield reg.addr


def _docker(api: Server, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**api.env(), "DOCKER_CONFIG": str(config)}
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)


def _config(path: Path, addr: str, user: str, password: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    (path / "config.json").write_text(json.dumps({"auths": {addr: {"auth": token}}}))
    return path


def test_push_and_pull_with_the_clients_credentials(api: Server, locked_registry: str,
                                                    workdir: Path) -> None:
    addr = locked_registry
    good = _config(workdir / "good", addr, "alice", "s3cret")
    bad = _config(workdir / "bad", addr, "alice", "wrong")
    none = workdir / "none"
    none.mkdir()
    target = f"{addr}/auth/bb:1"
    api.docker("tag", "busybox", target)
    refused = _docker(api, none, "push", target)
    assert refused.returncode != 0  # the engine keeps no credentials for it
    refused = _docker(api, bad, "push", target)
    said = (refused.stderr + refused.stdout).lower()
    assert refused.returncode != 0 and ("401" in said or "unauthorized" in said), said
    pushed = _docker(api, good, "push", target)
    assert pushed.returncode == 0, pushed.stderr
    assert "digest: sha256:" in pushed.stdout
    api.docker("rmi", target)
    assert _docker(api, none, "pull", target).returncode != 0
    pulled = _docker(api, good, "pull", target)
    assert pulled.returncode == 0, pulled.stderr
    assert "Downloaded newer image" in pulled.stdout
    api.docker("rmi", target)


def test_an_unreadable_header_is_as_none(api: Server) -> None:
    # dockerd: a pull with an X-Registry-Auth it cannot decode goes on without it
    # (a registry on a closed loopback port: the pull fails there, after the header)
    status, body = api.request("POST", "/images/create?fromImage=127.0.0.1:1/none&tag=x",
                               headers={"X-Registry-Auth": "%%%not-base64"})
    assert status == 200
    text = body.decode() if isinstance(body, bytes) else json.dumps(body)
    assert "Traceback" not in text and "127.0.0.1:1" in text
