"""The create/start/state/kill/delete lifecycle against the real kernel."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from .rt import RUNTIME, config, run_in, runtime, set_args, state, write_config


def test_run_is_pid_1_with_own_hostname(root: Path, bundle: Path) -> None:
    cfg = config(bundle)
    cfg["hostname"] = "tomato-test"
    write_config(bundle, cfg)
    out = run_in(root, bundle, "c1", "sh", "-c", "echo pid=$$; hostname").stdout
    assert out.split() == ["pid=1", "tomato-test"]
    assert os.listdir(root) == []  # run deletes what it made


def test_host_processes_are_invisible(root: Path, bundle: Path) -> None:
    out = run_in(root, bundle, "c1", "sh", "-c", "ls /proc | grep -c '^[0-9]'").stdout
    # sh, ls and grep at most: the host's hundreds of processes are not there.
    assert int(out.strip()) <= 4


def test_exit_code_propagates(root: Path, bundle: Path) -> None:
    proc = run_in(root, bundle, "c1", "sh", "-c", "exit 7", check=False)
    assert proc.returncode == 7


def test_killed_by_signal_exits_128_plus(root: Path, bundle: Path) -> None:
    # PID 1 of a pid namespace is immune to its own SIGKILL: share the host's.
    cfg = config(bundle)
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]
    write_config(bundle, cfg)
    proc = run_in(root, bundle, "c1", "sh", "-c", "kill -9 $$", check=False)
    assert proc.returncode == 137


def test_create_blocks_before_exec_until_start(root: Path, bundle: Path, workdir: Path) -> None:
    cfg = set_args(bundle, "sh", "-c", "touch /started; exec sleep 60")
    cfg["root"]["readonly"] = False
    write_config(bundle, cfg)
    pid_file = workdir / "pid"
    runtime(root, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), "c1")
    st = state(root, "c1")
    assert st["status"] == "created"
    assert st["id"] == "c1" and st["bundle"] == str(bundle)
    assert int(pid_file.read_text()) == st["pid"] > 0
    time.sleep(0.2)
    # Not exec'd yet: the user process has not run a single instruction.
    assert not (bundle / "rootfs" / "started").exists()
    assert b"sleep" not in Path(f"/proc/{st['pid']}/cmdline").read_bytes()

    runtime(root, "start", "c1")
    deadline = time.monotonic() + 5
    while not (bundle / "rootfs" / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (bundle / "rootfs" / "started").exists()
    assert state(root, "c1")["status"] == "running"

    again = runtime(root, "start", "c1", check=False)
    assert again.returncode != 0 and "running" in again.stderr

    runtime(root, "kill", "c1", "KILL")
    deadline = time.monotonic() + 5
    while state(root, "c1")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert state(root, "c1")["status"] == "stopped"
    runtime(root, "delete", "c1")
    assert not (root / "c1").exists()
    gone = runtime(root, "state", "c1", check=False)
    assert gone.returncode == 1 and "c1 does not exist" in gone.stderr


def test_delete_running_needs_force(root: Path, bundle: Path) -> None:
    set_args(bundle, "sleep", "60")
    runtime(root, "run", "--detach", "--bundle", str(bundle), "c1")
    assert state(root, "c1")["status"] == "running"
    refused = runtime(root, "delete", "c1", check=False)
    assert refused.returncode == 1
    assert "not stopped" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert state(root, "c1")["status"] == "running"
    runtime(root, "delete", "--force", "c1")
    assert not (root / "c1").exists()


def test_kill_by_name_and_number(root: Path, bundle: Path) -> None:
    set_args(bundle, "sh", "-c", "trap 'exit 0' USR1; while true; do sleep 0.05; done")
    runtime(root, "run", "-d", "--bundle", str(bundle), "c1")
    pid = state(root, "c1")["pid"]
    runtime(root, "kill", "c1", "10")  # SIGUSR1
    deadline = time.monotonic() + 5
    while state(root, "c1")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state(root, "c1")["status"] == "stopped"
    assert not os.path.exists(f"/proc/{pid}/cmdline") or \
        open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    bad = runtime(root, "kill", "c1", "SIGNOPE", check=False)
    assert bad.returncode == 1 and "signal" in bad.stderr
    runtime(root, "delete", "c1")


def test_list_table_and_json(root: Path, bundle: Path) -> None:
    set_args(bundle, "sleep", "60")
    runtime(root, "create", "--bundle", str(bundle), "c1")
    table = runtime(root, "list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[0] == "c1" and table[1].split()[2] == "created"
    items = json.loads(runtime(root, "list", "--format", "json").stdout)
    assert [i["id"] for i in items] == ["c1"] and items[0]["status"] == "created"
    assert runtime(root, "list", "-q").stdout.split() == ["c1"]
    runtime(root, "delete", "c1")  # a created container may be deleted without --force
    assert runtime(root, "list", "-q").stdout == ""


def test_keep_leaves_stopped_container(root: Path, bundle: Path) -> None:
    run_in(root, bundle, "c1", "true", extra=("--keep",))
    assert state(root, "c1")["status"] == "stopped"
    runtime(root, "delete", "c1")


def test_no_pivot_uses_chroot(root: Path, bundle: Path) -> None:
    out = run_in(root, bundle, "c1", "sh", "-c", "echo $$; cat /proc/1/mountinfo | head -1",
                 extra=("--no-pivot",)).stdout
    assert out.splitlines()[0] == "1"


def test_preserve_fds(root: Path, bundle: Path, workdir: Path) -> None:
    secret = workdir / "passed"
    secret.write_text("through fd 3\n")
    set_args(bundle, "sh", "-c", "cat <&3; ls /proc/self/fd | sort -n | tail -1")
    # The shell opens fd 3 for the runtime, as containerd's socket activation would.
    proc = subprocess.run(
        ["sh", "-c", f'exec "$0" --root {root} run --preserve-fds 1 --bundle {bundle} c1 '
                     f'3<{secret}', RUNTIME], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "through fd 3"
    # Nothing beyond the preserved fd leaks in: ls's own directory fd is the highest.
    assert int(lines[1]) <= 4


def test_spec_writes_runc_default(workdir: Path, root: Path) -> None:
    runtime(root, "spec", "--bundle", str(workdir))
    cfg = json.loads((workdir / "config.json").read_text())
    assert cfg["process"]["args"] == ["sh"] and cfg["root"]["path"] == "rootfs"
    assert {"type": "pid"} in cfg["linux"]["namespaces"]
    # Docker's default seccomp profile ships with it, resolved for the spec's capabilities.
    assert cfg["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed = {n for rule in cfg["linux"]["seccomp"]["syscalls"] for n in rule["names"]
               if rule["action"] == "SCMP_ACT_ALLOW"}
    assert "read" in allowed and "mount" not in allowed
    from tomato.oci.security_defaults import DOCKER_DEFAULT_CAPS

    assert sorted(cfg["process"]["capabilities"]["bounding"]) == sorted(DOCKER_DEFAULT_CAPS)
    again = runtime(root, "spec", "--bundle", str(workdir), check=False)
    assert again.returncode == 1 and "exists" in again.stderr
    rootless = workdir / "rl"
    rootless.mkdir()
    runtime(root, "spec", "--rootless", "--bundle", str(rootless))
    cfg = json.loads((rootless / "config.json").read_text())
    assert {"type": "user"} in cfg["linux"]["namespaces"]
    assert cfg["linux"]["uidMappings"][0]["hostID"] == os.getuid()
