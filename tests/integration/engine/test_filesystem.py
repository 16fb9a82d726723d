"""diff, commit, cp, export, top, stats, update, attach."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from pathlib import Path

from .conftest import TOMATO, Engine


def test_diff_and_commit_round_trip(engine: Engine) -> None:
    engine.run("run", "--name", "changer", "busybox", "sh", "-c",
               "echo new > /etc/newfile; rm /etc/group; mkdir -p /opt/d; echo y > /opt/d/y")
    lines = engine.run("diff", "changer").stdout.splitlines()
    assert "A /etc/newfile" in lines and "D /etc/group" in lines and "C /etc" in lines
    assert "A /opt/d/y" in lines
    assert not any("hosts" in line or "resolv.conf" in line for line in lines)
    image_id = engine.run("commit", "-m", "note", "-c", 'CMD ["cat", "/etc/newfile"]',
                          "changer", "committed:v1").stdout.strip()
    assert image_id.startswith("sha256:")
    assert engine.run("run", "--rm", "committed:v1").stdout == "new\n"
    gone = engine.run("run", "--rm", "committed:v1", "ls", "/etc/group", check=False)
    assert gone.returncode != 0  # the deletion stays deleted
    assert engine.run("run", "--rm", "committed:v1", "cat", "/opt/d/y").stdout == "y\n"
    history = engine.run("history", "committed:v1").stdout
    assert "note" in history
    engine.run("rmi", "committed:v1", check=False)


def test_cp_both_ways(engine: Engine, workdir: Path) -> None:
    engine.run("run", "-d", "--name", "cpbox", "busybox", "sleep", "60")
    src = workdir / "hello.txt"
    src.write_text("from the host\n")
    engine.run("cp", str(src), "cpbox:/tmp/")
    assert engine.run("exec", "cpbox", "cat", "/tmp/hello.txt").stdout == "from the host\n"
    engine.run("exec", "cpbox", "sh", "-c", "mkdir -p /out/sub && echo inner > /out/sub/f")
    dest = workdir / "got"
    dest.mkdir()
    engine.run("cp", "cpbox:/out", str(dest))
    assert (dest / "out" / "sub" / "f").read_text() == "inner\n"
    # A symlink inside the container pointing at / must not lead a copy onto the host.
    engine.run("exec", "cpbox", "ln", "-s", "/", "/escape")
    engine.run("cp", str(src), "cpbox:/escape/tmp/")
    assert not Path("/tmp/hello.txt").exists() or Path("/tmp/hello.txt").read_text() != \
        "from the host\n"
    missing = engine.run("cp", "cpbox:/nope", str(dest), check=False)
    assert missing.returncode != 0 and "Could not find" in missing.stderr


def test_export_is_the_merged_rootfs(engine: Engine) -> None:
    engine.run("run", "--name", "exp", "busybox", "sh", "-c", "echo hi > /marker")
    proc = subprocess.run([TOMATO, "export", "exp"], capture_output=True, env=engine.env(),
                          timeout=60)
    assert proc.returncode == 0
    names = tarfile.open(fileobj=io.BytesIO(proc.stdout)).getnames()
    assert "marker" in names and "bin/busybox" in names


def test_top_stats_update(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "busy", "busybox", "sh", "-c", "sleep 60 & wait")
    top = engine.run("top", "busy").stdout.splitlines()
    assert "PID" in top[0] and len(top) == 3 and any("sleep 60" in line for line in top)
    stats = engine.run("stats", "--no-stream", "--format", "json", "busy").stdout
    row = json.loads(stats.splitlines()[0])
    assert row["Name"] == "busy" and int(row["PIDs"]) == 2
    engine.run("update", "--memory", "32m", "--pids-limit", "10", "busy")
    info = json.loads(engine.run("inspect", "busy").stdout)[0]
    assert info["HostConfig"]["Memory"] == 32 << 20 and info["HostConfig"]["PidsLimit"] == 10
    pid = info["State"]["Pid"]
    cg = Path(f"/proc/{pid}/cgroup").read_text()
    mem_path = next(line.split(":")[2] for line in cg.splitlines() if ":memory:" in line)
    assert Path(f"/sys/fs/cgroup/memory{mem_path}/memory.limit_in_bytes").read_text().strip() \
        == str(32 << 20)


def test_attach_sees_new_output(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "talker", "busybox", "sh", "-c",
               "sleep 0.5; echo late line; sleep 0.3")
    proc = engine.run("attach", "talker", timeout=30)
    assert "late line" in proc.stdout


def test_logs_follow_until_exit(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "follow", "busybox", "sh", "-c",
               "for i in 1 2 3; do echo line $i; sleep 0.2; done")
    t0 = time.monotonic()
    out = engine.run("logs", "-f", "follow", timeout=30).stdout
    assert out == "line 1\nline 2\nline 3\n"
    assert time.monotonic() - t0 < 20
