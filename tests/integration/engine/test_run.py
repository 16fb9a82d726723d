"""`tomato run` and the container lifecycle against the real kernel."""

from __future__ import annotations

import json
import time

from .conftest import Engine


def _inspect(engine: Engine, ref: str) -> dict:  # type: ignore[type-arg]
    return json.loads(engine.run("inspect", ref).stdout)[0]


def _wait_status(engine: Engine, ref: str, status: str, timeout: float = 10) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    info = _inspect(engine, ref)
    while info["State"]["Status"] != status and time.monotonic() < deadline:
        time.sleep(0.05)
        info = _inspect(engine, ref)
    return info


def test_run_prints_and_exits_with_the_container_code(engine: Engine) -> None:
    proc = engine.run("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3",
                      check=False)
    assert proc.returncode == 3
    assert proc.stdout == "out\n" and proc.stderr == "err\n"
    assert engine.ids() == []  # --rm removed it


def test_isolation_pid1_and_hostname_is_short_id(engine: Engine) -> None:
    out = engine.run("run", "--name", "iso", "busybox", "sh", "-c", "echo $$; hostname").stdout
    pid, hostname = out.split()
    assert pid == "1"
    assert _inspect(engine, "iso")["Id"].startswith(hostname) and len(hostname) == 12


def test_command_errors_use_dockers_exit_codes(engine: Engine) -> None:
    missing = engine.run("run", "--rm", "busybox", "no-such-command", check=False)
    assert missing.returncode == 127 and "no-such-command" in missing.stderr
    noexec = engine.run("run", "--rm", "busybox", "/etc/passwd", check=False)
    assert noexec.returncode == 126
    unknown = engine.run("run", "--rm", "no-such-image-here:1", "true", check=False)
    assert unknown.returncode == 125
    assert engine.ids() == []


def test_detached_ps_logs_stop_rm(engine: Engine) -> None:
    cid = engine.run("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
                     "trap 'echo bye; exit 0' TERM; i=0; while true; do echo tick $i; "
                     "i=$((i+1)); sleep 0.1; done").stdout.strip()
    assert len(cid) == 64
    ps = engine.run("ps").stdout.splitlines()
    assert ps[0].split()[:2] == ["CONTAINER", "ID"] and "ticker" in ps[1] and "Up" in ps[1]
    deadline = time.monotonic() + 5
    while "tick 2" not in engine.run("logs", "ticker").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    logs = engine.run("logs", "ticker").stdout
    assert logs.startswith("tick 0\ntick 1\n")
    assert engine.run("logs", "--tail", "1", "ticker").stdout.count("\n") == 1
    stamped = engine.run("logs", "-t", "--tail", "1", "ticker").stdout
    assert stamped[:4].isdigit() and "Z tick" in stamped

    refused = engine.run("rm", "ticker", check=False)
    assert refused.returncode == 1 and "cannot remove a running container" in refused.stderr

    engine.run("stop", "ticker")
    info = _inspect(engine, "ticker")
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0
    assert engine.run("logs", "--tail", "1", "ticker").stdout == "bye\n"
    assert "Exited (0)" in engine.run("ps", "-a").stdout
    engine.run("rm", "ticker")
    assert engine.ids() == []


def test_stop_kills_after_timeout(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "stubborn", "busybox", "sh", "-c",
               "trap '' TERM; while true; do sleep 0.1; done")
    t0 = time.monotonic()
    engine.run("stop", "-t", "1", "stubborn")
    assert time.monotonic() - t0 >= 1.0
    assert _inspect(engine, "stubborn")["State"]["ExitCode"] == 137


def test_exec_joins_the_container(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "box", "busybox", "sleep", "60")
    out = engine.run("exec", "-e", "FOO=bar", "-w", "/tmp", "box", "sh", "-c",
                     "echo $FOO $(pwd); cat /proc/1/cmdline | tr '\\0' ' '").stdout
    assert out.splitlines() == ["bar /tmp", "sleep 60 "]
    assert engine.run("exec", "box", "sh", "-c", "exit 4", check=False).returncode == 4
    assert engine.run("exec", "-u", "nobody", "box", "id", "-u").stdout.strip() == "65534"
    engine.run("kill", "box")
    _wait_status(engine, "box", "exited")
    stopped = engine.run("exec", "box", "true", check=False)
    assert stopped.returncode != 0 and "not running" in stopped.stderr


def test_copy_on_write_between_containers(engine: Engine) -> None:
    engine.run("run", "--name", "writer", "busybox", "sh", "-c", "echo mine > /etc/written")
    other = engine.run("run", "--rm", "busybox", "cat", "/etc/written", check=False)
    assert other.returncode != 0  # same image, its own container layer
    info = _inspect(engine, "writer")
    upper = info["GraphDriver"]["Data"]["UpperDir"]
    with open(f"{upper}/etc/written") as f:
        assert f.read() == "mine\n"


def test_named_volume_survives_rm_and_bind_mounts(engine: Engine, workdir) -> None:  # type: ignore[no-untyped-def]
    engine.run("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert engine.run("run", "--rm", "-v", "data:/data", "busybox", "cat",
                      "/data/f").stdout == "kept\n"
    assert "data" in engine.run("volume", "ls", "-q").stdout.split()
    host = workdir / "bind"
    host.mkdir()
    (host / "in").write_text("from host\n")
    assert engine.run("run", "--rm", "-v", f"{host}:/mnt:ro", "busybox", "cat",
                      "/mnt/in").stdout == "from host\n"
    ro = engine.run("run", "--rm", "-v", f"{host}:/mnt:ro", "busybox", "touch", "/mnt/x",
                    check=False)
    assert ro.returncode != 0
    engine.run("run", "--rm", "-v", f"{host}:/mnt", "busybox", "touch", "/mnt/x")
    assert (host / "x").exists()
    engine.run("volume", "rm", "data")
    assert "data" not in engine.run("volume", "ls", "-q").stdout.split()


def test_read_only_root_and_tmpfs(engine: Engine) -> None:
    ro = engine.run("run", "--rm", "--read-only", "busybox", "touch", "/x", check=False)
    assert ro.returncode != 0 and "Read-only" in ro.stderr
    out = engine.run("run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "sh", "-c",
                     "touch /scratch/x && grep /scratch /proc/mounts").stdout
    assert "tmpfs" in out


def test_bad_input_is_refused_with_nothing_left(engine: Engine) -> None:
    cases = [
        (["run", "--memory", "1x", "busybox", "true"], "invalid argument \"1x\""),
        (["run", "--cpus", "-1", "busybox", "true"], "Range of CPUs"),  # docker's words
        (["run", "-v", "a:b:c:d", "busybox", "true"], "too many colons"),
        (["run", "--restart", "sometimes", "busybox", "true"], "invalid restart policy"),
    ]
    for args, needle in cases:
        proc = engine.run(*args, check=False)
        assert proc.returncode == 125, (args, proc.stderr)
        assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    engine.run("create", "--name", "taken", "busybox", "true")
    dup = engine.run("create", "--name", "taken", "busybox", "true", check=False)
    assert dup.returncode == 125 and "already in use" in dup.stderr
    assert len(engine.ids()) == 1


def test_restart_on_failure_counts(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh",
               "-c", "exit 1")
    deadline = time.monotonic() + 15
    info = _inspect(engine, "flaky")
    while (info["State"]["Status"] != "exited" or info["RestartCount"] < 2) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
        info = _inspect(engine, "flaky")
    assert info["RestartCount"] == 2 and info["State"]["ExitCode"] == 1


def test_memory_limit_oom_kills_and_inspect_says_so(engine: Engine) -> None:
    proc = engine.run("run", "--name", "hog", "-m", "16m", "--memory-swap", "16m", "busybox",
                      "sh", "-c", "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; "
                      "while true; do x=$x$x; done", check=False, timeout=120)
    assert proc.returncode == 137
    assert _inspect(engine, "hog")["State"]["OOMKilled"] is True
