"""Issue 13, item 6: kill -9 of the CLI at any moment of `run -d` (or of `rm`) leaves
nothing that `rm -f` and `container prune` cannot remove: no init waiting in its
cgroup, no mount, snapshot, lease, runtime state or directory without a record."""

from __future__ import annotations

import os
import random
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import TOMATO, Engine


def _kill_at_random(eng: Engine, args: list[str], rng: random.Random, env: dict[str, str],
                    most: float) -> None:
    proc = subprocess.Popen([TOMATO, *args], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0.0, most))
    proc.kill()
    proc.wait()


def _pieces(root: Path) -> dict[str, list[str]]:
    """Everything of the engine's that names a container id."""
    ids = re.compile(r"[0-9a-f]{64}")
    db = sqlite3.connect(root / "tomato.db")
    try:
        leases = [r[0] for r in db.execute("SELECT holder FROM image_leases")]
        records = [r[0] for r in db.execute("SELECT id FROM containers")]
    finally:
        db.close()
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if str(root) in line.split()[4]]
    return {
        "records": records,
        "dirs": [n for n in os.listdir(root / "containers") if ids.search(n)],
        "runtime": [n for n in os.listdir(root / "runtime") if ids.search(n)]
        if (root / "runtime").exists() else [],
        "leases": leases,
        "mounts": mounts,
    }


@pytest.mark.parametrize("served", [True, False], ids=["fork-server", "slow-path"])
def test_run_d_killed_anywhere_leaves_nothing_rm_cannot_remove(engine: Engine,
                                                               served: bool) -> None:
    env = engine.env() if served else {**engine.env(), "TOMATO_NO_FORKSERVER": "1"}
    rng = random.Random(6 if served else 7)
    for _ in range(15):  # bounded: 15 random moments of a whole `run -d`
        _kill_at_random(engine, ["run", "-d", "--network", "none", "busybox", "sleep",
                                 "300"], rng, env, 0.25)
    listed = engine.run("ps", "-aq", "--no-trunc").stdout.split()  # sweeps what has no record
    for cid in listed:
        done = engine.run("rm", "-f", cid, check=False)
        assert done.returncode == 0, done.stderr
    engine.run("container", "prune", "-f")
    left = _pieces(engine.root)
    assert not any(left.values()), left


def test_rm_killed_anywhere_is_finished_by_the_next(engine: Engine) -> None:
    rng = random.Random(8)
    cids = [engine.run("run", "-d", "--network", "none", "busybox", "sleep", "300")
            .stdout.strip() for _ in range(8)]
    for cid in cids:
        _kill_at_random(engine, ["rm", "-f", cid], rng, engine.env(), 0.1)
    for cid in cids:
        done = engine.run("rm", "-f", cid, check=False)
        assert done.returncode == 0 or "No such container" in done.stderr, done.stderr
    engine.run("ps", "-a")
    left = _pieces(engine.root)
    assert not any(left.values()), left


def test_rmi_is_not_held_by_a_killed_creates_lease(engine: Engine) -> None:
    """A create killed after it leased the image but before its record leaves a lease
    naming no container (what the kill loops above leave now and then, made here on
    purpose): `rmi` must not answer that the image is used by that container."""
    import json as jsonlib

    tarball = engine.root.parent / "lease-me.tar"
    src = engine.root.parent / "lease-me"
    src.mkdir(exist_ok=True)
    (src / "only-file").write_text("lease me\n")
    subprocess.run(["tar", "-C", str(src), "-cf", str(tarball), "."], check=True)
    engine.run("import", str(tarball), "lease-me:1")
    image_id = jsonlib.loads(engine.run("image", "inspect", "lease-me:1").stdout)[0]["Id"]
    ghost = "a" * 64
    db = sqlite3.connect(engine.root / "tomato.db")
    try:
        db.execute("INSERT INTO image_leases VALUES (?, ?)", (image_id, ghost))
        db.commit()
    finally:
        db.close()
    try:
        done = engine.run("rmi", "lease-me:1", check=False)
        assert done.returncode == 0, done.stderr
        assert ghost not in _pieces(engine.root)["leases"]
    finally:
        engine.run("rmi", "lease-me:1", check=False)
