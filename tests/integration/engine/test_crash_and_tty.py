"""The record tells the truth after kill -9 of any tomato process; -it is a real TTY."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pexpect

from .conftest import TOMATO, Engine, until


def _info(engine: Engine, ref: str) -> dict:  # type: ignore[type-arg]
    return json.loads(engine.run("inspect", ref).stdout)[0]


def _monitor_pid(engine: Engine, cid: str) -> int:
    db_state = engine.run("inspect", "-f", "{{.Id}}", cid).stdout.strip()
    import sqlite3

    con = sqlite3.connect(engine.root / "tomato.db")
    try:
        row = con.execute("SELECT state FROM containers WHERE id=?", (db_state,)).fetchone()
    finally:
        con.close()
    return int(json.loads(row[0])["monitor_pid"])


def test_monitor_killed_then_container_dies(engine: Engine) -> None:
    """Issue 13, item 8: a container whose monitor was killed has nobody to read its
    output or record its exit; as containerd does when a shim dies, the next look at
    it kills it and records why (never a container running on, unwatched)."""
    engine.run("run", "-d", "--name", "orphan", "busybox", "sh", "-c",
               "while :; do echo tick; sleep 0.1; done")
    pid = _info(engine, "orphan")["State"]["Pid"]
    monitor = _monitor_pid(engine, "orphan")
    os.kill(monitor, signal.SIGKILL)
    assert until(lambda: not os.path.exists(f"/proc/{monitor}/stat") or
                 open(f"/proc/{monitor}/stat").read().split()[2] == "Z")
    state = _info(engine, "orphan")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137, state
    assert "monitor died" in state["Error"]
    assert until(lambda: not os.path.exists(f"/proc/{pid}/stat") or
                 open(f"/proc/{pid}/stat").read().split()[2] == "Z")
    assert "Exited (137)" in engine.run("ps", "-a").stdout
    engine.run("rm", "orphan")
    assert engine.ids() == []


def test_cli_killed_mid_run_leaves_a_true_record(engine: Engine) -> None:
    proc = subprocess.Popen([TOMATO, "run", "--name", "fg", "busybox", "sh", "-c",
                             "echo started; sleep 60"], env=engine.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    proc.kill()
    proc.wait()
    assert _info(engine, "fg")["State"]["Status"] == "running"
    engine.run("stop", "-t", "1", "fg")
    assert _info(engine, "fg")["State"]["Status"] == "exited"
    assert engine.run("logs", "fg").stdout == "started\n"


def test_interactive_tty(engine: Engine) -> None:
    child = pexpect.spawn(TOMATO, ["run", "-it", "--rm", "busybox", "sh"], env=engine.env(),
                          timeout=20, dimensions=(30, 101))
    try:
        child.expect(r"# ")
        child.sendline("stty size; tty; echo $((6*7))")
        child.expect("30 101")
        child.expect("/dev/pts/0")
        child.expect("42")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 5


def test_interactive_stdin_without_tty(engine: Engine) -> None:
    out = engine.run("run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z",
                     input="shout\n").stdout
    assert out == "SHOUT\n"
