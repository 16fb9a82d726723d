"""The proof of issue 19: one docker-compose project that uses healthchecks,
`depends_on: condition: service_healthy`, `volumes_from`, `ipc: service:` (a container's
IPC namespace), a dual-stack network and a port range, brought up and down cleanly
through `tomato serve`.

Traffic only between the host (the package's own network namespace) and the
containers the project makes."""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from helpers.engine import until

from .conftest import Server

COMPOSE = shutil.which("docker-compose")

# data: a volume, an IPC namespace others may join, healthy once its file is written.
# web: data's volumes and IPC namespace, two httpds on a port range, a fixed IPv6
# address on the dual-stack network; created only once data is healthy.
# client: fetches web by name (IPv4) and by its IPv6 address, then stays.
COMPOSE_FILE = """\
version: "2.4"
services:
  data:
    image: busybox
    ipc: shareable
    volumes: ["/shared"]
    command: ["sh", "-c", "echo note-from-data > /shared/note; exec sleep 1000"]
    healthcheck:
      test: ["CMD", "test", "-s", "/shared/note"]
      interval: 100ms
      retries: 100
    networks: [dual]
  web:
    image: busybox
    depends_on:
      data:
        condition: service_healthy
    volumes_from: [data]
    ipc: "service:data"
    ports: ["{first}-{last}:80-81"]
    command:
      - sh
      - -c
      - >-
        mkdir -p /www/a /www/b && cp /shared/note /www/a/index.html &&
        echo second-port > /www/b/index.html &&
        httpd -p 80 -h /www/a && httpd -p 81 -h /www/b && exec sleep 1000
    networks:
      dual:
        ipv6_address: "fd00:c0::20"
  client:
    image: busybox
    depends_on: [web]
    command:
      - sh
      - -c
      - >-
        for i in $$(seq 50); do wget -qO- http://web/ > /tmp/v4 && break; sleep 0.2; done;
        wget -qO- "http://[fd00:c0::20]:81/" > /tmp/v6;
        cat /tmp/v4 /tmp/v6; exec sleep 1000
    networks: [dual]
networks:
  dual:
    enable_ipv6: true
    ipam:
      config:
        - subnet: 10.240.0.0/24
        - subnet: "fd00:c0::/64"
"""


def _free_pair() -> int:
    for start in range(23000, 40000, 89):
        held = []
        try:
            for port in (start, start + 1):
                s = socket.socket()
                s.bind(("0.0.0.0", port))
                held.append(s)
            return start
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise AssertionError("no two free ports")


def _get(url: str) -> str:
    found: list[str] = []

    def ok() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                found.append(resp.read().decode())
            return True
        except OSError:
            return False
    assert until(ok, 20), f"{url} never answered"
    return found[0]


@pytest.mark.slow
@pytest.mark.skipif(COMPOSE is None, reason="needs docker-compose v1 (apt-get install "
                    "docker-compose)")
def test_compose_project_of_issue_19(api: Server, workdir: Path) -> None:
    first = _free_pair()
    project = workdir / "proof"
    project.mkdir()
    (project / "docker-compose.yml").write_text(COMPOSE_FILE.format(first=first,
                                                                    last=first + 1))
    env = {**api.env(), "COMPOSE_PROJECT_NAME": "proof19", "COMPOSE_HTTP_TIMEOUT": "120"}

    def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        proc = subprocess.run([COMPOSE, *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=240)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)}: {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}\n{api.log.read_text()[-3000:]}")
        return proc

    def inspect(name: str, template: str) -> str:
        return api.docker("inspect", "-f", template, name).stdout.strip()

    try:
        compose("up", "-d", "--no-color")
        data, web, client = "proof19_data_1", "proof19_web_1", "proof19_client_1"
        # depends_on service_healthy: web was created only once data was healthy.
        assert inspect(data, "{{.State.Health.Status}}") == "healthy"
        assert inspect(web, "{{.Created}}") > inspect(data, "{{.State.StartedAt}}")
        # volumes_from: web serves the note data wrote into its volume.
        assert _get(f"http://127.0.0.1:{first}/") == "note-from-data\n"
        # The port range: the second port of it reaches the second httpd.
        assert _get(f"http://127.0.0.1:{first + 1}/") == "second-port\n"
        ports = api.docker("port", web).stdout
        assert f"80/tcp -> 0.0.0.0:{first}" in ports and f"81/tcp -> 0.0.0.0:{first + 1}" in ports
        # ipc: service:data: one IPC namespace, not the host's.
        ipc = {name: api.docker("exec", name, "readlink", "/proc/self/ns/ipc").stdout
               for name in (data, web, client)}
        assert ipc[data] == ipc[web] != ipc[client]
        assert ipc[web] != Path("/proc/self/ns/ipc").readlink().as_posix() + "\n"
        # The dual-stack network: both families, web's fixed IPv6 address, reached.
        net = api.docker("network", "inspect", "-f", "{{.EnableIPv6}} {{json .IPAM.Config}}",
                         "proof19_dual").stdout
        assert net.startswith("true ") and "fd00:c0::/64" in net and "10.240.0.0/24" in net
        assert inspect(web, "{{(index .NetworkSettings.Networks \"proof19_dual\")"
                            ".GlobalIPv6Address}}") == "fd00:c0::20"
        assert until(lambda: "second-port" in compose("logs", "--no-color", "client").stdout,
                     30)
        logs = compose("logs", "--no-color", "client").stdout
        assert "note-from-data" in logs and "second-port" in logs
        assert _get("http://[fd00:c0::20]:81/") == "second-port\n"
    finally:
        down = compose("down", "--volumes", check=False)
    assert down.returncode == 0, down.stderr
    # Down cleanly: no container, network or volume of the project is left.
    assert api.docker("ps", "-aq").stdout == ""
    assert "proof19" not in api.docker("network", "ls").stdout
    assert api.docker("volume", "ls", "-q").stdout == ""


def test_docker_cli_dual_stack_ranges_and_two_networks(api: Server) -> None:
    """The real docker CLI through `tomato serve`: a dual-stack network, a port range,
    two networks at run (the CLI sends both in EndpointsConfig), a link, connect --ip6."""
    api.docker("network", "create", "--ipv6", "--subnet", "10.241.0.0/24", "--subnet",
               "fd00:c1::/64", "cli6")
    api.docker("network", "create", "--subnet", "10.242.0.0/24", "cli4")
    first = _free_pair()
    api.docker("run", "-d", "--name", "both", "--network", "cli6", "--network", "cli4",
               "-p", f"{first}-{first + 1}:80-81", "busybox", "sleep", "600")
    nets = api.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", "both").stdout
    assert '"cli6"' in nets and '"cli4"' in nets and "fd00:c1::2" in nets
    assert api.docker("port", "both").stdout.count("->") == 4  # two ports, two families
    out = api.docker("network", "inspect", "-f", "{{.EnableIPv6}}", "cli6").stdout
    assert out == "true\n"
    api.docker("run", "-d", "--name", "late", "--network", "cli4", "--link", "both:b",
               "busybox", "sleep", "600")
    api.docker("network", "connect", "--ip6", "fd00:c1::99", "cli6", "late")
    hosts = api.docker("exec", "late", "cat", "/etc/hosts").stdout
    assert "fd00:c1::99\t" in hosts and "\tb " in hosts
