"""docker cp and GET/PUT/HEAD /containers/{id}/archive against `tomato serve`: paths
are opened inside the container's root whatever it swaps meanwhile, a directory
holding absolute symlinks copies both ways, and Docker's copy rules (applied by
the real docker CLI on top of the archive endpoints) give what `tomato cp` gives."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
import urllib.parse
from pathlib import Path

import pytest
from helpers.engine import TOMATO, until

from .conftest import Server

HOST_SECRET = "host secret\n"
SWAP = "while :; do mv /w /w.r; ln -s / /w; rm /w; mv /w.r /w; done"
FILES = 30


def _tomato(api: Server, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOMATO_ROOT": str(api.root)}
    return subprocess.run([TOMATO, *args], capture_output=True, text=True, env=env,
                          timeout=60, stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tf.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


def test_archive_race_never_reaches_the_host(api: Server, workdir: Path) -> None:
    marker = workdir / "marker"
    marker.mkdir()
    for i in range(FILES):
        (marker / f"f{i}").write_text(HOST_SECRET)
    inner = str(marker).lstrip("/")
    api.docker("run", "-d", "--name", "race", "busybox", "sh", "-c",
               f"mkdir -p /w/{inner} /{inner}; for i in $(seq 0 {FILES - 1}); do "
               f"echo container > /w/{inner}/f$i; echo container > /{inner}/f$i; done; "
               f"touch /ready; {SWAP}")
    assert until(lambda: api.docker("exec", "race", "test", "-e", "/ready",
                                    check=False).returncode == 0)
    where = urllib.parse.quote(f"/w/{inner}")
    got_some = put_some = 0
    for i in range(200):
        status, body = api.request("GET", f"/containers/race/archive?path={where}")
        if status == 200:
            got_some += 1
            with tarfile.open(fileobj=io.BytesIO(body)) as tf:
                for m in tf:
                    if m.isreg():
                        data = tf.extractfile(m).read()  # type: ignore[union-attr]
                        assert data in (b"container\n", b"from the tar\n"), \
                            f"GET {i} read the host's {m.name}"
        else:
            assert status == 404, (status, body)
        if i % 2 == 0:
            status, body = api.request(
                "PUT", f"/containers/race/archive?path={where}",
                _tar({f"in-{i}-{k}": "from the tar\n" for k in range(FILES)}),
                {"Content-Type": "application/x-tar"})
            assert status in (200, 404), (status, body)
            put_some += status == 200
        assert sorted(p.name for p in marker.iterdir()) == \
            sorted(f"f{k}" for k in range(FILES)), f"PUT {i} wrote the host"
    assert got_some and put_some
    assert all(p.read_text() == HOST_SECRET for p in marker.iterdir())


def _host_tree(top: Path) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(top))
            if p.is_symlink():
                out[rel] = ("l", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("d",)
            else:
                out[rel] = ("f", p.read_text())
    return out


_LIST = ("cd {0} && find . -mindepth 1 | sort | while read p; do "
         "if [ -L \"$p\" ]; then echo \"$p l $(readlink \"$p\")\"; "
         "elif [ -d \"$p\" ]; then echo \"$p d\"; else echo \"$p f $(cat \"$p\")\"; fi; done")


def _container_tree(api: Server, top: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for line in api.docker("exec", "rules", "sh", "-c", _LIST.format(top)).stdout.splitlines():
        path, kind, *rest = line.split(" ", 2)
        out[path[2:]] = (kind, *rest)
    return out


def test_dir_with_absolute_symlinks_copies_both_ways(api: Server, workdir: Path) -> None:
    tree = workdir / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("deep\n")
    os.symlink("/etc/passwd", tree / "abs")
    os.symlink("sub/f", tree / "rel")
    os.symlink("/nonexistent/x", tree / "dangling")
    api.docker("run", "-d", "--name", "rules", "busybox", "sleep", "1000")
    for tool in ("docker", "tomato"):
        dest = f"rules:/srv-{tool}"
        proc = api.docker("cp", str(tree), dest, check=False) if tool == "docker" else \
            _tomato(api, "cp", str(tree), dest)
        assert proc.returncode == 0, proc.stderr
        assert _container_tree(api, f"/srv-{tool}") == {
            "abs": ("l", "/etc/passwd"), "dangling": ("l", "/nonexistent/x"),
            "rel": ("l", "sub/f"), "sub": ("d",), "sub/f": ("f", "deep")}
        back = workdir / f"back-{tool}"
        proc = api.docker("cp", dest, str(back), check=False) if tool == "docker" else \
            _tomato(api, "cp", dest, str(back))
        assert proc.returncode == 0, proc.stderr
        assert os.readlink(back / "abs") == "/etc/passwd"  # a link, never the host's file
        assert _host_tree(back) == _host_tree(tree)


def test_put_archive_with_absolute_symlink_and_stat(api: Server) -> None:
    docker = pytest.importorskip("docker", reason="needs docker-py")
    client = docker.DockerClient(base_url=api.host, version="auto", timeout=60)
    try:
        c = client.containers.run("busybox", "sleep 1000", detach=True, name="rules")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            d = tarfile.TarInfo("pkg")
            d.type, d.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(d)
            link = tarfile.TarInfo("pkg/shadow")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
            tf.addfile(link)
        assert c.put_archive("/tmp", buf.getvalue()) is True
        assert c.exec_run("readlink /tmp/pkg/shadow").output == b"/etc/shadow\n"
        bits, st = c.get_archive("/tmp/pkg")
        assert st["name"] == "pkg" and st["mode"] & (1 << 31)
        with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tf:
            members = {m.name: m for m in tf}
        assert members["pkg/shadow"].issym() and members["pkg/shadow"].linkname == "/etc/shadow"
        # the stat of a symlink: its target resolved inside the container
        c.exec_run("ln -s ../tmp/pkg /etc/pkglink")
        st = c.get_archive("/etc/pkglink")[1]
        assert st["mode"] & (1 << 27) and st["linkTarget"] == "/tmp/pkg"
    finally:
        client.close()


def test_head_archive_stat_and_errors(api: Server) -> None:
    api.docker("run", "-d", "--name", "rules", "busybox", "sleep", "1000")
    api.docker("exec", "rules", "sh", "-c", "mkdir -p /d && echo hi > /d/f")
    conn_status, _ = api.request("HEAD", "/containers/rules/archive?path=/d/f")
    assert conn_status == 200
    from .conftest import UnixHTTP

    conn = UnixHTTP(api.sock)
    try:
        conn.request("HEAD", "/containers/rules/archive?path=/d/.")
        resp = conn.getresponse()
        resp.read()
        st = json.loads(base64.b64decode(resp.getheader("X-Docker-Container-Path-Stat")))
    finally:
        conn.close()
    assert st["name"] == "." and st["mode"] & (1 << 31)
    status, body = api.request("GET", "/containers/rules/archive?path=/nope")
    assert status == 404 and body["message"] == "Could not find the file /nope in container rules"
    status, body = api.request("PUT", "/containers/rules/archive?path=/d/f", _tar({"x": "y"}))
    assert status == 400 and "not a directory" in body["message"]
    status, body = api.request("PUT", "/containers/rules/archive?path=/d", b"not a tar" * 100)
    assert status == 400 and "invalid tar archive" in body["message"]


# -- Docker's copy rules: the docker CLI's (client side) and tomato cp's, side by side ---------

#: (source, destination) as the user writes them: "C:" is the container.
OUT_CASES = [
    ("C:/src/file", "new"),             # a file to a new name
    ("C:/src/file", "newdir/"),         # ... to a missing directory: error
    ("C:/src/file", "existing-file"),   # overwrites
    ("C:/src/file", "existing-dir"),    # into it, by its name
    ("C:/src/dir", "new"),              # a directory to a new name: its contents there
    ("C:/src/dir", "existing-file"),    # error: a directory onto a file
    ("C:/src/dir", "existing-dir"),     # into it, by its name
    ("C:/src/dir/", "existing-dir"),    # the same
    ("C:/src/dir/.", "existing-dir"),   # its contents into it
    ("C:/src/dir/.", "new"),            # its contents into a new directory
    ("C:/src/link", "existing-dir"),    # the symlink itself
    ("-L C:/src/link", "existing-dir"),  # what it points at
    ("C:/src/nope", "existing-dir"),    # error: not found
]


def _setup_rules(api: Server, workdir: Path) -> Path:
    api.docker("run", "-d", "--name", "rules", "busybox", "sleep", "1000")
    api.docker("exec", "rules", "sh", "-c",
               "mkdir -p /src/dir/sub && echo a > /src/dir/a && echo b > /src/dir/sub/b && "
               "echo file > /src/file && ln -s dir /src/link")
    host = workdir / "src"
    (host / "dir" / "sub").mkdir(parents=True)
    (host / "dir" / "a").write_text("a\n")
    (host / "dir" / "sub" / "b").write_text("b\n")
    (host / "file").write_text("file\n")
    os.symlink("dir", host / "link")
    return host


def _cp(api: Server, tool: str, src: str, dest: str) -> int:
    flags = src.split()[:-1]
    src = src.split()[-1]
    proc = api.docker("cp", *flags, src, dest, check=False) if tool == "docker" else \
        _tomato(api, "cp", *flags, src, dest)
    return proc.returncode


def test_cp_out_follows_dockers_rules(api: Server, workdir: Path) -> None:
    _setup_rules(api, workdir)
    for n, (src, dest) in enumerate(OUT_CASES):
        results = {}
        for tool in ("docker", "tomato"):
            top = workdir / f"out-{n}-{tool}"
            (top / "existing-dir").mkdir(parents=True)
            (top / "existing-file").write_text("old\n")
            code = _cp(api, tool, src.replace("C:", "rules:"), str(top / dest))
            results[tool] = (code, _host_tree(top))
        assert results["tomato"] == results["docker"], (src, dest, results)


def test_cp_in_follows_dockers_rules(api: Server, workdir: Path) -> None:
    host = _setup_rules(api, workdir)
    for n, (src, dest) in enumerate(OUT_CASES):
        # the same shapes the other way: the host's /src copied into the container
        src = src.replace("C:/src", str(host))
        results = {}
        for tool in ("docker", "tomato"):
            top = f"/in-{n}-{tool}"
            api.docker("exec", "rules", "sh", "-c",
                       f"mkdir -p {top}/existing-dir && echo old > {top}/existing-file")
            code = _cp(api, tool, src, f"rules:{top}/{dest}")
            results[tool] = (code, _container_tree(api, top))
        assert results["tomato"] == results["docker"], (src, dest, results)


def test_cp_ownership_archive_mode(api: Server, workdir: Path) -> None:
    f = workdir / "owned"
    f.write_text("x\n")
    os.chown(f, 1234, 4321)
    api.docker("run", "-d", "--name", "rules", "busybox", "sleep", "1000")
    for tool in ("docker", "tomato"):
        assert _cp(api, tool, str(f), f"rules:/{tool}-default") == 0
        assert _cp(api, tool, f"-a {f}", f"rules:/{tool}-archive") == 0
        owners = api.docker("exec", "rules", "stat", "-c", "%u:%g", f"/{tool}-default",
                            f"/{tool}-archive").stdout.split()
        assert owners == ["0:0", "1234:4321"], (tool, owners)
    proc = _tomato(api, "cp", "rules:/nope", str(workdir))
    assert proc.returncode == 1
    assert proc.stderr == "tomato: Could not find the file /nope in container rules\n"
