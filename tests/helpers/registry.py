"""Image-test helpers: a real registry, images built by umoci/skopeo, and hand-made layer tars.

``Registry`` runs Debian's ``docker-registry serve CONFIG`` on 127.0.0.1 with a free
port and filesystem storage in a temp dir.  ``build_oci_image`` uses umoci (from
Debian, a tool nobody here wrote) to turn a rootfs into an OCI layout, and
``skopeo_push`` copies it to a registry.  ``make_tar``/``raw_push`` build hostile
layers with Python's tarfile and push them with plain HTTP (so nothing of
tomato's own is under test while making the fixtures).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

ENVPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        import pytest
        pytest.skip(f"needs {', '.join(missing)} (apt-get install docker-registry skopeo umoci)")


class Registry:
    """A docker-registry process; use as a context manager."""

    def __init__(self, workdir: Path, htpasswd: Path | None = None,
                 access_log: bool = False) -> None:
        self.dir = workdir
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.htpasswd = htpasswd
        self.access_log = access_log

    def start(self) -> Registry:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        auth = ""
        if self.htpasswd:
            auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {self.htpasswd}\n"
        cfg = self.dir / "config.yml"
        cfg.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n"
            f"    disabled: {'false' if self.access_log else 'true'}\n"
            f"storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.addr}\n{auth}")
        self.log = open(self.dir / "registry.log", "ab")  # appended to across restarts
        self.proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                c = http.client.HTTPConnection(self.addr, timeout=1)
                c.request("GET", "/v2/")
                c.getresponse().read()
                c.close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"registry did not start: {(self.dir / 'registry.log').read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None

    def __enter__(self) -> Registry:
        return self.start()

    def blob_gets(self, digest: str) -> list[tuple[int, int]]:
        """(status, bytes sent) of every GET of a blob so far (needs ``access_log``)."""
        pattern = re.compile(r'"GET /v2/[^ ]*/blobs/' + re.escape(digest) +
                             r' HTTP/[0-9.]+" (\d+) (\d+)')
        text = (self.dir / "registry.log").read_text(errors="replace")
        return [(int(m.group(1)), int(m.group(2))) for m in pattern.finditer(text)]

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- raw HTTP pushes, independent of tomato's client ----------------------
    def _req(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        c = http.client.HTTPConnection(self.addr, timeout=30)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        r.read()
        c.close()
        return r

    def put_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = self._req("POST", f"/v2/{repo}/blobs/uploads/")
        assert r.status == 202, r.status
        loc = r.getheader("Location") or ""
        loc = loc.split(self.addr, 1)[-1]
        sep = "&" if "?" in loc else "?"
        r = self._req("PUT", f"{loc}{sep}digest={digest}", data,
                      {"Content-Type": "application/octet-stream"})
        assert r.status == 201, r.status
        return digest

    def put_manifest(self, repo: str, tag: str, data: bytes, media_type: str) -> str:
        r = self._req("PUT", f"/v2/{repo}/manifests/{tag}", data, {"Content-Type": media_type})
        assert r.status == 201, (r.status, r.reason)
        return "sha256:" + hashlib.sha256(data).hexdigest()


def raw_push(reg: Registry, repo: str, tag: str, layers: list[bytes],
             diff_ids: list[str] | None = None, compressed: bool = True,
             layer_sizes: list[int] | None = None) -> dict[str, object]:
    """Push an image made of the given raw layer tars (gzipped here unless told not)."""
    blobs = [gzip.compress(t, 1) if compressed else t for t in layers]
    if diff_ids is None:
        diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": [ENVPATH], "Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"layer {i}"} for i in range(len(layers))]
                         }).encode()
    cdigest = reg.put_blob(repo, config)
    descs = []
    for i, b in enumerate(blobs):
        d = reg.put_blob(repo, b)
        size = layer_sizes[i] if layer_sizes else len(b)
        mt = ("application/vnd.oci.image.layer.v1.tar+gzip" if compressed
              else "application/vnd.oci.image.layer.v1.tar")
        descs.append({"mediaType": mt, "digest": d, "size": size})
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": cdigest, "size": len(config)},
                           "layers": descs}).encode()
    mdigest = reg.put_manifest(repo, tag, manifest, "application/vnd.oci.image.manifest.v1+json")
    return {"manifest": mdigest, "config": cdigest, "layers": [d["digest"] for d in descs],
            "diff_ids": diff_ids, "manifest_bytes": manifest}


# -- layer tars -----------------------------------------------------------------
@dataclass
class Entry:
    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1_600_000_000
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, str] | None = None


def make_tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.type = e.type
            ti.mode = e.mode
            ti.uid, ti.gid = e.uid, e.gid
            ti.mtime = e.mtime
            ti.linkname = e.linkname
            ti.devmajor, ti.devminor = e.devmajor, e.devminor
            if e.xattrs:
                ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs.items()}
            if e.type == tarfile.REGTYPE:
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def d(name: str, mode: int = 0o755, **kw: object) -> Entry:
    return Entry(name, tarfile.DIRTYPE, mode=mode, **kw)  # type: ignore[arg-type]


def f(name: str, data: bytes = b"", mode: int = 0o644, **kw: object) -> Entry:
    return Entry(name, tarfile.REGTYPE, data=data, mode=mode, **kw)  # type: ignore[arg-type]


def sym(name: str, target: str) -> Entry:
    return Entry(name, tarfile.SYMTYPE, linkname=target, mode=0o777)


def hard(name: str, target: str) -> Entry:
    return Entry(name, tarfile.LNKTYPE, linkname=target)


def chr_dev(name: str, major: int, minor: int) -> Entry:
    return Entry(name, tarfile.CHRTYPE, mode=0o666, devmajor=major, devminor=minor)


# -- images built by umoci / skopeo ------------------------------------------------
def umoci(*args: str) -> None:
    subprocess.run(["umoci", *args], check=True, capture_output=True)


def build_oci_image(layout: Path, tag: str, rootfs_dirs: list[Path]) -> None:
    """An OCI layout whose image ``tag`` has one layer per rootfs dir (umoci insert)."""
    if not (layout / "index.json").exists():
        umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:{tag}")
    for root in rootfs_dirs:
        umoci("insert", "--image", f"{layout}:{tag}", str(root), "/")
    umoci("config", "--image", f"{layout}:{tag}", "--config.cmd", "sh", "--config.env", ENVPATH,
          "--architecture", "amd64", "--os", "linux")


def add_raw_layer(layout: Path, tag: str, tar_path: Path) -> None:
    umoci("raw", "add-layer", "--image", f"{layout}:{tag}", str(tar_path))


def skopeo_push(src: str, reg: Registry, dest: str) -> None:
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", src,
                    f"docker://{reg.addr}/{dest}"], check=True, capture_output=True)


def skopeo_digest(reg: Registry, ref: str) -> str:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{reg.addr}/{ref}"],
                         check=True, capture_output=True, text=True).stdout
    return str(json.loads(out)["Digest"])


def tree_listing(root: Path) -> dict[str, tuple[object, ...]]:
    """path → (type, mode, uid, gid, link target or rdev, content hash) to compare trees."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            import stat as s
            if s.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p), st.st_uid, st.st_gid)
            elif s.S_ISDIR(st.st_mode):
                out[rel] = ("d", s.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            elif s.S_ISREG(st.st_mode):
                h = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                out[rel] = ("f", s.S_IMODE(st.st_mode), st.st_uid, st.st_gid, h)
            else:
                out[rel] = ("o", st.st_mode, st.st_rdev)
    return out


# -- a tiny fake registry for faults a real one never makes -------------------------
class FakeRegistry:
    """Serves fixed manifests and blobs on 127.0.0.1 with injectable faults.

    manifests: {reference: (body, media_type, announced_digest or None)}
    blobs:     {digest: body}
    drop:      {digest: (after_bytes, times)}: close the connection after that many bytes,
               for the first ``times`` requests of that blob
    ranges:    honour Range requests
    redirect:  answer blob GETs with a 307 to ``localhost:PORT/storage/DIGEST``
    token:     require ``Bearer <token>`` from a token endpoint on the same server;
               ``basic`` (user, password) then guards the token endpoint
    """

    def __init__(self, manifests: dict[str, tuple[bytes, str, str | None]],
                 blobs: dict[str, bytes], drop: dict[str, tuple[int, int]] | None = None,
                 ranges: bool = True, token: str | None = None,
                 basic: tuple[str, str] | None = None, redirect: bool = False) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        fake = self
        self.manifests, self.blobs, self.drop = manifests, blobs, dict(drop or {})
        self.ranges, self.token, self.basic = ranges, token, basic
        self.redirect = redirect
        self.requests: list[tuple[str, str, dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None,
                      head: bool = False) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _authorized(self) -> bool:
                if fake.token is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {fake.token}":
                    return True
                realm = f"http://{fake.addr}/token"
                self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}', {
                    "WWW-Authenticate": f'Bearer realm="{realm}",service="fake",'
                                        f'scope="repository:x:pull"'})
                return False

            def do_HEAD(self) -> None:
                self.do_GET(head=True)

            def do_GET(self, head: bool = False) -> None:
                import base64
                fake.requests.append(("GET", self.path, dict(self.headers)))
                path = self.path.split("?")[0]
                if path == "/token":
                    if fake.basic:
                        want = "Basic " + base64.b64encode(
                            f"{fake.basic[0]}:{fake.basic[1]}".encode()).decode()
                        if self.headers.get("Authorization") != want:
                            self._send(401)
                            return
                    self._send(200, json.dumps({"token": fake.token}).encode())
                    return
                if not path.startswith("/storage/") and not self._authorized():
                    return
                if path == "/v2/":
                    self._send(200, b"{}")
                    return
                parts = path.split("/")
                if len(parts) >= 5 and parts[-2] == "manifests":
                    ref = parts[-1]
                    if ref not in fake.manifests:
                        self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                        return
                    body, mt, digest = fake.manifests[ref]
                    h = {"Content-Type": mt}
                    if digest:
                        h["Docker-Content-Digest"] = digest
                    self._send(200, body, h, head)
                    return
                if len(parts) >= 5 and parts[-2] == "blobs" and fake.redirect:
                    # blob storage elsewhere: same server, another host name, no auth
                    port = fake.addr.rsplit(":", 1)[1]
                    self._send(307, b"", {"Location": f"http://localhost:{port}/storage/"
                                                      f"{parts[-1]}"}, head)
                    return
                if (len(parts) >= 5 and parts[-2] == "blobs") or \
                        (len(parts) == 3 and parts[1] == "storage"):
                    digest = parts[-1]
                    if digest not in fake.blobs:
                        self._send(404)
                        return
                    body = fake.blobs[digest]
                    start = 0
                    rng = self.headers.get("Range")
                    if rng and fake.ranges:
                        start = int(rng.split("=")[1].split("-")[0])
                    code = 206 if start else 200
                    data = body[start:]
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(data)))
                    if code == 206:
                        self.send_header("Content-Range",
                                         f"bytes {start}-{len(body) - 1}/{len(body)}")
                    self.end_headers()
                    if head:
                        return
                    after, times = fake.drop.get(digest, (0, 0))
                    if times > 0:
                        fake.drop[digest] = (after, times - 1)
                        self.wfile.write(data[:after])
                        self.wfile.flush()
                        self.close_connection = True
                        import socket as s
                        self.connection.shutdown(s.SHUT_RDWR)
                        return
                    self.wfile.write(data)
                    return
                self._send(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def fake_image(layers: list[bytes], diff_ids: list[str] | None = None,
               sizes: list[int] | None = None) -> tuple[dict, dict, str]:  # type: ignore[type-arg]
    """(manifests, blobs, manifest digest) for FakeRegistry: gzipped layers, OCI manifest."""
    blobs = {}
    descs = []
    for i, t in enumerate(layers):
        b = gzip.compress(t, 1)
        dg = "sha256:" + hashlib.sha256(b).hexdigest()
        blobs[dg] = b
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": dg, "size": sizes[i] if sizes else len(b)})
    ids = diff_ids or ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": ids}}).encode()
    cd = "sha256:" + hashlib.sha256(cfg).hexdigest()
    blobs[cd] = cfg
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": cd, "size": len(cfg)}, "layers": descs}).encode()
    md = "sha256:" + hashlib.sha256(man).hexdigest()
    mt = "application/vnd.oci.image.manifest.v1+json"
    return {"latest": (man, mt, md), md: (man, mt, md)}, blobs, md
