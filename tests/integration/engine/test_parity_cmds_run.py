"""Issue 19's `run` flags against the real engine: --cidfile, --label-file, -a, --pull,
--platform, --log-driver/--log-opt, --detach-keys and ctrl-p ctrl-q (through a pty),
`logs --until`, with docker's messages and exit codes."""

from __future__ import annotations

import os
import pty
import select
import termios
import time
from pathlib import Path

from helpers.engine import TOMATO, Engine, until


def test_cidfile_written_and_an_existing_one_refused(engine: Engine, tmp_path: Path) -> None:
    cid = tmp_path / "cid"
    out = engine.run("run", "--rm", "--cidfile", str(cid), "busybox", "true")
    assert out.returncode == 0
    assert len(cid.read_text()) == 64
    again = engine.run("run", "--rm", "--cidfile", str(cid), "busybox", "true", check=False)
    assert again.returncode == 125
    assert again.stderr == ("tomato: Container ID file found, make sure the other container "
                            f"isn't running or delete {cid}\n")
    # a create that fails leaves no file behind
    gone = tmp_path / "gone"
    bad = engine.run("create", "--cidfile", str(gone), "no-such-image:x", check=False)
    assert bad.returncode == 125 and not gone.exists()
    made = engine.run("create", "--cidfile", str(tmp_path / "c2"), "busybox",
                      "true").stdout.strip()
    assert (tmp_path / "c2").read_text() == made


def test_label_file_then_labels(engine: Engine, tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.write_text("# a comment\n\ntier=back\nflag\nteam=red\n")
    cid = engine.run("create", "--label-file", str(labels), "-l", "tier=front",
                     "busybox", "true").stdout.strip()
    assert engine.inspect(cid)["Config"]["Labels"] == {"tier": "front", "flag": "",
                                                       "team": "red"}
    missing = engine.run("create", "--label-file", str(tmp_path / "nope"), "busybox", "true",
                         check=False)
    assert missing.returncode == 125
    assert missing.stderr.startswith(f"tomato: open {tmp_path / 'nope'}: no such file")


def test_attach_chooses_the_streams(engine: Engine) -> None:
    script = "echo out; echo err >&2"
    only_err = engine.run("run", "--rm", "-a", "stderr", "busybox", "sh", "-c", script)
    assert (only_err.stdout, only_err.stderr) == ("", "err\n")
    only_out = engine.run("run", "--rm", "-a", "STDOUT", "busybox", "sh", "-c", script)
    assert (only_out.stdout, only_out.stderr) == ("out\n", "")
    both = engine.run("run", "--rm", "-a", "stdout", "-a", "stderr", "busybox", "sh", "-c",
                      script)
    assert (both.stdout, both.stderr) == ("out\n", "err\n")
    bad = engine.run("run", "--rm", "-a", "stdlog", "busybox", "true", check=False)
    assert bad.returncode == 125
    assert 'invalid argument "stdlog" for "-a, --attach" flag' in bad.stderr
    both_ways = engine.run("run", "-d", "-a", "stdout", "busybox", "true", check=False)
    assert both_ways.returncode == 125 and "conflicting options" in both_ways.stderr


def test_pull_policy_and_platform(engine: Engine) -> None:
    never = engine.run("run", "--rm", "--pull", "never", "busybox:absent", "true", check=False)
    assert (never.returncode, never.stderr) == (125, "tomato: No such image: busybox:absent\n")
    assert engine.run("run", "--rm", "--pull", "never", "busybox", "echo", "here").stdout == \
        "here\n"
    bad = engine.run("run", "--rm", "--pull", "sometimes", "busybox", "true", check=False)
    assert bad.returncode == 125 and "invalid pull option: 'sometimes'" in bad.stderr
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    assert engine.run("run", "--rm", "--platform", f"linux/{arch}", "busybox",
                      "echo", "ok").stdout == "ok\n"
    other = "arm64" if arch != "arm64" else "amd64"
    far = engine.run("run", "--rm", "--platform", f"linux/{other}", "busybox", "true",
                     check=False)
    assert far.returncode == 125
    assert f"platform linux/{other} does not match this host (linux/{arch})" in far.stderr
    odd = engine.run("run", "--rm", "--platform", "linux", "busybox", "true", check=False)
    assert odd.returncode == 125 and "invalid platform" in odd.stderr


def test_log_drivers(engine: Engine) -> None:
    cid = engine.run("run", "-d", "--log-driver", "none", "busybox", "sh", "-c",
                     "echo gone").stdout.strip()
    engine.run("wait", cid)
    logs = engine.run("logs", cid, check=False)
    assert (logs.returncode, logs.stderr) == (
        1, "tomato: configured logging driver does not support reading\n")
    assert not list((engine.root / "containers" / cid).glob("*-json.log*")) or \
        all(p.stat().st_size == 0 for p in (engine.root / "containers" / cid).glob("*.log"))
    local = engine.run("run", "-d", "--log-driver", "local", "--log-opt", "max-size=1k",
                       "busybox", "sh", "-c", "echo kept").stdout.strip()
    engine.run("wait", local)
    assert engine.run("logs", local).stdout == "kept\n"
    # json-file rotates at max-size, keeping max-file files
    rot = engine.run("run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=2",
                     "busybox", "sh", "-c",
                     "i=0; while [ $i -lt 200 ]; do echo line$i; i=$((i+1)); done"
                     ).stdout.strip()
    engine.run("wait", rot)
    files = sorted((engine.root / "containers" / rot).glob(f"{rot}-json.log*"))
    assert len(files) == 2, files
    assert all(f.stat().st_size < 1200 for f in files)
    for args, message in (
            (("--log-driver", "syslog"), "no log driver named 'syslog' is registered"),
            (("--log-driver", "none", "--log-opt", "max-size=1k"),
             "unknown log opt 'max-size' for none log driver"),
            (("--log-opt", "colour=red"), "unknown log opt 'colour' for json-file log driver"),
            (("--log-opt", "max-file=3"), "max-file cannot be set without max-size"),
            (("--log-opt", "max-size"), "invalid log opt format 'max-size'")):
        bad = engine.run("run", "--rm", *args, "busybox", "true", check=False)
        assert bad.returncode == 125 and message in bad.stderr, (args, bad.stderr)


def test_logs_until_and_since_in_dockers_forms(engine: Engine) -> None:
    cid = engine.run("run", "-d", "busybox", "sh", "-c", "echo early; sleep 2; echo late"
                     ).stdout.strip()
    engine.run("wait", cid)
    stamps = engine.run("logs", "-t", cid).stdout.splitlines()
    assert [s.split(" ", 1)[1] for s in stamps] == ["early", "late"]
    middle = stamps[1].split(" ", 1)[0]  # the late line's own time: until it is inclusive
    early_only = engine.run("logs", "--until", stamps[0].split(" ", 1)[0], cid).stdout
    assert early_only == "early\n"
    assert engine.run("logs", "--since", middle, cid).stdout == "late\n"
    assert engine.run("logs", "--since", "1h", "--until", "0s", cid).stdout == "early\nlate\n"
    assert engine.run("logs", "--until", "1h", cid).stdout == ""  # an hour ago: nothing yet
    bad = engine.run("logs", "--since", "yesterday", cid, check=False)
    assert bad.returncode == 125
    assert 'failed to parse value as time or duration: "yesterday"' in bad.stderr


def _pty_run(engine: Engine, *args: str) -> tuple[int, int]:
    """`tomato ARGS` on a new pty, once it has put the terminal in raw mode (it is then
    attached: typed too early, ctrl-q would be the line discipline's XON)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(TOMATO, ["tomato", *args], engine.env())
    assert until(lambda: not termios.tcgetattr(fd)[3] & termios.ECHO), "never attached"
    return pid, fd


def _read_until(fd: int, token: bytes, seen: bytearray, limit: float = 15) -> bool:
    deadline = time.monotonic() + limit
    while token not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return token in seen


def _exit_of(pid: int, limit: float = 15) -> int | None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def test_ctrl_p_ctrl_q_detaches_run_it_and_attach(engine: Engine) -> None:
    pid, fd = _pty_run(engine, "run", "-it", "--name", "detach-me", "busybox", "cat")
    seen = bytearray()
    try:
        os.write(fd, b"abc\r")
        assert _read_until(fd, b"abc", seen), seen
        os.write(fd, b"\x10x\r")  # ctrl-p then another key: both reach the container
        assert _read_until(fd, b"x", seen), seen
        os.write(fd, b"\x10\x11")
        assert _exit_of(pid) == 0
    finally:
        os.close(fd)
    assert engine.run("inspect", "-f", "{{.State.Running}}", "detach-me").stdout == "true\n"
    # attach, and leave by keys of our own
    pid, fd = _pty_run(engine, "attach", "--detach-keys", "ctrl-a,x", "detach-me")
    try:
        seen = bytearray()
        os.write(fd, b"again\r")
        assert _read_until(fd, b"again", seen), seen
        os.write(fd, b"\x01x")
        assert _exit_of(pid) == 0
    finally:
        os.close(fd)
    assert until(lambda: engine.run("inspect", "-f", "{{.State.Running}}",
                                    "detach-me").stdout == "true\n")
    bad = engine.run("attach", "--detach-keys", "ctrl-99", "detach-me", check=False)
    assert bad.returncode == 125 and "Invalid detach keys (ctrl-99) provided" in bad.stderr


def test_quiet_and_content_trust(engine: Engine) -> None:
    assert engine.run("run", "--rm", "-q", "busybox", "echo", "q").stdout == "q\n"
    assert engine.run("run", "--rm", "--disable-content-trust", "busybox", "true"
                      ).returncode == 0
    trust = engine.run("run", "--rm", "--disable-content-trust=false", "busybox", "true",
                       check=False)
    assert trust.returncode == 125 and "content trust is not supported" in trust.stderr


def test_logs_follow_stops_at_until(engine: Engine) -> None:
    cid = engine.run("run", "-d", "busybox", "sh", "-c",
                     "i=0; while true; do echo $i; i=$((i+1)); sleep 0.2; done").stdout.strip()
    try:
        until = f"{time.time() + 1.5:.3f}"  # a moment ahead: followed until then, then done
        out = engine.run("logs", "-f", "--until", until, cid, timeout=20).stdout.split()
        assert out and out == [str(i) for i in range(len(out))]
        assert len(out) < 30
    finally:
        engine.run("rm", "-f", cid)
