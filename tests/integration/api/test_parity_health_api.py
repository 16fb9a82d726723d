"""Healthchecks through `tomato serve` (issue 19): the docker CLI's --health-* flags,
docker-py's ``healthcheck=``, Config.Healthcheck and State.Health, the list's Status and
its health filter, health_status events, and docker-compose's ``depends_on: condition:
service_healthy``.  Short intervals and bounded polling: no timing is asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.engine import until

from .conftest import Server

COMPOSE = shutil.which("docker-compose")


def _health(api: Server, cid: str) -> dict[str, Any] | None:
    status, body = api.request("GET", f"/containers/{cid}/json")
    assert status == 200, body
    return body["State"].get("Health")  # type: ignore[no-any-return]


def _status(api: Server, cid: str) -> str:
    return (_health(api, cid) or {}).get("Status", "none")


def test_docker_cli_health_flags(api: Server) -> None:
    cid = api.docker("run", "-d", "--network", "none", "--health-cmd", "test -e /tmp/ok",
                     "--health-interval", "100ms", "--health-retries", "1",
                     "--health-timeout", "2s", "busybox", "sleep", "1000").stdout.strip()
    hc = json.loads(api.docker("inspect", "-f", "{{json .Config.Healthcheck}}", cid).stdout)
    assert hc == {"Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 100_000_000,
                  "Timeout": 2_000_000_000, "Retries": 1}
    assert until(lambda: _status(api, cid) == "unhealthy")
    assert api.docker("ps", "-q", "--no-trunc", "--filter",
                      "health=unhealthy").stdout.split() == [cid]
    api.docker("exec", cid, "touch", "/tmp/ok")
    assert until(lambda: api.docker("inspect", "-f", "{{.State.Health.Status}}",
                                    cid).stdout.strip() == "healthy")
    status = api.docker("ps", "--filter", f"id={cid}", "--format", "{{.Status}}").stdout
    assert status.startswith("Up ") and status.strip().endswith("(healthy)")
    assert api.docker("ps", "-q", "--filter", "health=unhealthy").stdout == ""
    entry = json.loads(api.docker("inspect", "-f", "{{json .State.Health}}", cid).stdout)
    assert entry["FailingStreak"] == 0 and entry["Log"][-1]["ExitCode"] == 0
    assert {"Start", "End", "ExitCode", "Output"} <= set(entry["Log"][-1])

    def events() -> list[str]:  # (as dockerd: the state first, then its event)
        return api.docker("events", "--since", "0", "--until", "0s", "--filter",
                          f"container={cid}", "--filter", "event=health_status",
                          "--format", "{{.Action}}", timeout=30).stdout.split("\n")

    assert until(lambda: "health_status: healthy" in events())
    assert events()[:2] == ["health_status: unhealthy", "health_status: healthy"]
    proc = api.docker("run", "--rm", "--no-healthcheck", "--health-cmd", "true", "busybox",
                      "true", check=False)
    assert proc.returncode == 125
    assert "--no-healthcheck conflicts with --health-* options" in proc.stderr
    proc = api.docker("ps", "--filter", "health=bogus", check=False)
    assert proc.returncode != 0 and "Unrecognised filter value for health: bogus" in proc.stderr


def test_docker_py_healthcheck(api: Server) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=api.host)
    try:
        exec_form = client.containers.run(
            "busybox", ["sleep", "1000"], detach=True, network_mode="none",
            healthcheck={"test": ["CMD", "no-such-probe"], "interval": 100_000_000,
                         "retries": 1})
        killed = client.containers.run(
            "busybox", ["sleep", "1000"], detach=True, network_mode="none",
            healthcheck={"test": ["CMD", "sleep", "60"], "interval": 100_000_000,
                         "timeout": 200_000_000, "retries": 1})
        assert until(lambda: _status(api, exec_form.id) == "unhealthy")
        entry = _health(api, exec_form.id)["Log"][0]  # type: ignore[index]
        assert entry["ExitCode"] == -1 and "no-such-probe" in entry["Output"]
        assert until(lambda: _status(api, killed.id) == "unhealthy")
        entry = _health(api, killed.id)["Log"][0]  # type: ignore[index]
        assert entry == {**entry, "ExitCode": -1,
                         "Output": "Health check exceeded timeout (200ms)"}
        # the exec form's probe was the sleep itself: killed, not left in the container
        assert until(lambda: b"sleep 60" not in killed.exec_run(["ps", "-o", "args"]).output)
        listed = client.containers.list(filters={"health": "unhealthy"})
        assert {c.id for c in listed} == {exec_form.id, killed.id}
        with pytest.raises(docker.errors.APIError, match="Interval in Healthcheck cannot "
                           "be less than 1ms"):
            client.containers.create("busybox", ["true"],
                                     healthcheck={"test": ["CMD", "true"], "interval": 5})
        status, body = api.request("POST", "/containers/create", {
            "Image": "busybox", "Healthcheck": {"Test": "true"}})
        assert status == 400 and "Healthcheck.Test" in body["message"]
    finally:
        client.close()


COMPOSE_FILE = """\
version: "2.4"
services:
  db:
    image: busybox
    network_mode: none
    command:
      - sh
      - -c
      - touch /started; until [ -e /ready ]; do sleep 0.05; done; exec sleep 1000
    healthcheck:
      test: ["CMD", "test", "-e", "/ready"]
      interval: 100ms
      retries: 1000
  app:
    image: busybox
    network_mode: none
    depends_on:
      db:
        condition: service_healthy
    command: ["echo", "app-ran"]
"""


@pytest.mark.skipif(COMPOSE is None, reason="needs docker-compose v1 (apt-get install "
                    "docker-compose)")
def test_compose_waits_for_service_healthy(api: Server, workdir: Path) -> None:
    project = workdir / "proj"
    project.mkdir()
    (project / "docker-compose.yml").write_text(COMPOSE_FILE)
    env = {**api.env(), "COMPOSE_PROJECT_NAME": "tomatohealth", "COMPOSE_HTTP_TIMEOUT": "60"}

    def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        proc = subprocess.run([COMPOSE, *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=180)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)}: {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}\n{api.log.read_text()[-3000:]}")
        return proc

    try:
        up = subprocess.Popen([COMPOSE, "up", "-d", "--no-color"], cwd=project, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            db = "tomatohealth_db_1"
            assert until(lambda: api.request("GET", f"/containers/{db}/json")[0] == 200, 60)
            assert until(lambda: api.docker("exec", db, "test", "-e", "/started",
                                            check=False).returncode == 0, 60)
            # db runs, not healthy: app is not created yet (compose waits)
            assert _status(api, db) == "starting"
            assert api.request("GET", "/containers/tomatohealth_app_1/json")[0] == 404
            api.docker("exec", db, "touch", "/ready")
            out, _ = up.communicate(timeout=120)
            assert up.returncode == 0, out + api.log.read_text()[-3000:]
        finally:
            if up.poll() is None:
                up.kill()
                up.wait()
        assert _status(api, db) == "healthy"
        assert until(lambda: "app-ran" in compose("logs", "--no-color", "app").stdout, 30)
    finally:
        compose("down", "--volumes", check=False)
    assert api.docker("ps", "-aq").stdout == ""


def test_a_pulled_images_healthcheck(api: Server, registry: Any) -> None:
    """The image's Healthcheck from a registry (pushed from a commit, which keeps the
    container's, as Docker's)."""
    target = f"{registry.addr}/health/probed:v1"
    cid = api.docker("create", "--health-cmd", "true", "--health-interval", "100ms",
                     "busybox", "sleep", "1000").stdout.strip()
    api.docker("commit", cid, target)
    api.docker("rm", cid)
    api.docker("push", target)
    api.docker("rmi", target)
    assert "Downloaded newer image" in api.docker("pull", target).stdout
    try:
        hc = json.loads(api.docker("image", "inspect", "-f", "{{json .Config.Healthcheck}}",
                                   target).stdout)
        assert hc == {"Test": ["CMD-SHELL", "true"], "Interval": 100_000_000}
        cid = api.docker("run", "-d", "--network", "none", target, "sleep",
                         "1000").stdout.strip()
        assert until(lambda: _status(api, cid) == "healthy")
    finally:
        api.request("DELETE", f"/containers/{cid}?force=1")
        api.docker("rmi", target, check=False)
