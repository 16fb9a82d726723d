"""`POST /build` driven by clients nobody here wrote: the docker CLI's classic builder
(DOCKER_BUILDKIT=0), docker-py's images.build and docker-compose build / up --build."""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from .conftest import DOCKER, Server

COMPOSE = shutil.which("docker-compose")

DOCKERFILE = """\
FROM busybox
ARG GREETING=hello
COPY greeting.txt /greeting.txt
RUN echo "$GREETING from RUN" > /from-run && cat /greeting.txt
LABEL built-by=tomato
CMD ["cat", "/from-run"]
"""


def _context(workdir: Path, dockerfile: str = DOCKERFILE) -> Path:
    ctx = workdir / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "greeting.txt").write_text("from the context\n")
    return ctx


def _classic(api: Server) -> dict[str, str]:
    return {**api.env(), "DOCKER_BUILDKIT": "0"}


def _docker_build(api: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, "build", *args], capture_output=True, text=True,
                          env=_classic(api), timeout=120, stdin=subprocess.DEVNULL)


def test_docker_cli_classic_builder(api: Server, workdir: Path) -> None:
    ctx = _context(workdir)
    iid = workdir / "iid"
    proc = _docker_build(api, "-t", "cli-built:1", "--build-arg", "GREETING=hi",
                         "--network", "none", "--iidfile", str(iid), str(ctx))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Step 1/6 : FROM busybox" in out and "from the context" in out
    assert "Successfully tagged cli-built:1" in out
    image_id = iid.read_text()
    assert image_id.startswith("sha256:")
    assert f"Successfully built {image_id[7:19]}" in out
    assert api.docker("run", "--rm", "cli-built:1").stdout == "hi from RUN\n"
    inspect = json.loads(api.docker("image", "inspect", "cli-built:1").stdout)[0]
    assert inspect["Config"]["Labels"] == {"built-by": "tomato"}
    again = _docker_build(api, "-t", "cli-built:1", "--build-arg", "GREETING=hi",
                          "--network", "none", str(ctx))
    assert again.stdout.count("Using cache") == 5 and f"{image_id[7:19]}" in again.stdout
    quiet = _docker_build(api, "-q", "--build-arg", "GREETING=hi", "--network", "none", str(ctx))
    assert quiet.stdout.strip() == image_id


def test_docker_cli_failures(api: Server, workdir: Path) -> None:
    ctx = _context(workdir, "FROM busybox\nRUN echo about to fail; exit 3\n")
    proc = _docker_build(api, "--network", "none", str(ctx))
    assert proc.returncode == 3  # the classic builder's CLI exits with the RUN's code
    assert "about to fail" in proc.stdout
    assert "Dockerfile:2: the command '/bin/sh -c echo about to fail; exit 3' returned a " \
           "non-zero code: 3" in proc.stderr
    (ctx / "Dockerfile").write_text("FROM busybox\nRUNN x\n")
    proc = _docker_build(api, str(ctx))
    assert proc.returncode == 1 and "Dockerfile:2: unknown instruction: RUNN" in proc.stderr
    proc = _docker_build(api, "--target", "nope", str(ctx))
    assert proc.returncode == 1
    assert api.docker("ps", "-aq").stdout == ""  # no step container left


def test_buildkit_is_refused_with_the_way_out(api: Server) -> None:
    for path in ("/session", "/grpc", "/build?version=2"):
        status, body = api.request("POST", path)
        assert status == 501
        assert "DOCKER_BUILDKIT=0" in body["message"]
    assert api.request("GET", "/_ping")[0] == 200


def test_a_body_that_is_not_a_tar(api: Server) -> None:
    status, body = api.request("POST", "/build", b"FROM busybox\n" * 100,
                               {"Content-Type": "application/x-tar"})
    assert status == 400 and "not a tar archive" in body["message"]
    status, body = api.request("POST", "/build?remote=https://example.invalid/x.git")
    assert status == 501


def test_client_gone_mid_build_leaves_nothing(api: Server, workdir: Path) -> None:
    ctx = _context(workdir, "FROM busybox\nRUN sleep 60\n")
    proc = subprocess.Popen([DOCKER, "build", "--network", "none", "-t", "never", str(ctx)],
                            env=_classic(api), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        while not api.docker("ps", "-q").stdout.strip():  # the RUN's container is up
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 30
    while api.docker("ps", "-aq").stdout.strip():
        assert time.monotonic() < deadline, "the step container stayed"
        time.sleep(0.1)
    assert "never" not in api.docker("images", "--format", "{{.Repository}}").stdout


docker = pytest.importorskip("docker", reason="needs docker-py: pip install docker")


def test_docker_py_images_build(api: Server, workdir: Path) -> None:
    client = docker.DockerClient(base_url=api.host, version="auto", timeout=120)
    try:
        ctx = _context(workdir)
        image, logs = client.images.build(path=str(ctx), tag="py-built:latest",
                                          buildargs={"GREETING": "howdy"}, rm=True,
                                          network_mode="none")
        assert "py-built:latest" in image.tags
        text = "".join(chunk.get("stream", "") for chunk in logs)
        assert "Step 4/6 : RUN" in text and "from the context" in text
        assert client.containers.run("py-built:latest", remove=True) == b"howdy from RUN\n"
        # a Dockerfile alone (docker-py makes the tar), and a failing one
        image, _ = client.images.build(fileobj=io.BytesIO(b"FROM busybox\nENV X=1\n"),
                                       tag="py-alone")
        assert "X=1" in image.attrs["Config"]["Env"]
        with pytest.raises(docker.errors.BuildError) as err:
            client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 7\n"),
                                network_mode="none")
        assert "returned a non-zero code: 7" in str(err.value)
        result = client.api.prune_builds()
        assert result["SpaceReclaimed"] >= 0 and isinstance(result["CachesDeleted"], list)
    finally:
        client.close()


def test_raw_api_stream(api: Server) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"FROM busybox\nLABEL a=b\n"
        info = tarfile.TarInfo("custom.Dockerfile")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    status, body = api.request("POST", "/build?dockerfile=custom.Dockerfile&t=raw:1&q=1",
                               buf.getvalue(), {"Content-Type": "application/x-tar"})
    assert status == 200
    lines = [json.loads(line) for line in body.decode().splitlines()] \
        if isinstance(body, bytes) else [body]
    ids = [m["aux"]["ID"] for m in lines if "aux" in m]
    assert ids and {"stream": ids[0] + "\n"} in lines


@pytest.mark.skipif(COMPOSE is None, reason="needs docker-compose v1")
def test_compose_build_and_up(api: Server, workdir: Path) -> None:
    project = workdir / "proj"
    _context(project)
    (project / "ctx" / "Dockerfile").write_text(
        "FROM busybox\nARG WHO=compose\nRUN echo built-by-$WHO > /who\nCMD [\"cat\", \"/who\"]\n")
    (project / "docker-compose.yml").write_text(
        'version: "3"\nservices:\n  app:\n    build:\n      context: ./ctx\n'
        '      args:\n        WHO: compose-args\n    image: composed:latest\n'
        '    network_mode: none\n')
    env = {**api.env(), "COMPOSE_PROJECT_NAME": "tomatobuild", "COMPOSE_HTTP_TIMEOUT": "60",
           "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        proc = subprocess.run([COMPOSE, *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=180)
        assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{api.log.read_text()[-2000:]}"
        return proc

    try:
        compose("build")
        assert api.docker("run", "--rm", "composed:latest").stdout == "built-by-compose-args\n"
        proc = compose("up", "--build", "--no-color")
        assert "built-by-compose-args" in proc.stdout
    finally:
        subprocess.run([COMPOSE, "down"], cwd=project, env=env, capture_output=True,
                       timeout=120)
