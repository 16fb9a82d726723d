"""Who may reach the API: TLS for tcp:// hosts, as dockerd's flags have it.

The API is root on this host.  A unix socket is guarded by its mode and group
(server.py); a TCP port is open to every local user and process, so it is
served only with mutual TLS (``--tlsverify``: a client must show a certificate
signed by ``--tlscacert``) unless ``--insecure-tcp`` says the risk is taken
(then loudly).  ``--tls`` alone encrypts but authenticates nobody: it too
needs ``--insecure-tcp``.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from tomato.errors import InvalidArgument


def default_cert_dir() -> Path:
    """$DOCKER_CERT_PATH, else ~/.docker (where dockerd looks too)."""
    return Path(os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")


@dataclass(frozen=True)
class TransportOptions:
    tls: bool = False
    tlsverify: bool = False
    tlscacert: str = ""
    tlscert: str = ""
    tlskey: str = ""
    insecure_tcp: bool = False

    @property
    def wants_tls(self) -> bool:
        return self.tls or self.tlsverify

    def paths(self) -> tuple[str, str, str]:
        base = default_cert_dir()
        return (self.tlscacert or str(base / "ca.pem"), self.tlscert or str(base / "cert.pem"),
                self.tlskey or str(base / "key.pem"))


def check(host: str, kind: str, opts: TransportOptions) -> list[str]:
    """Refuse what would hand root to whoever connects; the warnings to print loudly."""
    if kind == "unix":
        if opts.wants_tls or opts.insecure_tcp:
            raise InvalidArgument("--tls, --tlsverify and --insecure-tcp are for tcp:// hosts; "
                                  "a unix socket is guarded by its mode and --group")
        return []
    if opts.tlsverify:
        return []
    what = "TLS that verifies clients" if opts.tls else "TLS"
    if not opts.insecure_tcp:
        raise InvalidArgument(
            f"refusing to serve the API on {host} without {what}: every local user could "
            "connect and be root on this host; use --tlsverify with --tlscacert, --tlscert "
            "and --tlskey (or a unix socket with --group), or --insecure-tcp to accept it")
    return [
        f"serving the API on {host} without {what} (--insecure-tcp).",
        "Access to the API is equivalent to root access on this host, and any user or",
        "process here can connect to a TCP port: they all have root now.",
        "Use a unix socket with --group, or --tlsverify --tlscacert CA --tlscert CERT "
        "--tlskey KEY.",
    ]


def server_context(opts: TransportOptions) -> ssl.SSLContext:
    """TLS 1.2 or later with the server's certificate; with --tlsverify a client must
    present a certificate signed by the CA."""
    cacert, cert, key = opts.paths()
    need = [("--tlscert", cert), ("--tlskey", key)] + \
        ([("--tlscacert", cacert)] if opts.tlsverify else [])
    for flag, path in need:
        try:
            with open(path, "rb"):
                pass
        except OSError as err:
            raise InvalidArgument(f"could not read {flag} {path}: {err.strerror}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as err:
        raise InvalidArgument(f"cannot use the TLS certificate {cert} with the key {key}: "
                              f"{err.reason or err}") from None
    if opts.tlsverify:
        try:
            ctx.load_verify_locations(cafile=cacert)
        except ssl.SSLError as err:
            raise InvalidArgument(f"cannot use the CA certificate {cacert}: "
                                  f"{err.reason or err}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
