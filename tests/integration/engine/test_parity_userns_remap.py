"""Issue 19: dockerd's ``--userns-remap`` as the engine's config (engine/userns_remap.py).

A user the fixture adds (helpers/rootless.py: its own /etc/subuid and /etc/subgid lines,
all removed after) is passed as USER: container root is the range's start on the host,
the image's owners land shifted in ROOT/UID.GID, ``--userns host`` opts out, and a user
without ranges is dockerd's one-line refusal.  ``default`` is not tested: it adds the
system user dockremap to the host, which no test may leave behind."""

from __future__ import annotations

import io
import os
import pwd
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.rootless import RootlessUser, make_user

from .conftest import TOMATO, Engine, until


@dataclass
class RemappedEngine(Engine):
    remap: str = ""

    def env(self) -> dict[str, str]:
        return {**super().env(), "TOMATO_USERNS_REMAP": self.remap}


@pytest.fixture(scope="module")
def remap_user(storage: Path) -> Iterator[RootlessUser]:
    with make_user(storage, "ur") as user:
        yield user


@pytest.fixture(scope="module")
def image_tar(storage: Path, busybox_rootfs: Path) -> Path:
    """busybox plus /www/page owned by 33:33 (www-data), as an image's file."""
    tarball = storage / f"remap-busybox-{uuid.uuid4().hex[:6]}.tar"
    subprocess.run(["tar", "-C", str(busybox_rootfs), "-cf", str(tarball), "."], check=True)
    with tarfile.open(tarball, "a") as tf:
        for name, kind in (("www", tarfile.DIRTYPE), ("www/page", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.uid, info.gid, info.mode = kind, 33, 33, 0o755
            tf.addfile(info)
    return tarball


@pytest.fixture(scope="module")
def remapped(storage: Path, remap_user: RootlessUser, image_tar: Path
             ) -> Iterator[RemappedEngine]:
    eng = RemappedEngine(storage / f"remap-{uuid.uuid4().hex[:8]}", remap_user.name)
    eng.run("import", str(image_tar), "busybox:latest")
    yield eng
    for cid in eng.ids():
        eng.run("rm", "-f", "-v", cid, check=False)
    eng.run("volume", "prune", "-f", check=False)
    _drop_default_bridge(eng.root / f"{remap_user.sub_start}.{remap_user.sub_start}")


def _drop_default_bridge(root: Path) -> None:
    """The remapped root's default bridge and nft table now, not at the session's end:
    the host's address pools are shared with every other session."""
    from tomato.engine.networks import Networks

    nets = Networks(root)
    subprocess.run(["ip", "link", "delete", nets.default_bridge], capture_output=True)
    subprocess.run(["nft", "delete", "table", "ip", nets.table], capture_output=True)


def test_root_inside_is_the_ranges_start_outside(remapped: RemappedEngine,
                                                  remap_user: RootlessUser) -> None:
    start = remap_user.sub_start
    out = remapped.run("run", "--name", "w", "busybox", "sh", "-c",
                       "id -u; cat /proc/self/uid_map; touch /made-by-root").stdout.split("\n")
    assert out[0] == "0"
    assert out[1].split() == ["0", str(start), "65536"]
    # the file root made is the range's start on the host: in the container's upper dir
    storage_root = remapped.root / f"{start}.{start}"
    made = list((storage_root / "snapshots").rglob("made-by-root"))
    assert len(made) == 1, "no upper dir holds the file"
    st = os.stat(made[0])
    assert (st.st_uid, st.st_gid) == (start, start)
    remapped.run("rm", "w")


def test_image_owners_are_shifted_on_disk(remapped: RemappedEngine,
                                          remap_user: RootlessUser) -> None:
    start = remap_user.sub_start
    inside = remapped.run("run", "--rm", "busybox", "stat", "-c", "%u:%g",
                          "/www/page").stdout.strip()
    assert inside == "33:33"
    pages = list((remapped.root / f"{start}.{start}" / "snapshots").rglob("www/page"))
    assert pages
    assert {(os.stat(p).st_uid, os.stat(p).st_gid) for p in pages} == {(start + 33,
                                                                         start + 33)}


def test_root_writes_a_volume_and_the_etc_files(remapped: RemappedEngine,
                                                remap_user: RootlessUser) -> None:
    vol = f"remapvol{uuid.uuid4().hex[:6]}"
    out = remapped.run("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c",
                       "echo hi > /data/f && echo 10.9.9.9 x >> /etc/hosts && "
                       "stat -c %u /data/f").stdout.strip()
    assert out == "0"
    where = remapped.run("volume", "inspect", "-f", "{{.Mountpoint}}", vol).stdout.strip()
    assert os.stat(Path(where) / "f").st_uid == remap_user.sub_start
    remapped.run("volume", "rm", vol)


def test_userns_host_opts_out(remapped: RemappedEngine) -> None:
    out = remapped.run("run", "--rm", "--userns", "host", "busybox",
                       "cat", "/proc/self/uid_map").stdout.split()
    assert out == ["0", "0", "4294967295"]


def test_dockerds_refusals(remapped: RemappedEngine) -> None:
    for flags, words in ((["--privileged"], "privileged mode is incompatible"),
                         (["--network", "host"], "cannot share the host's network"),
                         (["--pid", "host"], "cannot share the host PID")):
        proc = remapped.run("run", "--rm", *flags, "busybox", "true", check=False)
        assert proc.returncode == 125, (flags, proc.stderr)
        assert words in proc.stderr and "Traceback" not in proc.stderr
    remapped.run("run", "--rm", "--privileged", "--userns", "host", "busybox", "true")


def test_info_shows_userns(remapped: RemappedEngine, remap_user: RootlessUser) -> None:
    out = remapped.run("info").stdout
    assert "  userns\n" in out
    assert f"{remap_user.sub_start}.{remap_user.sub_start}" in out  # its root dir


def test_a_user_without_ranges_is_one_line(storage: Path) -> None:
    with make_user(storage, "un", subids=False) as user:
        env = {**os.environ, "TOMATO_ROOT": str(storage / "remap-none")}
        for how in (["--userns-remap", user.name], []):
            proc = subprocess.run([TOMATO, *how, "ps"], capture_output=True, text=True,
                                  env={**env, **({} if how else
                                                 {"TOMATO_USERNS_REMAP": user.name})},
                                  timeout=60, stdin=subprocess.DEVNULL)
            assert proc.returncode == 125
            assert proc.stderr == (f"tomato: no subordinate uid range for {user.name} in "
                                   f"/etc/subuid: run usermod --add-subuids 100000-165535 "
                                   f"{user.name}\n")
    proc = subprocess.run([TOMATO, "--userns-remap", "no-such-user-zz", "ps"],
                          capture_output=True, text=True, env=env, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert (proc.returncode, proc.stderr) == (125, "tomato: --userns-remap: no such user: "
                                                   "no-such-user-zz\n")


def test_nothing_left_behind(remapped: RemappedEngine, remap_user: RootlessUser) -> None:
    remapped.run("run", "-d", "--name", "bg", "busybox", "sleep", "60")
    assert remap_user.pids(), "the container's processes run as the range's ids"
    remapped.run("rm", "-f", "bg")
    assert not remap_user.pids()
    with open("/proc/self/mountinfo") as f:
        assert str(remapped.root) not in f.read()


def test_exec_stop_start_stay_remapped(remapped: RemappedEngine,
                                       remap_user: RootlessUser) -> None:
    remapped.run("run", "-d", "--name", "es", "busybox", "sleep", "60")
    try:
        maps = remapped.run("exec", "es", "cat", "/proc/self/uid_map").stdout.split()
        assert maps == ["0", str(remap_user.sub_start), "65536"]
        assert remapped.run("exec", "es", "id", "-u").stdout.strip() == "0"
        remapped.run("stop", "-t", "0", "es")
        remapped.run("start", "es")
        maps = remapped.run("exec", "es", "cat", "/proc/self/uid_map").stdout.split()
        assert maps == ["0", str(remap_user.sub_start), "65536"]
    finally:
        remapped.run("rm", "-f", "es")


DOCKER = "/usr/local/bin/docker"


def test_serve_userns_remap_through_the_docker_cli(remapped: RemappedEngine,
                                                   remap_user: RootlessUser) -> None:
    if not os.access(DOCKER, os.X_OK):
        pytest.skip("needs the docker CLI")
    sock = remapped.root / f"api-{uuid.uuid4().hex[:6]}.sock"
    env = {**os.environ, "TOMATO_ROOT": str(remapped.root)}
    env.pop("TOMATO_USERNS_REMAP", None)
    proc = subprocess.Popen([TOMATO, "serve", "--userns-remap", remap_user.name, "--host",
                             f"unix://{sock}"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    docker_env = {**os.environ, "DOCKER_HOST": f"unix://{sock}",
                  "DOCKER_CONFIG": str(remapped.root / "dockercfg")}

    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DOCKER, *args], env=docker_env, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
    try:
        assert until(lambda: docker("version").returncode == 0, timeout=20)
        options = docker("info", "--format", "{{json .SecurityOptions}}").stdout
        assert "name=userns" in options
        out = docker("run", "--rm", "busybox", "cat", "/proc/self/uid_map")
        assert out.stdout.split() == ["0", str(remap_user.sub_start), "65536"], out.stderr
    finally:
        proc.terminate()
        proc.wait(20)


def test_commit_and_export_hold_the_containers_ids(remapped: RemappedEngine,
                                                   remap_user: RootlessUser) -> None:
    remapped.run("run", "--name", "ce", "busybox", "sh", "-c",
                 "echo x > /made && chown 7:8 /made")
    try:
        tar = subprocess.run([TOMATO, "export", "ce"], env=remapped.env(), check=True,
                             capture_output=True, stdin=subprocess.DEVNULL).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            owners = {m.name.lstrip("./"): (m.uid, m.gid) for m in tf.getmembers()}
        assert owners["made"] == (7, 8) and owners["www/page"] == (33, 33)
        assert owners["bin"] == (0, 0)
        tag = f"remapcommit{uuid.uuid4().hex[:6]}"
        remapped.run("commit", "ce", tag)
        inside = remapped.run("run", "--rm", tag, "stat", "-c", "%u:%g", "/made").stdout
        assert inside.strip() == "7:8"
        remapped.run("rmi", tag)
    finally:
        remapped.run("rm", "-f", "ce")


@pytest.fixture
def no_dockremap_after(storage: Path) -> Iterator[None]:
    """`default` adds the system user dockremap and its /etc/subuid,/etc/subgid lines:
    run only where it does not exist yet, and take all of it away after."""
    from helpers.rootless import _edit_subids

    try:
        pwd.getpwnam("dockremap")
        pytest.skip("dockremap exists on this host already: `default` would not be ours to "
                    "clean up")
    except KeyError:
        pass
    try:
        yield
    finally:
        subprocess.run(["userdel", "dockremap"], check=False, capture_output=True)
        subprocess.run(["groupdel", "dockremap"], check=False, capture_output=True)
        for path in ("/etc/subuid", "/etc/subgid"):
            _edit_subids(path, remove_prefix="dockremap:")


def test_default_is_dockerds_dockremap(storage: Path, image_tar: Path,
                                       no_dockremap_after: None) -> None:
    eng = RemappedEngine(storage / f"remap-default-{uuid.uuid4().hex[:6]}", "default")
    eng.run("import", str(image_tar), "busybox:latest")
    start = next(int(line.split(":")[1]) for line in Path("/etc/subuid").read_text()
                 .splitlines() if line.startswith("dockremap:"))
    maps = eng.run("run", "--rm", "--network", "none", "busybox", "cat",
                   "/proc/self/uid_map").stdout.split()
    assert maps == ["0", str(start), "65536"]
    assert (eng.root / f"{start}.{start}").is_dir()


def test_cp_in_and_out_as_the_container_sees_it(remapped: RemappedEngine,
                                                remap_user: RootlessUser,
                                                workdir: Path) -> None:
    (workdir / "in.txt").write_text("hello\n")
    remapped.run("run", "-d", "--name", "cp", "busybox", "sleep", "60")
    try:
        remapped.run("cp", str(workdir / "in.txt"), "cp:/in.txt")
        inside = remapped.run("exec", "cp", "sh", "-c",
                              "stat -c %u:%g /in.txt && echo more >> /in.txt").stdout
        assert inside.strip() == "0:0"  # root's, and root may write it
        (workdir / "kept.txt").write_text("k\n")
        os.chown(workdir / "kept.txt", 7, 8)
        remapped.run("cp", "-a", str(workdir / "kept.txt"), "cp:/kept.txt")
        kept = remapped.run("exec", "cp", "stat", "-c", "%u:%g", "/kept.txt").stdout
        assert kept.strip() == "7:8"  # -a: the archive's ids, as the container sees them
        tar = subprocess.run([TOMATO, "cp", "cp:/www", "-"], env=remapped.env(), check=True,
                             capture_output=True, stdin=subprocess.DEVNULL).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            assert {(m.uid, m.gid) for m in tf.getmembers()} == {(33, 33)}
    finally:
        remapped.run("rm", "-f", "cp")


def test_build_run_and_copy_steps_are_remapped(remapped: RemappedEngine,
                                               workdir: Path) -> None:
    (workdir / "a.txt").write_text("a\n")
    (workdir / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN echo hi > /runfile && chown 5:6 /runfile && cat /proc/self/uid_map\n"
        "COPY a.txt /copied.txt\n"
        "RUN echo more >> /copied.txt\n")  # root of the step may write what COPY wrote
    tag = f"remapbuild{uuid.uuid4().hex[:6]}"
    remapped.run("build", "-q", "-t", tag, str(workdir))
    try:
        out = remapped.run("run", "--rm", tag, "stat", "-c", "%u:%g", "/copied.txt",
                           "/runfile", "/www/page").stdout.split()
        assert out == ["0:0", "5:6", "33:33"]
    finally:
        remapped.run("rmi", tag)


def test_an_owner_outside_the_range_is_refused(remapped: RemappedEngine,
                                               workdir: Path) -> None:
    tarball = workdir / "far.tar"
    with tarfile.open(tarball, "w") as tf:
        info = tarfile.TarInfo("far")
        info.uid = 70000
        tf.addfile(info)
    proc = remapped.run("import", str(tarball), "far:latest", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "far: owner 70000:0 cannot be mapped into the engine's user namespace" \
        in proc.stderr
    assert "far:latest" not in remapped.run("images").stdout
