"""docker-compose v1 (Debian's 1.29 or PyPI's) against `tomato serve`: a busybox
httpd and a client on the project's user network, fetching it by service name."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Server

COMPOSE = shutil.which("docker-compose")

COMPOSE_FILE = """\
version: "3"
services:
  web:
    image: busybox
    command:
      - sh
      - -c
      - mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www
  client:
    image: busybox
    depends_on: [web]
    command:
      - sh
      - -c
      - for i in $$(seq 50); do wget -qO- http://web/ && exit 0; sleep 0.2; done; exit 1
"""


@pytest.mark.skipif(COMPOSE is None, reason="needs docker-compose v1 (apt-get install "
                    "docker-compose; PyPI's 1.29.2 does not build on Python 3.11)")
def test_two_services_by_name(api: Server, workdir: Path) -> None:
    project = workdir / "proj"
    project.mkdir()
    (project / "docker-compose.yml").write_text(COMPOSE_FILE)
    env = {**api.env(), "COMPOSE_PROJECT_NAME": "tomatoapi", "COMPOSE_HTTP_TIMEOUT": "60"}

    def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        proc = subprocess.run([COMPOSE, *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=180)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)}: {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}\n"
                                 f"{api.log.read_text()[-3000:]}")
        return proc

    try:
        proc = compose("up", "--exit-code-from", "client", "--no-color")
        assert "hello-from-web" in proc.stdout
        assert proc.returncode == 0
        nets = api.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert "tomatoapi_default" in nets
    finally:
        compose("down", "--volumes", check=False)
    assert api.docker("ps", "-aq").stdout == ""
    assert "tomatoapi_default" not in api.docker("network", "ls", "--format",
                                                 "{{.Name}}").stdout.split()
