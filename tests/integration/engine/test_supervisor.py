"""Issue 13, item 8: the supervisor (`tomato daemon`; `tomato serve` runs the same):
restart policies applied when it starts (after a reboot, or a crash of everything),
and containers whose monitor was killed are restarted by their policy."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import TOMATO, Engine, until


@contextmanager
def supervisor(engine: Engine) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([TOMATO, "daemon", "--interval", "0.2"], env=engine.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _state(engine: Engine, name: str) -> dict:  # type: ignore[type-arg]
    return engine.inspect(name)["State"]  # type: ignore[no-any-return]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _monitor_of(engine: Engine, name: str) -> int:
    import json
    import sqlite3

    db = sqlite3.connect(engine.root / "tomato.db")
    try:
        row = db.execute("SELECT state FROM containers WHERE name=?", (name,)).fetchone()
    finally:
        db.close()
    return int(json.loads(row[0])["monitor_pid"])


def test_a_dead_monitors_container_is_restarted_by_its_policy(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "keep", "--restart", "always", "--network", "none",
               "busybox", "sleep", "300")
    engine.run("run", "-d", "--name", "once", "--network", "none", "busybox", "sleep", "300")
    with supervisor(engine):
        first = {n: _state(engine, n)["Pid"] for n in ("keep", "once")}
        for name in ("keep", "once"):
            os.kill(_monitor_of(engine, name), signal.SIGKILL)
        assert until(lambda: all(_gone(p) for p in first.values()), timeout=20)
        assert until(lambda: _state(engine, "keep")["Status"] == "running" and
                     _state(engine, "keep")["Pid"] != first["keep"], timeout=20)
        once = _state(engine, "once")
        assert once["Status"] == "exited" and once["ExitCode"] == 137, once
        assert "monitor died" in once["Error"]
    assert _state(engine, "keep")["Status"] == "running"  # the supervisor leaves it be


def test_boot_starts_what_the_policies_say(engine: Engine) -> None:
    """A reboot, as far as the records can tell: every monitor and container killed at
    once, the containers' root filesystems unmounted.  The supervisor's start brings
    back `always` and `unless-stopped`, not one the user stopped, not `no`."""
    names = {"always": "always", "unless": "unless-stopped", "stopped": "unless-stopped",
             "no": "no"}
    for name, policy in names.items():
        engine.run("run", "-d", "--name", name, "--restart", policy, "--network", "none",
                   "busybox", "sleep", "300")
    engine.run("stop", "-t", "1", "stopped")
    victims = []
    for name in ("always", "unless", "no"):
        victims += [_monitor_of(engine, name), _state(engine, name)["Pid"]]
    assert all(pid > 0 for pid in victims)  # (kill(0) would be our own process group)
    for pid in victims:
        os.kill(pid, signal.SIGSTOP)  # nobody records anything until all are dead
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    assert until(lambda: all(_gone(p) for p in victims))
    for cid in engine.ids():
        subprocess.run(["umount", "-l", str(engine.root / "containers" / cid / "bundle" /
                                            "rootfs")], capture_output=True)
    with supervisor(engine) as proc:
        assert until(lambda: all(_state(engine, n)["Status"] == "running"
                                 for n in ("always", "unless")), timeout=30), proc.stderr
        assert _state(engine, "stopped")["Status"] == "exited"
        assert _state(engine, "no")["Status"] == "exited"
        out = engine.run("exec", "always", "echo", "back").stdout
        assert out == "back\n"


def test_one_supervisor_per_root(engine: Engine) -> None:
    with supervisor(engine) as first:
        lock = engine.root / "locks" / "supervisor.lock"
        assert until(lambda: lock.exists() and lock.read_text().strip() == str(first.pid))
        second = engine.run("daemon", check=False, timeout=30)
        assert second.returncode == 1 and "already running" in second.stderr
        assert first.poll() is None


def test_the_systemd_unit_is_one_systemd_accepts(tmp_path: Path) -> None:
    import shutil

    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package)")
    unit = Path(__file__).resolve().parents[3] / "contrib" / "systemd" / "tomato.service"
    text = unit.read_text()
    assert "ExecStart=/usr/local/bin/tomato daemon" in text and "KillMode=process" in text
    mine = tmp_path / "tomato.service"
    mine.write_text(text.replace("/usr/local/bin/tomato", TOMATO))
    done = subprocess.run(["systemd-analyze", "verify", str(mine)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_serve_supervises_too_and_stops_cleanly(engine: Engine, tmp_path: Path) -> None:
    """`tomato serve` runs the supervisor beside the API (one per root): a dead
    monitor's `always` container comes back while only the API server runs; SIGTERM
    at any moment stops both, leaving no socket behind."""
    engine.run("run", "-d", "--name", "api-keep", "--restart", "always", "--network", "none",
               "busybox", "sleep", "300")
    sock = tmp_path / "api.sock"
    proc = subprocess.Popen([TOMATO, "serve", "--host", f"unix://{sock}"], env=engine.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert until(lambda: sock.exists())
        first = _state(engine, "api-keep")["Pid"]
        os.kill(_monitor_of(engine, "api-keep"), signal.SIGKILL)
        assert until(lambda: _state(engine, "api-keep")["Status"] == "running" and
                     _state(engine, "api-keep")["Pid"] != first, timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not sock.exists()
    lock = engine.root / "locks" / "supervisor.lock"
    holder = lock.read_text().strip()
    assert not holder or not Path(f"/proc/{holder}").exists() or _gone(int(holder))
    # stopped the moment it started: still clean
    early = subprocess.Popen([TOMATO, "serve", "--host", f"unix://{sock}"], env=engine.env(),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    time.sleep(0.05)
    early.send_signal(signal.SIGTERM)
    assert early.wait(timeout=30) in (0, -signal.SIGTERM)
    assert until(lambda: not sock.exists())
