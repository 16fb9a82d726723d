"""`tomato build`: every instruction and option, checked on the image it makes (its
config, its history, its files seen from a container of it).  Where Docker's classic
builder and buildah differ, Docker's behaviour is what is checked here."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.engine import TOMATO

from .conftest import Builder, write_context


def _sh(builder: Builder, image: str, script: str) -> str:
    return builder.run("run", "--rm", "--network", "none", "--entrypoint", "sh", image,
                       "-c", script).stdout


def test_config_instructions(builder: Builder, workdir: Path) -> None:
    # a variable in an instruction is what it was before that instruction (Docker's rule)
    ctx = write_context(workdir / "ctx", {"Dockerfile": """\
FROM busybox
MAINTAINER someone <me@example.org>
ENV A=1 B="two words" C='$A' D=${A:-x}${NOPE:-y}${A:+z}
ENV A=2 E=$A
LABEL "key with spaces"="v" plain=$B
WORKDIR /one
WORKDIR two/../three
USER daemon
EXPOSE 8000-8001/udp ${NOPE:-80}
VOLUME ["/v1", "/v2"]
STOPSIGNAL 9
HEALTHCHECK --interval=1m30s --timeout=10s --start-period=5s --retries=2 CMD ["true"]
SHELL ["/bin/sh", "-ec"]
CMD echo shell form
ENTRYPOINT ["/bin/echo"]
ONBUILD COPY x /y
"""})
    builder.build(ctx, "-t", "cfg", "--network", "none")
    cfg = builder.config("cfg")
    assert cfg["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          "A=2", "B=two words", "C=$A", "D=xy", "E=1"]
    assert cfg["Labels"] == {"key with spaces": "v", "plain": "two words"}
    assert cfg["WorkingDir"] == "/one/three" and cfg["User"] == "daemon"
    assert cfg["ExposedPorts"] == {"8000/udp": {}, "8001/udp": {}, "80/tcp": {}}
    assert cfg["Volumes"] == {"/v1": {}, "/v2": {}}
    assert cfg["StopSignal"] == "9" and cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 90 * 10**9,
                                  "Timeout": 10 * 10**9, "StartPeriod": 5 * 10**9,
                                  "Retries": 2}
    # SHELL applies to CMD's shell form; ENTRYPOINT after CMD keeps it (set in this stage)
    assert cfg["Cmd"] == ["/bin/sh", "-ec", "echo shell form"]
    assert cfg["Entrypoint"] == ["/bin/echo"] and cfg["OnBuild"] == ["COPY x /y"]
    from tomato.engine.config import EngineConfig
    from tomato.engine.stepimages import manifest_of

    assert manifest_of(EngineConfig(root=builder.root), "cfg")["author"] == \
        "someone <me@example.org>"
    history = builder.history("cfg")
    assert len(history) == 1 + 15  # the base's own, then one per instruction after FROM
    assert all(h.get("empty_layer") for h in history[1:])
    assert history[-1]["created_by"] == '/bin/sh -ec #(nop)  ONBUILD COPY x /y'
    assert history[3]["created_by"] == '/bin/sh -c #(nop)  ENV A=2 E=1'
    # the child of an image with ONBUILD runs its triggers; ENTRYPOINT resets an inherited CMD
    write_context(ctx, {"Dockerfile": "FROM cfg\nENTRYPOINT [\"/bin/true\"]\n", "x": "x\n"})
    out = builder.build(ctx, "-t", "cfg-child", "--network", "none").stderr
    assert "[onbuild] COPY x /y" in out
    child = builder.config("cfg-child")
    assert "Cmd" not in child and "OnBuild" not in child
    assert _sh(builder, "cfg-child", "cat /y") == "x\n"


def test_run_forms_args_and_empty_layers(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": """\
ARG GLOBAL=g
FROM busybox
RUN echo "global is [$GLOBAL]" > /global
ARG GLOBAL
ARG LOCAL=l1
ENV SHADOW=from-env
ARG SHADOW=from-arg
RUN echo "$GLOBAL $LOCAL $SHADOW" > /args
RUN ["/bin/sh", "-c", "echo exec form > /exec"]
RUN true
SHELL ["/bin/sh", "-ec"]
RUN echo "$0" > /shell
USER daemon
WORKDIR /made-by-run
RUN id -u > /tmp/uid && pwd > /tmp/pwd
"""})
    out = builder.build(ctx, "-t", "runs", "--network", "none", "--build-arg", "LOCAL=l2",
                        "--build-arg", "UNUSED=1").stderr
    assert "One or more build-args [UNUSED] were not consumed" in out
    files = _sh(builder, "runs", "cat /global /args /exec /shell /tmp/uid /tmp/pwd; "
                                 "stat -c '%U %a' /made-by-run")
    assert files.splitlines() == ["global is []", "g l2 from-env", "exec form", "/bin/sh",
                                  "1", "/made-by-run", "root 755"]
    history = [h["created_by"] for h in builder.history("runs")]
    assert "|2 GLOBAL=g LOCAL=l2 /bin/sh -c echo \"$GLOBAL $LOCAL $SHADOW\" > /args" in history
    assert "|2 GLOBAL=g LOCAL=l2 /bin/sh -c echo exec form > /exec" in history
    empty = [h for h in builder.history("runs") if h["created_by"].endswith("/bin/sh -c true")]
    assert empty and empty[0].get("empty_layer")  # Docker: a RUN that changed nothing


def test_heredocs(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": """\
FROM busybox
ENV WHO=heredoc
RUN <<EOF
echo "first line" > /script-out
echo "second: $WHO" >> /script-out
EOF
RUN cat > /shell-heredoc <<-END && echo after >> /shell-heredoc
	tab stripped $WHO
	END
COPY <<EXPANDED <<"LITERAL" /docs/
value is $WHO
EXPANDED
value is $WHO
LITERAL
COPY <<EOF /single.txt
one file
EOF
"""})
    builder.build(ctx, "-t", "heredocs", "--network", "none")
    out = _sh(builder, "heredocs", "cat /script-out /shell-heredoc /docs/EXPANDED "
                                   "/docs/LITERAL /single.txt; stat -c %a /single.txt")
    assert out.splitlines() == ["first line", "second: heredoc", "tab stripped heredoc",
                                "after", "value is heredoc", "value is $WHO", "one file",
                                "644"]


def test_copy_options_and_scratch(builder: Builder, workdir: Path) -> None:
    (workdir / "outside").mkdir()
    outside_df = workdir / "outside" / "My.Dockerfile"
    outside_df.write_text("""\
# syntax=docker/dockerfile:1.4
FROM scratch AS files
COPY --chown=1234:5678 --chmod=750 tree/ /
FROM busybox
COPY --from=files / /from-scratch/
ADD --chown=2:2 arch.tar /unpacked
COPY --chown=daemon bin/x* /wild/
COPY --from=busybox /bin/busybox /from-an-image
""")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"in the tar\n"
        info = tarfile.TarInfo("inner/file")
        info.size, info.uid = len(data), 99
        tf.addfile(info, io.BytesIO(data))
    ctx = write_context(workdir / "ctx", {"tree/a": "a\n", "tree/d/b": "b\n",
                                          "arch.tar": buf.getvalue(), "bin/x1": "1",
                                          "bin/x2": "2", "bin/y": "no"})
    built = builder.build(ctx, "-f", str(outside_df), "-t", "copies", "--network", "none")
    assert "the syntax directive (docker/dockerfile:1.4) is ignored" in built.stderr
    out = _sh(builder, "copies", "stat -c '%n %u:%g %a' /from-scratch/a /from-scratch/d "
                                 "/from-scratch/d/b /unpacked/inner/file /wild/x1 /wild/x2; "
                                 "ls /wild; cmp /from-an-image /bin/busybox && echo same")
    assert out.splitlines() == ["/from-scratch/a 1234:5678 750", "/from-scratch/d 1234:5678 750",
                                "/from-scratch/d/b 1234:5678 750",
                                "/unpacked/inner/file 2:2 644", "/wild/x1 1:1 644",
                                "/wild/x2 1:1 644", "x1", "x2", "same"]


@pytest.fixture
def http_file() -> Iterator[tuple[str, bytes]]:
    body = b"downloaded content\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/files/remote.txt", body
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_add_url_and_checksum(builder: Builder, workdir: Path,
                              http_file: tuple[str, bytes]) -> None:
    url, body = http_file
    digest = hashlib.sha256(body).hexdigest()
    ctx = write_context(workdir / "ctx", {"Dockerfile": f"""\
FROM busybox
ADD {url} /dl/
ADD --checksum=sha256:{digest} {url} /checked.txt
"""})
    builder.build(ctx, "-t", "urls", "--network", "none")
    out = _sh(builder, "urls", "cat /dl/remote.txt; stat -c '%a %Y' /dl/remote.txt /checked.txt")
    assert out.splitlines() == ["downloaded content", "600 1445412480", "600 1445412480"]
    (ctx / "Dockerfile").write_text(f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url} /x\n")
    proc = builder.build(ctx, check=False)
    assert proc.returncode == 1 and "Dockerfile:2: ADD failed: checksum of" in proc.stderr


def test_contexts_tar_stdin_and_dockerfile_alone(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": "FROM busybox\nCOPY f /f\n",
                                          "f": "from a tar\n"})
    for mode, name in (("w", "ctx.tar"), ("w:gz", "ctx.tgz"), ("w:xz", "ctx.txz")):
        with tarfile.open(workdir / name, mode) as tf:
            tf.add(ctx, arcname=".")
        builder.build(workdir / name, "-t", f"from-{name.replace('.', '-')}",
                      "--network", "none")
        assert _sh(builder, f"from-{name.replace('.', '-')}", "cat /f") == "from a tar\n"
    proc = subprocess.run([TOMATO, "build", "-q", "-t", "stdin-tar", "-"],
                          stdin=open(workdir / "ctx.tgz", "rb"), capture_output=True,
                          env=builder.env(), timeout=60)
    assert proc.returncode == 0 and proc.stdout.decode().startswith("sha256:")
    alone = builder.run("build", "-q", "-t", "alone", "-", input="FROM busybox\nENV ALONE=1\n")
    assert alone.stdout.strip() == builder.inspect("alone")["Id"]
    dash_f = builder.run("build", "-q", "-f", "-", str(ctx), input="FROM busybox\nCOPY f /g\n")
    assert _sh(builder, dash_f.stdout.strip(), "cat /g") == "from a tar\n"


def test_target_labels_iidfile_quiet_and_progress(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": """\
FROM busybox AS first
RUN echo first > /first
FROM busybox AS second
RUN echo second > /second
FROM first
RUN cat /first
"""})
    iid = workdir / "iid"
    proc = builder.build(ctx, "--target", "second", "--label", "a=1", "--label", "b=",
                         "--iidfile", str(iid), "-t", "targeted", "-t", "also:v2",
                         "--network", "none")
    assert "[second" in proc.stderr and "[first" not in proc.stderr  # only what it needs
    assert "RUN cat /first" not in proc.stderr
    assert iid.read_text() == builder.inspect("targeted")["Id"] == builder.inspect("also:v2")["Id"]
    assert builder.config("targeted")["Labels"] == {"a": "1", "b": ""}
    assert "#4 writing image sha256:" in proc.stderr and "naming to targeted:latest" in proc.stderr
    quiet = builder.run("build", "-q", "--network", "none", str(ctx))
    assert quiet.stderr == "" and quiet.stdout.strip().startswith("sha256:")


def test_network_modes(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": """\
FROM busybox
RUN ls /sys/class/net | sort | tr '\\n' ' ' > /default-net
RUN --network=none ls /sys/class/net | tr '\\n' ' ' > /none-net
"""})
    builder.build(ctx, "-t", "nets")  # the default: bridge
    assert _sh(builder, "nets", "cat /default-net /none-net") == "eth0 lo lo "
    builder.build(ctx, "-t", "nets-none", "--network", "none", "--no-cache")
    assert _sh(builder, "nets-none", "cat /default-net") == "lo "
    builder.build(ctx, "-t", "nets-host", "--network", "host", "--no-cache")
    here = {name for _, name in socket.if_nameindex()}  # the test's own network namespace
    assert set(_sh(builder, "nets-host", "cat /default-net").split()) == here


def test_explain(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": "FROM busybox\nCOPY f /f\n"
                                                       "RUN rm /bin/ls && echo x > /new\n",
                                          "f": "f\n"})
    out = builder.build(ctx, "--explain", "--no-cache", "--network", "none").stderr
    assert "mount -t overlay overlay" in out and "lowerdir[0]" in out
    assert "upperdir" in out and "workdir" in out
    assert "the new layer is the directory" in out
    assert "D /bin/ls" in out and "A /new" in out
    assert "layer 3: sha256:" in out


def test_pull_goes_to_the_registry(builder: Builder, workdir: Path) -> None:
    builder.run("tag", "busybox", "127.0.0.1:9/local/busybox:1")
    ctx = write_context(workdir / "ctx", {"Dockerfile": "FROM 127.0.0.1:9/local/busybox:1\n"
                                                       "ENV P=1\n"})
    builder.build(ctx, "--network", "none")  # found locally: no pull
    proc = builder.build(ctx, "--pull", "--network", "none", check=False)
    assert proc.returncode == 1
    assert "Dockerfile:1: FROM 127.0.0.1:9/local/busybox:1:" in proc.stderr
