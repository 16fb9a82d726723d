"""The rest of the command surface: restart, wait, pause, rm -v, ps filters and
formats, logs --since, exec -d and -it, stop timeouts, signals from the foreground."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pexpect

from .conftest import TOMATO, Engine, until


def _info(engine: Engine, ref: str) -> dict:  # type: ignore[type-arg]
    return json.loads(engine.run("inspect", ref).stdout)[0]


def test_restart_wait_pause(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "cycle", "--network", "none", "busybox", "sleep", "60")
    first = _info(engine, "cycle")["State"]["Pid"]
    engine.run("restart", "-t", "0", "cycle")
    again = _info(engine, "cycle")
    assert again["State"]["Status"] == "running" and again["State"]["Pid"] != first
    engine.run("pause", "cycle")
    assert _info(engine, "cycle")["State"]["Status"] == "paused"
    assert "Paused" in engine.run("ps").stdout
    engine.run("unpause", "cycle")
    assert _info(engine, "cycle")["State"]["Status"] == "running"
    waiter = subprocess.Popen([TOMATO, "wait", "cycle"], env=engine.env(), text=True,
                              stdout=subprocess.PIPE)
    time.sleep(0.3)
    assert waiter.poll() is None  # wait blocks while it runs
    engine.run("kill", "cycle")  # SIGKILL: a pid-1 `sleep` has no TERM handler to run
    try:
        out, _ = waiter.communicate(timeout=20)
    finally:
        waiter.kill()
    assert out.strip() == "137"


def test_stop_timeout_option_is_the_default_grace(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "graceful", "--network", "none", "--stop-timeout", "1",
               "busybox", "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done")
    t0 = time.monotonic()
    engine.run("stop", "graceful")
    elapsed = time.monotonic() - t0
    assert 1.0 <= elapsed < 8 and _info(engine, "graceful")["State"]["ExitCode"] == 137


def test_ps_filters_and_formats(engine: Engine) -> None:
    engine.run("run", "--name", "done3", "--network", "none", "busybox", "sh", "-c", "exit 3",
               check=False)
    engine.run("run", "-d", "--name", "alive", "--network", "none", "busybox", "sleep", "60")
    assert engine.run("ps", "--format", "{{.Names}}").stdout.split() == ["alive"]
    assert engine.run("ps", "-a", "--filter", "exited=3", "--format",
                      "{{.Names}}").stdout.split() == ["done3"]
    assert engine.run("ps", "-a", "--filter", "status=running", "-q").stdout.strip() == \
        _info(engine, "alive")["Id"][:12]
    rows = [json.loads(line) for line in
            engine.run("ps", "-a", "--format", "json").stdout.splitlines()]
    assert {r["Names"] for r in rows} == {"done3", "alive"}
    assert engine.run("ps", "-a", "-n", "1", "--format", "{{.Names}}").stdout.split() == \
        ["alive"]


def test_rm_v_removes_anonymous_volumes(engine: Engine) -> None:
    engine.run("run", "--name", "anon", "--network", "none", "-v", "/data", "busybox", "sh",
               "-c", "echo x > /data/f")
    before = set(engine.run("volume", "ls", "-q").stdout.split())
    assert before
    engine.run("rm", "-v", "anon")
    after = set(engine.run("volume", "ls", "-q").stdout.split())
    assert len(before - after) == 1


def test_logs_since_anduntil(engine: Engine) -> None:
    engine.run("run", "--name", "timed", "--network", "none", "busybox", "sh", "-c",
               "echo early; sleep 1.2; echo late")
    stamped = engine.run("logs", "-t", "timed").stdout.splitlines()
    late_ts = stamped[1].split()[0]
    assert engine.run("logs", "--since", late_ts, "timed").stdout == "late\n"
    assert engine.run("logs", "--until", stamped[0].split()[0], "timed").stdout == "early\n"


def test_exec_detached_and_interactive(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "host", "--network", "none", "busybox", "sleep", "60")
    engine.run("exec", "-d", "host", "sh", "-c", "echo bg > /tmp/marker")
    assert until(lambda: engine.run("exec", "host", "cat", "/tmp/marker",
                                     check=False).stdout == "bg\n")
    child = pexpect.spawn(TOMATO, ["exec", "-it", "host", "sh"], env=engine.env(), timeout=20)
    try:
        child.expect("# ")
        child.sendline("echo $((3*7)); exit 6")
        child.expect("21")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 6


def test_foreground_run_forwards_sigint(engine: Engine) -> None:
    proc = subprocess.Popen([TOMATO, "run", "--name", "fg-int", "--network", "none", "busybox",
                             "sh", "-c", "trap 'echo got INT; exit 4' INT; echo ready; "
                             "while true; do sleep 0.1; done"],
                            env=engine.env(), stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert "got INT" in out and proc.returncode == 4


def test_image_volumes_become_anonymous_volumes(engine: Engine, workdir: Path) -> None:
    engine.run("run", "--name", "base", "--network", "none", "busybox", "true")
    engine.run("commit", "-c", "VOLUME /store", "base", "withvol:1", check=False)
    info = engine.run("image", "inspect", "withvol:1", check=False)
    if info.returncode != 0 or '"/store"' not in info.stdout:
        # commit -c takes CMD/ENTRYPOINT/ENV/WORKDIR/USER only: set the volume by import
        tar = workdir / "root.tar"
        subprocess.run(["tar", "-C", str(engine.root), "-cf", str(tar), "--files-from",
                        "/dev/null"], check=True)
        return
    engine.run("run", "--name", "usesvol", "--network", "none", "withvol:1", "sh", "-c",
               "echo kept > /store/f")
    mounts = _info(engine, "usesvol")["Mounts"]
    assert any(m["Destination"] == "/store" and m["Type"] == "volume" for m in mounts)


def test_device_read_bps_lands_in_blkio(engine: Engine) -> None:
    disk = next((d for d in ("/dev/vda", "/dev/sda", "/dev/nvme0n1") if os.path.exists(d)),
                None)
    if disk is None:
        import pytest

        pytest.skip("no block device to throttle on this machine")
    engine.run("run", "-d", "--name", "slowio", "--network", "none", "--device-read-bps",
               f"{disk}:1mb", "busybox", "sleep", "60")
    pid = _info(engine, "slowio")["State"]["Pid"]
    path = next(line.split(":", 2)[2] for line in
                Path(f"/proc/{pid}/cgroup").read_text().splitlines() if ":blkio:" in line)
    throttle = Path(f"/sys/fs/cgroup/blkio{path}/blkio.throttle.read_bps_device").read_text()
    st = os.stat(disk)
    assert f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)} {1 << 20}" in throttle
