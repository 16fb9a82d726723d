"""Paths inside a container are opened without ever leaving its root, whatever the
container does meanwhile (CVE-2018-15664's class): cp both ways, export, diff and
commit --pause=false against a container that swaps a directory of the path for a
symlink to the host's / (or to a host directory) in a loop; hostile tar streams."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

from .conftest import TOMATO, Engine, until

#: The container's loop: /w is a directory, then briefly a symlink to "/" (which, if
#: the engine followed it on the host, is the host's root).
SWAP = "while :; do mv /w /w.r; ln -s / /w; rm /w; mv /w.r /w; done"
HOST_SECRET = "host secret\n"
FILES = 30  # files in the copied directory: each one is a chance for a path-based copy


def _marker(workdir: Path) -> Path:
    """A host directory the container can aim at: files named as the container's,
    holding the host's secret."""
    marker = workdir / "marker"
    marker.mkdir()
    for i in range(FILES):
        (marker / f"f{i}").write_text(HOST_SECRET)
    return marker


def _racer(engine: Engine, marker: Path, swap: str = SWAP) -> str:
    """A container whose /w/<marker> (and /<marker>) hold files f0.. and whose /w swaps."""
    inner = str(marker).lstrip("/")
    engine.run("run", "-d", "--name", "race", "busybox", "sh", "-c",
               f"mkdir -p /w/{inner} /{inner}; for i in $(seq 0 {FILES - 1}); do "
               f"echo container > /w/{inner}/f$i; echo container > /{inner}/f$i; done; "
               f"touch /ready; {swap}")
    assert until(lambda: engine.run("exec", "race", "test", "-e", "/ready",
                                    check=False).returncode == 0)
    return inner


def _host_untouched(marker: Path) -> None:
    assert sorted(p.name for p in marker.iterdir()) == sorted(f"f{i}" for i in range(FILES))
    assert all(p.read_text() == HOST_SECRET for p in marker.iterdir())


def test_cp_out_never_reads_the_host(engine: Engine, workdir: Path) -> None:
    marker = _marker(workdir)
    inner = _racer(engine, marker)
    out = workdir / "out"
    out.mkdir()
    copied = 0
    failures: list[tuple[int, str]] = []
    for i in range(300):
        dest = out / f"got-{i}"
        form = i % 3
        if form == 0:  # a directory to a new host directory
            proc = engine.run("cp", f"race:/w/{inner}", str(dest), check=False)
            got = {p.name: p.read_text() for p in dest.iterdir()} if dest.exists() else {}
        elif form == 1:  # one file
            proc = engine.run("cp", f"race:/w/{inner}/f{i % FILES}", str(dest), check=False)
            got = {dest.name: dest.read_text()} if dest.exists() else {}
        else:  # a directory as a tar stream on stdout
            raw = subprocess.run([TOMATO, "cp", f"race:/w/{inner}/.", "-"],
                                 capture_output=True, env=engine.env(), timeout=60)
            proc = subprocess.CompletedProcess(raw.args, raw.returncode, "",
                                               raw.stderr.decode())
            got = {}
            if raw.returncode == 0:
                with tarfile.open(fileobj=io.BytesIO(raw.stdout)) as tf:
                    got = {m.name: tf.extractfile(m).read().decode()  # type: ignore[union-attr]
                           for m in tf if m.isreg()}
        assert all(text == "container\n" for text in got.values()), \
            f"copy {i} read the host's files: {got}"
        if proc.returncode != 0:  # /w was away (being renamed) at that moment: fine
            failures.append((proc.returncode, proc.stderr))
            continue
        assert got
        copied += 1
    _host_untouched(marker)
    assert copied > 0
    # the failures were only that, told as docker tells it (exit 1)
    odd = [(code, err) for code, err in failures
           if code != 1 or not err.startswith("tomato: Could not find the file /w/")]
    assert odd == []


def test_cp_in_never_writes_the_host(engine: Engine, workdir: Path) -> None:
    marker = _marker(workdir)
    inner = _racer(engine, marker)
    src = workdir / "from-host"
    src.mkdir()
    for k in range(FILES):
        (src / f"in-{k}").write_text("from the host\n")
    written = 0
    failures: list[tuple[int, str]] = []
    for i in range(100):
        if i % 2:  # a tar stream of FILES new files
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tf:
                for k in range(FILES):
                    info = tarfile.TarInfo(f"in-{i}-{k}")
                    info.size = len(b"from the tar\n")
                    tf.addfile(info, io.BytesIO(b"from the tar\n"))
            proc = subprocess.run([TOMATO, "cp", "-", f"race:/w/{inner}"],
                                  input=buf.getvalue(), capture_output=True,
                                  env=engine.env(), timeout=60)
            code, err = proc.returncode, proc.stderr.decode()
        else:  # a host directory's contents
            res = engine.run("cp", f"{src}/.", f"race:/w/{inner}", check=False)
            code, err = res.returncode, res.stderr
        if code == 0:
            written += 1
        else:
            failures.append((code, err))
        _host_untouched(marker)
    assert written > 0
    odd = [(code, err) for code, err in failures
           if code != 1 or not err.startswith("tomato: Could not find the file /w/")]
    assert odd == []
    # what was written is in the container, and no temporary file was left anywhere
    listing = engine.run("exec", "race", "sh", "-c",
                         f"ls /w/{inner} /w.r/{inner} /{inner} 2>/dev/null; true").stdout
    assert "in-" in listing and ".tomato-cp-" not in listing


def _dir_racer(engine: Engine, marker: Path) -> None:
    """A container whose /w holds files named as the marker's and becomes, in a loop,
    a symlink to the host's marker directory itself (not to /: a path-based walk that
    followed / would read the whole host)."""
    engine.run("run", "-d", "--name", "race", "busybox", "sh", "-c",
               f"mkdir -p /w; for i in $(seq 0 {FILES - 1}); do echo container > /w/f$i; "
               f"done; touch /ready; while :; do mv /w /w.r; ln -s {marker} /w; rm /w; "
               "mv /w.r /w; done")
    assert until(lambda: engine.run("exec", "race", "test", "-e", "/ready",
                                    check=False).returncode == 0)


def test_export_never_walks_into_the_host(engine: Engine, workdir: Path) -> None:
    marker = _marker(workdir)
    _dir_racer(engine, marker)
    failures = []
    for _ in range(20):
        proc = subprocess.run([TOMATO, "export", "race"], capture_output=True,
                              env=engine.env(), timeout=60)
        if proc.returncode != 0:
            failures.append(proc.stderr)
            continue
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tf:
            for m in tf:
                if m.isreg() and m.name.startswith(("w/", "w.r/")):
                    data = tf.extractfile(m).read()  # type: ignore[union-attr]
                    assert data == b"container\n", f"export read the host's {m.name}"
                if m.name == "w" and m.issym():
                    assert m.linkname == str(marker)  # the link itself, not followed
    _host_untouched(marker)
    assert failures == []  # a tree changing under the walk is no error either


def test_diff_and_commit_never_follow_a_planted_symlink(engine: Engine,
                                                        workdir: Path) -> None:
    marker = _marker(workdir)
    for i in range(FILES):  # names only the host has
        (marker / f"host-only-{i}").write_text(HOST_SECRET)
    _dir_racer(engine, marker)
    failures = []
    for _ in range(60):
        proc = engine.run("diff", "race", check=False)
        assert "host-only" not in proc.stdout, proc.stdout
        if proc.returncode != 0:
            failures.append(proc.stderr)
    for i in range(5):
        proc = engine.run("commit", "--pause=false", "race", f"raced:{i}", check=False)
        if proc.returncode != 0:
            failures.append(proc.stderr)
            continue
        found = engine.run("run", "--rm", f"raced:{i}", "sh", "-c",
                           "find / -xdev -name 'host-only*'; "
                           "cat /w/f* /w.r/f* 2>/dev/null; true").stdout
        assert "host-only" not in found and "secret" not in found, \
            f"commit {i} took the host's files"
        engine.run("rmi", f"raced:{i}")
    assert len(list(marker.iterdir())) == 2 * FILES
    assert failures == []  # entries vanishing under the walk are no error either


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


def test_hostile_tar_streams_stay_in_the_destination(engine: Engine, workdir: Path) -> None:
    engine.run("run", "-d", "--name", "box", "busybox", "sleep", "600")
    engine.run("exec", "box", "mkdir", "-p", "/dst/in")
    host = workdir / "host-target"
    host.mkdir()

    def put(data: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([TOMATO, "cp", "-", "box:/dst/in"], input=data,
                              capture_output=True, env=engine.env(), timeout=60)

    # ".." climbing out: refused, nothing written
    proc = put(_tar((_entry("../../escaped"), b"x")))
    assert proc.returncode == 1 and b"outside of the destination" in proc.stderr
    # an absolute name is taken inside the destination (Docker's clamping)
    assert put(_tar((_entry(f"/{str(host).lstrip('/')}/abs"), b"abs\n"))).returncode == 0
    assert engine.run("exec", "box", "cat", f"/dst/in{host}/abs").stdout == "abs\n"
    # a symlink aimed at the host's directory, then a file "through" it: the link is
    # written as a link, the file through it refused
    proc = put(_tar((_entry("l", tarfile.SYMTYPE, str(host)), None),
                    (_entry("l/owned"), b"owned\n")))
    assert proc.returncode == 1 and b"not a directory" in proc.stderr
    assert engine.run("exec", "box", "readlink", "/dst/in/l").stdout.strip() == str(host)
    # a hard link to something that is not an earlier entry of the archive
    proc = put(_tar((_entry("hl", tarfile.LNKTYPE, "/etc/passwd"), None)))
    assert proc.returncode == 1 and b"not an earlier entry" in proc.stderr
    # a hard link to an earlier entry works
    assert put(_tar((_entry("a"), b"shared\n"),
                    (_entry("b", tarfile.LNKTYPE, "a"), None))).returncode == 0
    assert engine.run("exec", "box", "sh", "-c",
                      "stat -c %h /dst/in/b; cat /dst/in/b").stdout == "2\nshared\n"
    # garbage is one clean line
    proc = put(b"this is not a tar archive" * 40)
    assert proc.returncode == 1 and proc.stderr.startswith(b"tomato: ")
    assert b"Traceback" not in proc.stderr
    assert list(host.iterdir()) == []
    left = engine.run("exec", "box", "find", "/dst", "-name", ".tomato-cp-*").stdout
    assert left == ""


def test_hostile_container_tree_stays_in_the_host_destination(engine: Engine,
                                                               workdir: Path) -> None:
    """What a container holds is hostile too when copied out: a symlink comes out as
    a symlink (never followed on the host), a device node is refused, setuid bits
    are dropped (the copy is the caller's now), and a failure leaves no temp file."""
    engine.run("run", "-d", "--name", "box", "busybox", "sleep", "600")
    engine.run("exec", "box", "sh", "-c",
               "mkdir -p /t/d && echo data > /t/d/f && ln -s / /t/root && "
               "ln -s ../../../../etc /t/d/up && cp /bin/busybox /t/suid && "
               "chmod 4755 /t/suid")
    out = workdir / "out"
    out.mkdir()
    engine.run("cp", "box:/t", str(out))
    assert os.readlink(out / "t" / "root") == "/"
    assert os.readlink(out / "t" / "d" / "up") == "../../../../etc"
    assert (out / "t" / "d" / "f").read_text() == "data\n"
    assert not (out / "t" / "suid").stat().st_mode & 0o6000
    engine.run("exec", "box", "mknod", "/t/d/disk", "b", "8", "0")
    proc = engine.run("cp", "box:/t/d", str(workdir / "again"), check=False)
    assert proc.returncode == 1 and "device node" in proc.stderr
    assert not any(p.name.startswith(".tomato-cp-") for p in (workdir / "again").iterdir())


def test_exec_user_lookup_never_opens_a_planted_fifo(engine: Engine) -> None:
    """`exec -u NAME` reads the running container's /etc/passwd from the host: a FIFO
    there (or a device node: the host's device) is refused, never opened."""
    engine.run("run", "-d", "--name", "box", "busybox", "sleep", "600")
    engine.run("exec", "box", "sh", "-c", "echo 'app:x:4242:4343::/:/bin/sh' >> /etc/passwd; "
               "mv /etc/passwd /etc/passwd.real && ln -s passwd.real /etc/passwd")
    # a symlink inside the container is followed inside it
    assert engine.run("exec", "-u", "app", "box", "id", "-u").stdout == "4242\n"
    engine.run("exec", "box", "sh", "-c", "rm /etc/passwd && mkfifo /etc/passwd")
    # (HOME given: the runtime reads passwd for it inside the container, as runc does,
    # where a FIFO only blocks the container's own exec)
    proc = engine.run("exec", "-e", "HOME=/", "-u", "app", "box", "id", "-u", check=False,
                      timeout=30)
    assert proc.returncode != 0 and "app" in proc.stderr
    uid = engine.run("exec", "-e", "HOME=/", "-u", "4242", "box", "grep", "^Uid:",
                     "/proc/self/status", timeout=30).stdout
    assert uid.split()[1] == "4242"


def test_cp_volumes_binds_and_read_only(engine: Engine, workdir: Path) -> None:
    """Paths under a volume or a bind go to its source, resolved inside that source (an
    absolute symlink in a volume names the volume's root, never the host's)."""
    bind = workdir / "bind"
    bind.mkdir()
    hostfile = workdir / "hostfile"
    hostfile.write_text("bound file\n")
    engine.run("run", "-d", "--name", "box", "-v", "cpvol:/data", "-v", f"{bind}:/b:ro",
               "-v", f"{hostfile}:/etc/bound", "busybox", "sleep", "600")
    src = workdir / "f"
    src.write_text("into the volume\n")
    engine.run("cp", str(src), "box:/data/")
    assert engine.run("exec", "box", "cat", "/data/f").stdout == "into the volume\n"
    engine.run("exec", "box", "sh", "-c", "ln -s / /data/root && mkdir -p /data/etc && "
               "echo volume > /data/etc/passwd")
    out = workdir / "out"
    engine.run("cp", "box:/data/root/etc/passwd", str(out))
    assert out.read_text() == "volume\n"  # /data/root is the volume's root
    engine.run("cp", "box:/etc/bound", str(workdir / "bound-copy"))
    assert (workdir / "bound-copy").read_text() == "bound file\n"
    proc = engine.run("cp", str(src), "box:/etc/bound", check=False)
    assert proc.returncode == 1 and "mounted into the container" in proc.stderr
    proc = engine.run("cp", str(src), "box:/b/", check=False)
    assert proc.returncode == 1 and proc.stderr == \
        "tomato: mounted volume is marked read-only: /b\n"
    assert list(bind.iterdir()) == []
    engine.run("rm", "-f", "-v", "box")
    engine.run("volume", "rm", "cpvol", check=False)
    engine.run("run", "-d", "--name", "ro", "--read-only", "busybox", "sleep", "600")
    proc = engine.run("cp", str(src), "ro:/tmp/", check=False)
    assert proc.returncode == 1 and proc.stderr == \
        "tomato: container rootfs is marked read-only\n"
