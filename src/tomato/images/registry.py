"""A client of the OCI distribution API (registry v2) on http.client.

- HTTPS always, except plain HTTP for localhost/127.0.0.1/::1 and hosts the
  caller marks insecure.
- Auth: a 401 carries a ``WWW-Authenticate`` challenge; ``Bearer`` fetches a
  token from the realm (anonymously or with the stored basic credentials),
  ``Basic`` sends the credentials.  Tokens are cached per scope.
- Redirects (blob storage) are followed; Authorization is not sent to another host.
- Blob downloads resume with ``Range`` after a dropped connection (and from the
  bytes an interrupted pull left, ``open_blob(offset=)``) and check the announced
  size and the ``Content-Range``; a server that ignores Range is skipped forward.
- One keep-alive connection per thread and host (layers download in parallel).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from tomato.errors import InvalidArgument, NotFound, PermissionDenied, TomatoError, Unavailable

from .auth import Credentials, parse_challenge
from .content import DigestMismatch
from .manifest import ACCEPT

MANIFEST_LIMIT = 8 << 20
REDIRECTS = 5
RETRIES = 5
_LOCAL = ("localhost", "127.0.0.1", "::1", "[::1]")


class RegistryError(TomatoError):
    """The registry answered with an error."""


def registry_url_host(domain: str) -> str:
    """Docker Hub's API lives at registry-1.docker.io."""
    return "registry-1.docker.io" if domain == "docker.io" else domain


def is_local(domain: str) -> bool:
    host = domain.rsplit(":", 1)[0] if not domain.endswith("]") else domain
    return host in _LOCAL or host.startswith("127.")


@dataclass(frozen=True)
class Fetched:
    data: bytes
    media_type: str
    digest: str


_BROKEN = (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError,
           http.client.RemoteDisconnected, http.client.BadStatusLine, ssl.SSLError)


class RegistryClient:
    def __init__(self, domain: str, *, insecure: bool = False,
                 credentials: Credentials | None = None, timeout: float = 60,
                 user_agent: str = "tomato/0.1") -> None:
        self.domain = domain
        self.host = registry_url_host(domain)
        self.scheme = "http" if insecure or is_local(domain) else "https"
        self.credentials = credentials
        self.timeout = timeout
        self.user_agent = user_agent
        self._local = threading.local()
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._lock = threading.Lock()
        self.retry_delay = 0.2

    # -- connections ----------------------------------------------------------
    def _conn(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        conns = self._local.__dict__.setdefault("conns", {})
        key = (scheme, netloc)
        c: http.client.HTTPConnection | None = conns.get(key)
        if c is None:
            if scheme == "https":
                c = http.client.HTTPSConnection(netloc, timeout=self.timeout, blocksize=1 << 20,
                                                context=ssl.create_default_context())
            else:
                c = http.client.HTTPConnection(netloc, timeout=self.timeout, blocksize=1 << 20)
            conns[key] = c
        return c

    def _drop(self, scheme: str, netloc: str) -> None:
        conns = self._local.__dict__.get("conns", {})
        c = conns.pop((scheme, netloc), None)
        if c is not None:
            c.close()

    def close(self) -> None:
        for c in self._local.__dict__.get("conns", {}).values():
            c.close()
        self._local.__dict__["conns"] = {}

    def _send(self, method: str, url: str, headers: dict[str, str],
              body: Any = None) -> http.client.HTTPResponse:
        u = urllib.parse.urlsplit(url)
        path = u.path + ("?" + u.query if u.query else "")
        for attempt in range(2):  # a kept-alive connection may have been closed by the server
            c = self._conn(u.scheme, u.netloc)
            try:
                c.request(method, path, body=body, headers=headers)
                return c.getresponse()
            except (ConnectionRefusedError, socket.gaierror) as err:
                self._drop(u.scheme, u.netloc)
                raise Unavailable(f"cannot reach registry {u.netloc}: {err}") from err
            except ssl.SSLCertVerificationError as err:
                self._drop(u.scheme, u.netloc)
                raise Unavailable(f"tls verification of {u.netloc} failed: {err}") from err
            except _BROKEN as err:
                self._drop(u.scheme, u.netloc)
                if attempt or body is not None and not isinstance(body, bytes):
                    raise Unavailable(f"registry {u.netloc} dropped the connection: {err}") \
                        from err
            except OSError as err:
                self._drop(u.scheme, u.netloc)
                raise Unavailable(f"cannot reach registry {u.netloc}: {err}") from err
        raise AssertionError("unreachable")

    # -- auth -----------------------------------------------------------------
    def _auth_header(self, scope: str) -> str | None:
        with self._lock:
            tok = self._tokens.get(scope)
        if tok:
            return "Bearer " + tok
        if self._basic and self.credentials:
            return self.credentials.basic()
        return None

    def _authenticate(self, header: str, scope: str) -> None:
        ch = parse_challenge(header)
        if ch.scheme == "basic":
            if not self.credentials:
                raise PermissionDenied(f"registry {self.domain} needs a login (tomato login)")
            self._basic = True
            return
        if ch.scheme != "bearer" or "realm" not in ch.params:
            raise PermissionDenied(f"registry {self.domain} asks for unsupported auth {header!r}")
        query = {"service": ch.params.get("service", "")}
        if scope:
            query["scope"] = scope
        url = ch.params["realm"] + "?" + urllib.parse.urlencode(query)
        headers = {"User-Agent": self.user_agent}
        if self.credentials:
            headers["Authorization"] = self.credentials.basic()
        r = self._send("GET", url, headers)
        body = r.read()
        if r.status != 200:
            raise PermissionDenied(
                f"token request to {urllib.parse.urlsplit(url).netloc} failed: {r.status}")
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except ValueError as err:
            raise PermissionDenied("token server sent no json") from err
        if not token:
            raise PermissionDenied("token server sent no token")
        with self._lock:
            self._tokens[scope] = token

    def request(self, method: str, path: str, *, scope: str, headers: dict[str, str] | None = None,
                body: Any = None, ok: tuple[int, ...] = (200,)) -> http.client.HTTPResponse:
        """Send, handling auth challenges and redirects; the response body is left unread."""
        url = f"{self.scheme}://{self.host}{path}" if path.startswith("/") else path
        authed = False
        for _ in range(REDIRECTS + 2):
            h = {"User-Agent": self.user_agent, **(headers or {})}
            same_host = urllib.parse.urlsplit(url).netloc == self.host
            auth = self._auth_header(scope) if same_host else None
            if auth:
                h["Authorization"] = auth
            r = self._send(method, url, h, body)
            if r.status == 401 and same_host and not authed:
                r.read()
                challenge = r.getheader("WWW-Authenticate")
                if not challenge:
                    raise PermissionDenied(f"registry {self.domain} refused access")
                self._authenticate(challenge, scope)
                authed = True
                continue
            if r.status in (301, 302, 303, 307, 308) and r.getheader("Location"):
                r.read()
                url = urllib.parse.urljoin(url, r.getheader("Location") or "")
                if r.status == 303:
                    method, body = "GET", None
                continue
            if r.status not in ok:
                self._raise(r, path)
            return r
        raise RegistryError(f"too many redirects for {path}")

    def _raise(self, r: http.client.HTTPResponse, what: str) -> None:
        body = r.read(65536)
        detail = ""
        try:
            errs = json.loads(body).get("errors") or []
            detail = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".lower()
                               for e in errs)
        except (ValueError, AttributeError):
            pass
        msg = f"registry {self.domain}: {r.status} {r.reason.lower()} for {what}"
        msg += f" ({detail})" if detail else ""
        if r.status == 404:
            raise NotFound(msg)
        if r.status in (401, 403):
            raise PermissionDenied(msg)
        if r.status == 400:
            raise InvalidArgument(msg)
        raise RegistryError(msg)

    # -- API ------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/, authenticating if challenged (used by login to check credentials)."""
        r = self.request("GET", "/v2/", scope="")
        r.read()

    @staticmethod
    def _scope(repo: str, push: bool = False) -> str:
        return f"repository:{repo}:{'pull,push' if push else 'pull'}"

    def get_manifest(self, repo: str, reference: str) -> Fetched:
        """Fetch a manifest or index; verify it against the digest asked for or announced."""
        r = self.request("GET", f"/v2/{repo}/manifests/{reference}", scope=self._scope(repo),
                         headers={"Accept": ACCEPT})
        length = r.getheader("Content-Length")
        if length and int(length) > MANIFEST_LIMIT:
            r.close()
            raise InvalidArgument(f"manifest for {repo}:{reference} is too large")
        try:
            data = r.read(MANIFEST_LIMIT + 1)
        except _BROKEN as err:
            raise Unavailable(f"registry {self.domain} dropped the connection: {err}") from err
        if len(data) > MANIFEST_LIMIT:
            raise InvalidArgument(f"manifest for {repo}:{reference} is too large")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        expected = reference if reference.startswith("sha256:") else \
            r.getheader("Docker-Content-Digest")
        if expected and expected.startswith("sha256:") and expected != digest:
            raise DigestMismatch(f"manifest {repo}@{expected} has digest {digest}: refused")
        media_type = (r.getheader("Content-Type") or "").split(";")[0].strip()
        return Fetched(data, media_type, digest)

    def get_blob_bytes(self, repo: str, digest: str, size: int, limit: int = 64 << 20) -> bytes:
        """A small blob (a config), verified."""
        if size > limit:
            raise InvalidArgument(f"blob {digest} is too large ({size} bytes)")
        stream = self.open_blob(repo, digest, size)
        data = stream.read_all()
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != digest:
            raise DigestMismatch(f"blob {digest} has digest {got}: refused")
        return data

    def open_blob(self, repo: str, digest: str, size: int, offset: int = 0) -> BlobStream:
        """The blob's bytes from ``offset`` on (a resumed download asks with Range)."""
        return BlobStream(self, repo, digest, size, offset=offset)

    def blob_exists(self, repo: str, digest: str) -> bool:
        r = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=self._scope(repo, True),
                         ok=(200, 404))
        r.read()
        return r.status == 200

    def upload_blob(self, repo: str, digest: str, size: int, src: BinaryIO) -> None:
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=self._scope(repo, True),
                         headers={"Content-Length": "0"}, body=b"", ok=(202,))
        r.read()
        loc = r.getheader("Location")
        if not loc:
            raise RegistryError(f"registry {self.domain} gave no upload location")
        url = urllib.parse.urljoin(f"{self.scheme}://{self.host}/v2/", loc)
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
        r = self.request("PUT", url, scope=self._scope(repo, True), body=src, ok=(201,),
                         headers={"Content-Type": "application/octet-stream",
                                  "Content-Length": str(size)})
        r.read()

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        r = self.request("PUT", f"/v2/{repo}/manifests/{reference}",
                         scope=self._scope(repo, True), body=data, ok=(201,),
                         headers={"Content-Type": media_type})
        r.read()
        return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobStream:
    """``read(n)`` over a blob download that resumes with Range after a broken connection.

    Refuses more bytes than ``size`` and an early end after the retries are spent;
    digest checking is the caller's (the content store's writer).
    """

    def __init__(self, client: RegistryClient, repo: str, digest: str, size: int,
                 on_retry: Callable[[int, BaseException], None] | None = None,
                 offset: int = 0) -> None:
        self.client, self.repo, self.digest, self.size = client, repo, digest, size
        if not 0 <= offset <= size:
            raise InvalidArgument(f"cannot resume blob {digest} of {size} bytes at {offset}")
        self.offset = offset
        self.retries = 0
        self.on_retry = on_retry
        self._resp: http.client.HTTPResponse | None = None

    def _open(self) -> None:
        headers = {}
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
        r = self.client.request("GET", f"/v2/{self.repo}/blobs/{self.digest}",
                                scope=RegistryClient._scope(self.repo), headers=headers,
                                ok=(200, 206))
        if r.status == 206 and not self._range_ok(r.getheader("Content-Range")):
            r.close()
            self.client._drop(self.client.scheme, self.client.host)
            raise DigestMismatch(f"blob {self.digest}: the registry answered a request for "
                                 f"bytes {self.offset}- with {r.getheader('Content-Range')!r}")
        length = r.getheader("Content-Length")
        total = int(length) + (self.offset if r.status == 206 else 0) if length else None
        if total is not None and total != self.size:
            r.close()
            self.client._drop(self.client.scheme, self.client.host)
            raise DigestMismatch(f"blob {self.digest} has size {total}, "
                                 f"but its descriptor says {self.size}: refused")
        if self.offset and r.status == 200:
            # No Range support: skip what we already have.
            left = self.offset
            while left:
                chunk = r.read(min(left, 1 << 20))
                if not chunk:
                    raise Unavailable(f"blob {self.digest} ended early on retry")
                left -= len(chunk)
        self._resp = r

    def _range_ok(self, header: str | None) -> bool:
        """``bytes START-END/TOTAL`` must start where we asked (and end at the size)."""
        if header is None:
            return True  # Content-Length is checked against the size all the same
        unit, _, spec = header.strip().partition(" ")
        span, _, total = spec.partition("/")
        start, _, end = span.partition("-")
        try:
            return (unit == "bytes" and int(start) == self.offset
                    and int(end) == self.size - 1 and total in ("*", str(self.size)))
        except ValueError:
            return False

    def read(self, n: int = 1 << 20) -> bytes:
        if n is None or n < 0:
            n = 1 << 20
        if self.offset >= self.size:
            if self._resp is not None and self._resp.read(1):
                raise DigestMismatch(f"blob {self.digest} is larger than its size {self.size}")
            self._close()
            return b""
        while True:
            try:
                if self._resp is None:
                    self._open()
                assert self._resp is not None
                data = self._resp.read(min(n, self.size - self.offset))
                if not data:
                    raise ConnectionError("stream ended early")
                self.offset += len(data)
                return data
            except _BROKEN as err:
                self._close(drop=True)
                self.retries += 1
                if self.retries > RETRIES:
                    raise Unavailable(
                        f"download of blob {self.digest} failed at byte {self.offset} "
                        f"of {self.size} after {RETRIES} retries: {err}") from err
                if self.on_retry:
                    self.on_retry(self.offset, err)
                time.sleep(self.client.retry_delay * self.retries)
            except Unavailable:
                self._close(drop=True)
                self.retries += 1
                if self.retries > RETRIES:
                    raise
                time.sleep(self.client.retry_delay * self.retries)

    def read_all(self) -> bytes:
        parts: list[bytes] = []
        while True:
            chunk = self.read()
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    def _close(self, drop: bool = False) -> None:
        if self._resp is not None:
            if drop:
                self.client._drop(self.client.scheme, self.client.host)
            self._resp = None

    def close(self) -> None:
        self._close(drop=self.offset < self.size)


__all__ = ["RegistryClient", "BlobStream", "Fetched", "RegistryError", "is_local",
           "registry_url_host"]
