"""Issue 13, item 5: a full disk never makes a container unkillable, nor the engine
unable to delete.  Reads work without writes; stop/kill signal whatever the record
says; rm -f frees space before it records; every failure is one line, never a
traceback; and once there is room again, the records tell the truth."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import TOMATO, Engine, engine_root_with_busybox, until


@pytest.fixture
def small_disk(storage: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs of the test's own under the session storage (unmounted after)."""
    path = storage / f"small-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=755", "tomato-small",
                    str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        path.rmdir()


class SlowEngine(Engine):
    """Every command a process of its own: no fork server holding the database open
    (which would keep sqlite's -shm file, and with it the easy case, around)."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "TOMATO_NO_FORKSERVER": "1"}


def _fill(disk: Path, name: str = "filler") -> Path:
    filler = disk / name
    with open(filler, "wb") as f:
        chunk = b"\0" * (1 << 20)
        for _ in range(64):  # bounded: the disk is 48 MiB
            try:
                f.write(chunk)
                f.flush()
            except OSError:
                break
    while True:  # the last few blocks
        try:
            with open(filler, "ab") as f:
                f.write(b"\0" * 4096)
        except OSError:
            break
    assert os.statvfs(disk).f_bfree == 0
    return filler


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _one_line(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 1, \
        proc.stderr


def test_a_full_disk_leaves_the_engine_in_control(small_disk: Path,
                                                  busybox_rootfs: Path) -> None:
    eng = SlowEngine(engine_root_with_busybox(small_disk / "root", busybox_rootfs))
    made = []
    try:
        for name, args in (("talker", ["sh", "-c", 'trap "exit 7" TERM; '
                                       "while :; do echo hi; sleep 0.1; done"]),
                           ("always", ["--restart", "always", "busybox", "sleep", "600"]),
                           ("doomed", ["busybox", "sleep", "600"])):
            image = [] if args[0] == "--restart" or args[0] == "busybox" else ["busybox"]
            eng.run("run", "-d", "--network", "none", "--name", name, *image, *args)
            made.append(name)
        pids = {n: eng.inspect(n)["State"]["Pid"] for n in made}
        assert all(_alive(p) for p in pids.values())
        filler = _fill(small_disk)

        # reads
        ps = eng.run("ps", check=False)
        assert ps.returncode == 0, ps.stderr
        assert all(n in ps.stdout for n in made)
        logs = eng.run("logs", "--tail", "1", "talker", check=False)
        assert logs.returncode == 0 and "hi" in logs.stdout, logs.stderr

        # stop and kill signal, whatever the record says; `always` stays down
        stop = eng.run("stop", "-t", "5", "talker", check=False)
        _one_line(stop)
        kill = eng.run("kill", "always", check=False)
        _one_line(kill)
        assert until(lambda: not _alive(pids["talker"]) and not _alive(pids["always"]))

        # rm -f frees before it records
        rm = eng.run("rm", "-f", "doomed", check=False)
        assert rm.returncode == 0, rm.stderr
        assert until(lambda: not _alive(pids["doomed"]))
        assert "doomed" not in eng.run("ps", "-a").stdout

        # what cannot be done says so in one line (rm -f gave space back: take it)
        refill = _fill(small_disk, "filler2")
        run = eng.run("run", "--rm", "--network", "none", "busybox", "sh", "-c", "true",
                      check=False)
        assert run.returncode == 125 and "no space left on device" in run.stderr, run.stderr
        _one_line(run)

        ps_all = eng.run("ps", "-a", check=False)
        assert ps_all.returncode == 0, ps_all.stderr
        rows = {line.split()[-1]: line for line in ps_all.stdout.splitlines()[1:]}
        assert "Exited (7)" in rows["talker"] and "Exited (137)" in rows["always"], rows

        # room again: the truth was kept, and everything goes
        filler.unlink()
        refill.unlink()
        rows = {line.split()[-1]: line for line in eng.run("ps", "-a").stdout.splitlines()[1:]}
        assert "Exited (7)" in rows["talker"] and "Exited (137)" in rows["always"], rows
        assert not any(_alive(p) for p in pids.values())  # `always` was never restarted
        eng.run("rm", "-f", "talker", "always")
        assert eng.run("ps", "-aq").stdout.strip() == ""
        assert not os.listdir(eng.root / "containers")
    finally:
        for name in made:
            subprocess.run([TOMATO, "rm", "-f", name], env=eng.env(), capture_output=True)
