"""run flags: resources, security, users, entrypoints, env files, labels, init, ulimits."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from .conftest import Engine


def _info(engine: Engine, ref: str) -> dict:  # type: ignore[type-arg]
    return json.loads(engine.run("inspect", ref).stdout)[0]


def _cgroup_file(pid: int, controller: str, name: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path(f"/sys/fs/cgroup/{controller}{path}/{name}").read_text().strip()
    raise AssertionError(f"no {controller} hierarchy")


def test_resource_flags_land_in_cgroups(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "res", "--cpus", "0.5", "--cpu-shares", "512",
               "--cpuset-cpus", "0", "-m", "64m", "--pids-limit", "42", "busybox", "sleep", "60")
    pid = _info(engine, "res")["State"]["Pid"]
    assert _cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"
    assert _cgroup_file(pid, "cpu", "cpu.shares") == "512"
    assert _cgroup_file(pid, "cpuset", "cpuset.cpus") == "0"
    assert _cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert _cgroup_file(pid, "pids", "pids.max") == "42"


def test_pids_limit_stops_a_fork_bomb(engine: Engine) -> None:
    proc = engine.run("run", "--rm", "--pids-limit", "8", "busybox", "sh", "-c",
                      "i=0; while [ $i -lt 50 ]; do sleep 5 & i=$((i+1)); done; echo all forked",
                      check=False, timeout=60)
    assert "all forked" not in proc.stdout
    assert proc.returncode != 0 and "fork" in proc.stderr


def test_user_workdir_entrypoint_env(engine: Engine, workdir: Path) -> None:
    env_file = workdir / "env"
    env_file.write_text("# comment\nFROM_FILE=yes\n")
    out = engine.run("run", "--rm", "-u", "nobody", "-w", "/tmp", "--env-file", str(env_file),
                     "-e", "A=1", "--entrypoint", "sh", "busybox", "-c",
                     "id -u; pwd; echo $A $FROM_FILE; echo $HOSTNAME").stdout.split()
    assert out[:4] == ["65534", "/tmp", "1", "yes"]
    custom = engine.run("run", "--rm", "-h", "myhost", "busybox", "hostname").stdout.strip()
    assert custom == "myhost"


def test_capabilities_and_privileged(engine: Engine) -> None:
    def cap_eff(*flags: str) -> int:
        out = engine.run("run", "--rm", *flags, "busybox", "grep", "CapEff",
                         "/proc/self/status").stdout
        return int(out.split()[1], 16)

    default = cap_eff()
    assert default & (1 << 13)  # docker's defaults keep CAP_NET_RAW
    assert not default & (1 << 21)  # but not CAP_SYS_ADMIN
    assert not cap_eff("--cap-drop", "NET_RAW") & (1 << 13)
    assert cap_eff("--cap-add", "SYS_ADMIN") & (1 << 21)
    assert cap_eff("--cap-drop", "ALL") == 0
    assert cap_eff("--privileged") & (1 << 21)
    denied = engine.run("run", "--rm", "busybox", "mount", "-t", "tmpfs", "t", "/tmp",
                        check=False)
    assert denied.returncode != 0
    engine.run("run", "--rm", "--privileged", "busybox", "mount", "-t", "tmpfs", "t", "/tmp")
    bad = engine.run("run", "--rm", "--cap-add", "NOT_A_CAP", "busybox", "true", check=False)
    assert bad.returncode == 125 and "NOT_A_CAP" in bad.stderr


def test_seccomp_and_no_new_privileges(engine: Engine, workdir: Path) -> None:
    # Docker's default profile refuses unshare(2) without CAP_SYS_ADMIN.
    refused = engine.run("run", "--rm", "busybox", "unshare", "-r", "true", check=False)
    assert refused.returncode != 0
    profile = workdir / "deny-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    denied = engine.run("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox",
                        "mkdir", "/x", check=False)
    assert denied.returncode != 0 and "not permitted" in denied.stderr
    nnp = engine.run("run", "--rm", "--security-opt", "no-new-privileges", "busybox", "grep",
                     "NoNewPrivs", "/proc/self/status").stdout
    assert nnp.split()[1] == "1"


def test_ulimit_label_stop_signal(engine: Engine) -> None:
    out = engine.run("run", "--rm", "--ulimit", "nofile=512:1024", "busybox", "sh", "-c",
                     "ulimit -n; ulimit -Hn").stdout.split()
    assert out == ["512", "1024"]
    engine.run("run", "-d", "--name", "lab", "-l", "team=red", "--stop-signal", "USR1",
               "busybox", "sh", "-c", "trap 'exit 9' USR1; while true; do sleep 0.1; done")
    assert "lab" in engine.run("ps", "--filter", "label=team=red", "--format",
                               "{{.Names}}").stdout
    engine.run("stop", "lab")
    assert _info(engine, "lab")["State"]["ExitCode"] == 9


@pytest.mark.skipif(not os.path.exists("/usr/bin/tini-static"),
                    reason="--init needs Debian's tini package (apt-get install tini)")
def test_init_reaps_and_forwards(engine: Engine) -> None:
    out = engine.run("run", "--rm", "--init", "busybox", "sh", "-c",
                     "echo $$; cat /proc/1/cmdline | tr '\\0' ' '").stdout.splitlines()
    assert out[0] != "1" and "docker-init" in out[1]


def test_device_and_blkio_flags(engine: Engine) -> None:
    out = engine.run("run", "--rm", "--device", "/dev/fuse:/dev/myfuse", "busybox", "ls", "-l",
                     "/dev/myfuse", check=False)
    if os.path.exists("/dev/fuse"):
        assert out.returncode == 0 and out.stdout.startswith("c")
    bad = engine.run("run", "--rm", "--device", "/dev/nope", "busybox", "true", check=False)
    assert bad.returncode == 125 and "/dev/nope" in bad.stderr


def test_restart_always_and_rename_and_prune(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "again", "--restart", "always", "busybox", "sh", "-c",
               "sleep 0.2; exit 2")
    deadline = time.monotonic() + 15
    while _info(engine, "again")["RestartCount"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _info(engine, "again")["RestartCount"] >= 2
    engine.run("stop", "again")
    count = _info(engine, "again")["RestartCount"]
    time.sleep(0.6)
    assert _info(engine, "again")["State"]["Status"] == "exited"
    assert _info(engine, "again")["RestartCount"] == count  # stop ends the policy
    engine.run("rename", "again", "renamed")
    assert _info(engine, "renamed")["Name"] == "/renamed"
    engine.run("container", "prune", "-f")
    assert engine.ids() == []


def test_log_rotation(engine: Engine) -> None:
    engine.run("run", "--name", "chatty", "--log-opt", "max-size=2k", "--log-opt", "max-file=2",
               "busybox", "sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); "
               "done")
    info = _info(engine, "chatty")
    log = Path(info["LogPath"])
    assert log.exists() and Path(str(log) + ".1").exists()
    assert not Path(str(log) + ".2").exists()
    assert log.stat().st_size < 4096
    last = engine.run("logs", "--tail", "1", "chatty").stdout
    assert last == "line 199\n"


def test_logs_survive_restarts_and_start_attach(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "retry", "--restart", "on-failure:2", "busybox", "sh",
               "-c", "echo attempt; exit 1")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        info = _info(engine, "retry")
        if info["State"]["Status"] == "exited" and info["RestartCount"] == 2:
            break
        time.sleep(0.1)
    assert engine.run("logs", "retry").stdout == "attempt\n" * 3
    # start -a attaches to the next run and returns its exit code
    started = engine.run("start", "-a", "retry", check=False)
    assert started.returncode == 1 and started.stdout == "attempt\n"
