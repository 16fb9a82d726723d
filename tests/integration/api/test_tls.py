"""Who may reach the API (issue 13, item 4): a TCP port only with mutual TLS (or an
explicit, loudly warned --insecure-tcp), tested with the real docker CLI and
docker-py and certificates made here with openssl; the unix socket 0660 with a
group, as Docker's."""

from __future__ import annotations

import grp
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.engine import TOMATO, until
from helpers.registry import free_port

from .conftest import DOCKER, Server


@dataclass
class Certs:
    dir: Path

    def __getitem__(self, name: str) -> str:
        return str(self.dir / name)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _issue(d: Path, ca: str, name: str, usage: str, san: str = "") -> None:
    """A P-256 key and a certificate for it signed by ``ca`` (ca.pem, ca-key.pem)."""
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
             "-subj", f"/CN={name}", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else ""))
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
             f"{ca}-key.pem", "-CAcreateserial", "-days", "2", "-out", f"{name}-cert.pem",
             "-extfile", ext.name, cwd=d)


@pytest.fixture(scope="module")
def certs(storage: Path) -> Iterator[Certs]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    d = Path(tempfile.mkdtemp(prefix="api-certs-", dir=storage))
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", f"{ca}-key.pem", "-out", f"{ca}.pem", "-days", "2",
                 "-subj", f"/CN=tomato test {ca}", cwd=d)
    _issue(d, "ca", "server", "serverAuth", "IP:127.0.0.1,DNS:localhost")
    _issue(d, "ca", "client", "clientAuth")
    _issue(d, "rogue-ca", "rogue", "clientAuth")
    os.chmod(d / "client-key.pem", 0o600)
    try:
        yield Certs(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@dataclass
class TcpServer:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"


def _start(server: Server, host: str, *flags: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([TOMATO, "serve", "--host", host, *flags],
                                env={**os.environ, "TOMATO_ROOT": str(server.root)},
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def tls_server(server: Server, certs: Certs, storage: Path) -> Iterator[TcpServer]:
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="api-tls-", dir=storage)) / "serve.log"
    proc = _start(server, f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", certs["ca.pem"],
                  "--tlscert", certs["server-cert.pem"], "--tlskey", certs["server-key.pem"],
                  log=log)
    try:
        assert until(lambda: _listening(port) or proc.poll() is not None, timeout=20)
        assert proc.poll() is None, log.read_text()
        yield TcpServer(port, proc, log)
    finally:
        _stop(proc)
        shutil.rmtree(log.parent, ignore_errors=True)


def _docker(server: Server, host: str, *args: str, tls: list[str] | None = None,
            input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**server.env(), "DOCKER_HOST": host}
    return subprocess.run([DOCKER, *(tls or []), *args], env=env, capture_output=True,
                          timeout=60, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)


def _client_flags(certs: Certs, cert: str = "client") -> list[str]:
    return ["--tlsverify", "--tlscacert", certs["ca.pem"], "--tlscert", certs[f"{cert}-cert.pem"],
            "--tlskey", certs[f"{cert}-key.pem"]]


def test_docker_cli_with_a_client_certificate(server: Server, tls_server: TcpServer,
                                              certs: Certs) -> None:
    flags = _client_flags(certs)
    version = _docker(server, tls_server.host, "version", "--format", "{{.Server.APIVersion}}",
                      tls=flags)
    assert version.returncode == 0 and version.stdout == b"1.43\n", version.stderr
    run = _docker(server, tls_server.host, "run", "--rm", "-i", "--network", "none", "busybox",
                  "sh", "-c", "cat; echo done", tls=flags, input=b"through TLS\n")
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"through TLS\ndone\n"  # attach, stdin's end and the exit code
    _docker(server, tls_server.host, "run", "-d", "--name", "tlsexec", "--network", "none",
            "busybox", "sleep", "1000", tls=flags)
    try:
        exec_ = _docker(server, tls_server.host, "exec", "-i", "tlsexec", "sh", "-c",
                        "cat; echo end", tls=flags, input=b"x" * 300_000)
        assert exec_.returncode == 0, exec_.stderr
        assert exec_.stdout == b"x" * 300_000 + b"end\n"
        missing = _docker(server, tls_server.host, "exec", "tlsexec", "/nonexistent", tls=flags)
        assert missing.returncode == 127 and b"no such file" in missing.stdout + missing.stderr
        logs = _docker(server, tls_server.host, "logs", "tlsexec", tls=flags)
        assert logs.returncode == 0
    finally:
        _docker(server, tls_server.host, "rm", "-f", "tlsexec", tls=flags)


def test_clients_without_a_good_certificate_are_refused(server: Server, tls_server: TcpServer,
                                                        certs: Certs) -> None:
    attempts = {
        "no client certificate": ["--tls", "--tlscacert", certs["ca.pem"]],
        "a certificate of another CA": _client_flags(certs, "rogue"),
        "plain HTTP": [],
    }
    for what, flags in attempts.items():
        proc = _docker(server, tls_server.host, "ps", tls=flags)
        assert proc.returncode != 0, what
    # raw: a TLS client without a certificate never gets an HTTP answer
    ctx = ssl.create_default_context(cafile=certs["ca.pem"])
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
                if not tls.recv(100):
                    raise ConnectionError("closed")
    ok = _docker(server, tls_server.host, "version", tls=_client_flags(certs))
    assert ok.returncode == 0, ok.stderr  # and the server serves on


def test_silent_tcp_connections_do_not_block_tls_clients(server: Server, tls_server: TcpServer,
                                                         certs: Certs) -> None:
    silent = [socket.create_connection(("127.0.0.1", tls_server.port), timeout=10)
              for _ in range(300)]  # no handshake, ever
    try:
        proc = _docker(server, tls_server.host, "info", "--format", "{{.ServerVersion}}",
                       tls=_client_flags(certs))
        assert proc.returncode == 0, proc.stderr
    finally:
        for s in silent:
            s.close()


def test_docker_py_with_a_client_certificate(server: Server, tls_server: TcpServer,
                                             certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
    docker = pytest.importorskip("docker")
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests lets them override
        monkeypatch.delenv(name, raising=False)  # docker-py's CA (psf/requests#3829)
    tls = docker.tls.TLSConfig(client_cert=(certs["client-cert.pem"], certs["client-key.pem"]),
                               ca_cert=certs["ca.pem"], verify=True)
    client = docker.DockerClient(base_url=f"https://127.0.0.1:{tls_server.port}", tls=tls,
                                 version="1.43", timeout=60)
    try:
        assert client.ping()
        out = client.containers.run("busybox", ["echo", "py over tls"], remove=True,
                                    network_mode="none")
        assert out == b"py over tls\n"
    finally:
        client.close()
    rogue = docker.tls.TLSConfig(client_cert=(certs["rogue-cert.pem"], certs["rogue-key.pem"]),
                                 ca_cert=certs["ca.pem"], verify=True)
    client = docker.DockerClient(base_url=f"https://127.0.0.1:{tls_server.port}", tls=rogue,
                                 version="1.43", timeout=30)
    try:
        with pytest.raises(Exception):  # noqa: B017 — requests' SSLError or ConnectionError
            client.ping()
    finally:
        client.close()


def _serve_once(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """`tomato serve` expected to refuse at once."""
    return subprocess.run([TOMATO, "serve", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TOMATO_ROOT": str(server.root)})


def test_tcp_without_tls_is_refused(server: Server, certs: Certs) -> None:
    port = free_port()
    for flags in ([], ["--tls", "--tlscert", certs["server-cert.pem"],
                       "--tlskey", certs["server-key.pem"]]):
        proc = _serve_once(server, "--host", f"tcp://127.0.0.1:{port}", *flags)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tomato: refusing to serve the API")
        assert "--insecure-tcp" in lines[0] and "--tlsverify" in lines[0]
        assert not _listening(port)


def test_insecure_tcp_is_served_with_a_loud_warning(server: Server, certs: Certs,
                                                    workdir: Path) -> None:
    for flags in (["--insecure-tcp"],
                  ["--insecure-tcp", "--tls", "--tlscert", certs["server-cert.pem"],
                   "--tlskey", certs["server-key.pem"]]):
        port = free_port()
        log = workdir / "insecure.log"
        proc = _start(server, f"tcp://127.0.0.1:{port}", *flags, log=log)
        try:
            assert until(lambda p=proc, n=port: _listening(n) or p.poll() is not None,  # type: ignore[misc]
                         timeout=20)
            text = log.read_text()
            assert "WARNING" in text and "root" in text, text
            client = ["--tls", "--tlscacert", certs["ca.pem"]] if "--tls" in flags else []
            host = f"tcp://127.0.0.1:{port}"
            ok = _docker(server, host, "version", tls=client)
            assert ok.returncode == 0, ok.stderr
        finally:
            _stop(proc)


@pytest.mark.parametrize("flags,words", [
    (["--tlsverify", "--tlscacert", "/nonexistent/ca.pem"], "could not read --tlscacert"),
    (["--tlsverify", "--tlscert", "/nonexistent/cert.pem"], "could not read --tlscert"),
])
def test_bad_tls_files(server: Server, certs: Certs, flags: list[str], words: str) -> None:
    full = {"--tlscacert": certs["ca.pem"], "--tlscert": certs["server-cert.pem"],
            "--tlskey": certs["server-key.pem"]}
    for i in range(1, len(flags), 2):
        full[flags[i]] = flags[i + 1]
    args = ["--tlsverify", *[x for kv in full.items() for x in kv]]
    proc = _serve_once(server, "--host", f"tcp://127.0.0.1:{free_port()}", *args)
    assert proc.returncode == 1 and words in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    swapped = _serve_once(server, "--host", f"tcp://127.0.0.1:{free_port()}", "--tlsverify",
                          "--tlscacert", certs["ca.pem"], "--tlscert", certs["server-cert.pem"],
                          "--tlskey", certs["client-key.pem"])  # a key of another certificate
    assert swapped.returncode == 1 and "cannot use the TLS certificate" in swapped.stderr


def test_tls_flags_are_for_tcp(server: Server, workdir: Path) -> None:
    proc = _serve_once(server, "--host", f"unix://{workdir}/x.sock", "--tlsverify")
    assert proc.returncode == 1 and "are for tcp:// hosts" in proc.stderr


def test_socket_mode_and_group(server: Server, workdir: Path) -> None:
    """0660, group `tomato` if it exists (else root's), or --group; an unknown one refused."""
    try:
        default_gid = grp.getgrnam("tomato").gr_gid
    except KeyError:
        default_gid = 0
    sock = workdir / "g.sock"
    for flags, gid in (([], default_gid), (["--group", "daemon"], grp.getgrnam("daemon").gr_gid)):
        proc = _start(server, f"unix://{sock}", *flags, log=workdir / "g.log")
        try:
            assert until(lambda p=proc: sock.exists() or p.poll() is not None,  # type: ignore[misc]
                         timeout=20)
            st = os.stat(sock)
            assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o660, 0, gid)
        finally:
            _stop(proc)
    proc = _serve_once(server, "--host", f"unix://{workdir}/n.sock", "--group", "no-such-grp")
    assert proc.returncode == 1 and proc.stderr.strip() == "tomato: unknown group: no-such-grp"
    assert not (workdir / "n.sock").exists()
