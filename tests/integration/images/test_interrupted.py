"""Interrupted pulls, commits and loads (issue 13, item 7).

kill -9 at random moments, a registry that goes away, a full disk: afterwards a
pull resumes from the bytes already written (the registry's access log shows a
206 for the rest), ``system df`` shows what was left (the Pull Cache row) and
``image prune`` frees what it showed, and ``image prune`` + ``rmi`` bring the
root back to what a clean root holds.  The CLI runs as a user runs it, in its
own process group, so kill -9 takes the whole command.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.registry import Registry, d, f, make_tar, need, raw_push

BIN = [sys.executable, "-m", "tomato.cli.engine"]
KILLS = 8
BIG = 24 << 20  # the big layer's file: incompressible, ~0.3-1 s to download and unpack here
#: files that only grow with use (the databases, the event log): not leaks
BOOKKEEPING = (".db", ".db-wal", ".db-shm", "events.jsonl")
#: what the databases may have grown by over a test
DB_SLACK = 8 << 20


@dataclass(frozen=True)
class BigImage:
    registry: Registry
    name: str
    big_layer: str  # digest of the big layer's blob
    big_size: int   # its compressed size


@pytest.fixture(scope="module")
def big_image(storage: Path) -> Iterator[BigImage]:
    """A registry of our own (with its access log) serving an image of two layers."""
    need("docker-registry")
    with Registry(Path(tempfile.mkdtemp(prefix="registry-interrupted-", dir=storage)),
                  access_log=True) as reg:
        rng = random.Random(13)
        layers = [make_tar([d("data"), f("data/big", rng.randbytes(BIG))]),
                  make_tar([d("etc"), f("etc/small", rng.randbytes(512 << 10)),
                            *[f(f"etc/f{i}", b"x" * i) for i in range(200)]])]
        pushed = raw_push(reg, "big", "latest", layers)
        big = pushed["layers"][0]  # type: ignore[index]
        man = json.loads(pushed["manifest_bytes"])  # type: ignore[arg-type]
        yield BigImage(reg, f"{reg.addr}/big:latest", big, man["layers"][0]["size"])


# -- driving the CLI -------------------------------------------------------------------
def env(root: Path) -> dict[str, str]:
    e = {**os.environ, "TOMATO_ROOT": str(root), "TOMATO_CONFIG": str(root.parent / "cfg")}
    e.pop("TOMATO_DEBUG", None)
    return e


def tomato(root: Path, *args: str, check: bool = True,
           stdin: object = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([*BIN, *args], capture_output=True, text=True, env=env(root),
                       stdin=stdin, timeout=300)  # type: ignore[call-overload]
    if check:
        assert p.returncode == 0, f"tomato {' '.join(args)}: {p.stderr}"
    return p  # type: ignore[no-any-return]


def start(root: Path, *args: str, stdin: object = subprocess.DEVNULL) -> subprocess.Popen[str]:
    return subprocess.Popen([*BIN, *args], env=env(root), stdin=stdin,  # type: ignore[call-overload]
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill9(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=60)


def timed(root: Path, *args: str) -> float:
    t0 = time.monotonic()
    tomato(root, *args)
    return time.monotonic() - t0


def kill_at_random_moments(root: Path, duration: float, *args: str,
                           stdin_file: Path | None = None, seed: int = 7) -> list[int]:
    """Run ``tomato ARGS`` KILLS times, each kill -9'ed at a random moment of ``duration``;
    return the exit codes (-9, or 0 when it finished first)."""
    rng = random.Random(seed)
    codes = []
    for _ in range(KILLS):
        fh = open(stdin_file, "rb") if stdin_file else None  # noqa: SIM115
        try:
            p = start(root, *args, stdin=fh or subprocess.DEVNULL)
            time.sleep(rng.uniform(0.0, duration))
            kill9(p)
        finally:
            if fh:
                fh.close()
        codes.append(p.returncode)
    return codes


def df_row(root: Path, kind: str) -> dict[str, str]:
    rows = [json.loads(line) for line in
            tomato(root, "system", "df", "--format", "json").stdout.splitlines()]
    found = [r for r in rows if r["Type"] == kind]
    assert found, f"system df has no {kind} row: {rows}"
    return found[0]


def size_of(human: str) -> float:
    """docker's HumanSize back to bytes (3 or 4 significant digits; a "(NN%)" after it)."""
    human = human.split(" (")[0]
    units = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    for unit in sorted(units, key=len, reverse=True):
        if human.endswith(unit):
            return float(human[: -len(unit)]) * units[unit]
    raise AssertionError(f"not a size: {human!r}")


def reclaimed(out: str) -> float:
    line = [ln for ln in out.splitlines() if ln.startswith("Total reclaimed space:")][-1]
    return size_of(line.split(":", 1)[1].strip())


# -- measuring the root ----------------------------------------------------------------
def usage(root: Path) -> dict[str, int]:
    """Bytes on disk of every file under ``root`` (each inode once; mounts not crossed)."""
    out: dict[str, int] = {}
    dev = os.lstat(root).st_dev
    seen: set[int] = set()
    for top, dirs, files in os.walk(root):
        dirs[:] = [n for n in dirs if os.lstat(os.path.join(top, n)).st_dev == dev]
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                out[os.path.relpath(path, root)] = st.st_blocks * 512
    return out


def assert_clean(root: Path, baseline: dict[str, int]) -> None:
    """The root holds what the clean root held: nothing else takes space, and the
    databases grew by at most a small constant."""
    now = usage(root)
    book = lambda p: p.endswith(BOOKKEEPING)  # noqa: E731
    left = {p: n for p, n in now.items() if not book(p) and n > baseline.get(p, 0)}
    assert left == {}, f"left behind: {left}"
    grown = sum(n for p, n in now.items() if book(p)) - \
        sum(n for p, n in baseline.items() if book(p))
    assert grown <= DB_SLACK, f"databases grew by {grown} bytes"
    assert sum(now.values()) <= sum(baseline.values()) + DB_SLACK
    assert os.listdir(root / "content" / "ingest") == []
    dirs = {f"snapshots/snapshots/{sid}" for sid in os.listdir(root / "snapshots" / "snapshots")}
    assert dirs <= set(baseline), f"snapshot directories left: {dirs - set(baseline)}"


def clean_baseline(root: Path) -> dict[str, int]:
    tomato(root, "images")  # makes the root: its databases and directories
    return usage(root)


def partial(root: Path) -> int:
    """The largest file in the content store's ingest (a download in progress)."""
    best = 0
    for top, _dirs, files in os.walk(root / "content" / "ingest"):
        for name in files:
            try:
                best = max(best, os.path.getsize(os.path.join(top, name)))
            except OSError:
                pass
    return best


def kept(root: Path, digest: str) -> int:
    """The bytes of ``digest`` an interrupted download left in the ingest."""
    try:
        return os.path.getsize(root / "content" / "ingest" / digest[7:] / "data")
    except FileNotFoundError:
        return 0


def wait_for_partial(root: Path, proc: subprocess.Popen[str], at_least: int) -> None:
    deadline = time.monotonic() + 120
    while partial(root) < at_least:
        assert proc.poll() is None, f"pull ended first: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.002)


# -- pull ------------------------------------------------------------------------------
def test_killed_pull_resumes_where_it_stopped(big_image: BigImage, workdir: Path) -> None:
    root = workdir / "root"
    reg = big_image.registry
    p = start(root, "pull", "-q", big_image.name)
    wait_for_partial(root, p, 2 << 20)
    kill9(p)
    left = kept(root, big_image.big_layer)
    assert 0 < left < big_image.big_size, "no partial download of the big layer"
    row = df_row(root, "Pull Cache")  # shown, and reclaimable: its writer is dead
    assert size_of(row["Reclaimable"]) >= left * 0.99 and int(row["Active"]) == 0
    before = len(reg.blob_gets(big_image.big_layer))
    tomato(root, "pull", "-q", big_image.name)
    # the second pull asked only for the rest (the registry answered 206 with it)
    assert reg.blob_gets(big_image.big_layer)[before:] == [(206, big_image.big_size - left)]
    # resumed, and the layers the killed pull was unpacking removed: nothing left over
    assert os.listdir(root / "content" / "ingest") == []
    assert int(df_row(root, "Pull Cache")["TotalCount"]) == 0
    unpacked = list((root / "snapshots" / "snapshots").glob("*/fs/data/big"))
    assert [os.path.getsize(u) for u in unpacked] == [BIG]


def test_kill9_pull_at_random_moments(big_image: BigImage, workdir: Path) -> None:
    reg = big_image.registry
    probe = workdir / "probe"
    duration = timed(probe, "pull", "-q", big_image.name)  # a whole pull, start-up included
    root = workdir / "root"
    baseline = clean_baseline(root)
    codes = kill_at_random_moments(root, duration, "pull", "-q", big_image.name)
    assert codes.count(-signal.SIGKILL) >= KILLS // 2, codes

    # what the kills left is shown, all of it reclaimable (no live writer)
    row = df_row(root, "Pull Cache")
    shown = size_of(row["Reclaimable"])
    assert int(row["Active"]) == 0 and size_of(row["Size"]) == shown
    # a pull works, and resumes the big layer's download if a kill left part of it
    left = kept(root, big_image.big_layer)
    before = len(reg.blob_gets(big_image.big_layer))
    tomato(root, "pull", "-q", big_image.name)
    gets = reg.blob_gets(big_image.big_layer)[before:]
    if left:  # (all of it kept: nothing to ask for)
        assert gets == ([(206, big_image.big_size - left)] if left < big_image.big_size
                        else []), (left, gets)
    assert os.listdir(root / "content" / "ingest") == []
    # prune frees what system df shows (3 significant digits, and a page per file)
    row = df_row(root, "Pull Cache")
    shown = size_of(row["Reclaimable"])
    on_disk = sum(usage(root).values())
    out = tomato(root, "image", "prune", "-f").stdout
    freed = on_disk - sum(usage(root).values())
    assert abs(freed - shown) <= 0.01 * shown + (64 << 10), (freed, shown)
    assert abs(reclaimed(out) - freed) <= 0.01 * freed + (64 << 10), (out, freed)
    assert int(df_row(root, "Pull Cache")["TotalCount"]) == 0
    # and the image goes with nothing left of it
    tomato(root, "rmi", big_image.name)
    tomato(root, "image", "prune", "-f")
    assert_clean(root, baseline)


def test_prune_never_takes_a_live_pull(big_image: BigImage, workdir: Path) -> None:
    root = workdir / "root"
    p = start(root, "pull", "-q", big_image.name)
    prune = None
    try:
        wait_for_partial(root, p, 1 << 20)
        os.killpg(p.pid, signal.SIGSTOP)  # a live pull, held in the middle of its download
        row = df_row(root, "Pull Cache")  # its data: shown, active, not reclaimable
        assert int(row["Active"]) >= 1 and size_of(row["Reclaimable"]) < size_of(row["Size"])
        prune = start(root, "image", "prune", "-f")  # waits for the pull: never takes its data
        with pytest.raises(subprocess.TimeoutExpired):
            prune.wait(timeout=1)
        os.killpg(p.pid, signal.SIGCONT)
        assert p.wait(timeout=120) == 0, p.stderr.read() if p.stderr else ""
        assert prune.wait(timeout=120) == 0
    finally:
        for proc in (p, prune):
            if proc is not None and proc.poll() is None:
                kill9(proc)
    ids = tomato(root, "images", "-q").stdout.split()
    assert len(ids) == 1
    tomato(root, "save", "-o", str(workdir / "out.tar"), big_image.name)  # every blob there


def test_registry_gone_mid_pull(big_image: BigImage, workdir: Path) -> None:
    root = workdir / "root"
    reg = big_image.registry
    p = start(root, "pull", "-q", big_image.name)
    try:
        wait_for_partial(root, p, 2 << 20)
        os.killpg(p.pid, signal.SIGSTOP)  # (so the download cannot end first)
        assert reg.proc is not None
        reg.proc.kill()  # the registry drops the connection, and stays away
        reg.proc.wait()
        os.killpg(p.pid, signal.SIGCONT)
        _, err = p.communicate(timeout=120)
    finally:
        if reg.proc is None or reg.proc.poll() is not None:
            reg.stop()
            reg.start()
        if p.poll() is None:
            kill9(p)
    assert p.returncode == 1
    assert err.startswith("tomato: ") and err.count("\n") == 1, err
    assert "registry" in err or "download" in err
    assert tomato(root, "images", "-q").stdout == ""  # nothing half-committed
    left = kept(root, big_image.big_layer)
    assert left > 0
    before = len(reg.blob_gets(big_image.big_layer))
    tomato(root, "pull", "-q", big_image.name)
    assert reg.blob_gets(big_image.big_layer)[before:] == [(206, big_image.big_size - left)]


def test_pull_on_a_full_disk(big_image: BigImage, workdir: Path) -> None:
    small = workdir / "small"
    small.mkdir()
    # room for the small layer and part of the big one, downloaded and unpacked at once
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=755", "tomato-full",
                    str(small)], check=True)
    try:
        root = small / "root"
        baseline = clean_baseline(root)
        p = tomato(root, "pull", "-q", big_image.name, check=False)
        assert p.returncode == 1, p.stderr
        assert p.stderr == f"tomato: no space left on device while pulling {big_image.name}\n"
        # nothing half-committed; reads work on the full disk
        assert tomato(root, "images", "-q").stdout == ""
        row = df_row(root, "Pull Cache")
        assert int(row["Active"]) == 0
        left = kept(root, big_image.big_layer)
        # space comes back: the pull goes on from what it had
        subprocess.run(["mount", "-o", "remount,size=256m", str(small)], check=True)
        reg = big_image.registry
        before = len(reg.blob_gets(big_image.big_layer))
        tomato(root, "pull", "-q", big_image.name)
        gets = reg.blob_gets(big_image.big_layer)[before:]
        if left:
            assert gets == ([(206, big_image.big_size - left)] if left < big_image.big_size
                            else []), (left, gets)
        tomato(root, "rmi", big_image.name)
        tomato(root, "image", "prune", "-f")
        assert_clean(root, baseline)
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


# -- commit and load ---------------------------------------------------------------------
@pytest.fixture
def busybox_root(workdir: Path, busybox_rootfs: Path) -> Path:
    root = workdir / "root"
    tarball = workdir / "busybox.tar"
    subprocess.run(["tar", "-C", str(busybox_rootfs), "-cf", str(tarball), "."], check=True)
    tomato(root, "import", str(tarball), "busybox:latest")
    tarball.unlink()
    return root


def test_kill9_commit_at_random_moments(busybox_root: Path) -> None:
    root = busybox_root
    tomato(root, "run", "--rm", "--network", "none", "busybox", "true")  # (caches made at once)
    baseline = usage(root)
    tomato(root, "run", "--name", "w", "--network", "none", "busybox", "sh", "-c",
           "head -c 16000000 /dev/urandom > /big && mkdir -p /data && echo hi > /data/x")
    try:
        duration = timed(root, "commit", "w", "probe:1")
        tomato(root, "rmi", "probe:1")
        codes = kill_at_random_moments(root, duration, "commit", "w", "killed:1")
        assert codes.count(-signal.SIGKILL) >= KILLS // 2, codes
        assert int(df_row(root, "Pull Cache")["Active"]) == 0
        tomato(root, "commit", "w", "done:1")
        out = tomato(root, "run", "--rm", "--network", "none", "done:1", "cat", "/data/x")
        assert out.stdout == "hi\n"
    finally:
        tomato(root, "rm", "-f", "w", check=False)
    for name in ("done:1", "killed:1"):
        tomato(root, "rmi", name, check=False)
    tomato(root, "image", "prune", "-f")
    assert int(df_row(root, "Pull Cache")["TotalCount"]) == 0
    assert_clean(root, baseline)


def test_kill9_load_at_random_moments(big_image: BigImage, workdir: Path) -> None:
    source = workdir / "source"
    tomato(source, "pull", "-q", big_image.name)
    archive = workdir / "big.tar"
    tomato(source, "save", "-o", str(archive), big_image.name)
    with tarfile.open(archive) as tf:
        assert "manifest.json" in tf.getnames()
    root = workdir / "root"
    baseline = clean_baseline(root)
    duration = timed(workdir / "probe", "load", "-i", str(archive))
    codes = kill_at_random_moments(root, duration, "load", "-i", str(archive))
    codes += kill_at_random_moments(root, duration, "load", stdin_file=archive, seed=8)
    assert codes.count(-signal.SIGKILL) >= KILLS, codes
    assert int(df_row(root, "Pull Cache")["Active"]) == 0
    with open(archive, "rb") as fh:
        out = tomato(root, "load", stdin=fh).stdout
    assert out == f"Loaded image: {big_image.name}\n"
    for image in tomato(root, "images", "-q").stdout.split():
        tomato(root, "rmi", "-f", image)
    tomato(root, "image", "prune", "-f")
    assert_clean(root, baseline)
