"""Runtime commands backed by cgroups: update, pause/resume, events, ps, kill --all."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tomato.cgroups import load_manager

from .rt import config, runtime, set_args, state, write_config


def _manager(root: Path, cid: str):  # type: ignore[no-untyped-def]
    saved = json.loads((root / cid / "state.json").read_text())["cgroup"]
    return load_manager(saved)


def _detached(root: Path, bundle: Path, cid: str, *args: str) -> int:
    set_args(bundle, *args)
    runtime(root, "run", "-d", "--bundle", str(bundle), cid)
    return int(state(root, cid)["pid"])


def test_container_lives_in_its_own_cgroups(root: Path, bundle: Path) -> None:
    pid = _detached(root, bundle, "c1", "sleep", "60")
    mgr = _manager(root, "c1")
    assert pid in mgr.pids()
    own = Path(f"/proc/{pid}/cgroup").read_text()
    assert "/tomato/c1" in own
    runtime(root, "delete", "-f", "c1")
    assert not mgr.exists()


def test_cgroup_namespace_shows_root(root: Path, bundle: Path) -> None:
    set_args(bundle, "cat", "/proc/self/cgroup")
    out = runtime(root, "run", "--bundle", str(bundle), "c1").stdout
    lines = [line for line in out.splitlines() if line.split(":")[1] in ("pids", "memory")]
    assert lines and all(line.endswith(":/") for line in lines), out


def test_ps_lists_every_process(root: Path, bundle: Path) -> None:
    pid = _detached(root, bundle, "c1", "sh", "-c", "sleep 60 & sleep 60 & wait")
    deadline = time.monotonic() + 5
    pids: list[int] = []
    while time.monotonic() < deadline:
        pids = json.loads(runtime(root, "ps", "--format", "json", "c1").stdout)
        if len(pids) == 3:
            break
        time.sleep(0.02)
    assert len(pids) == 3 and pid in pids
    table = runtime(root, "ps", "c1").stdout.splitlines()
    assert "PID" in table[0] and len(table) == 4
    runtime(root, "delete", "-f", "c1")


def test_update_changes_limits_of_a_running_container(root: Path, bundle: Path) -> None:
    _detached(root, bundle, "c1", "sleep", "60")
    mgr = _manager(root, "c1")
    runtime(root, "update", "--cpu-quota", "30000", "--cpu-period", "100000",
            "--pids-limit", "20", "--memory", "64m", "c1")
    cpu, pids, mem = mgr.paths["cpu"], mgr.paths["pids"], mgr.paths["memory"]
    assert Path(cpu, "cpu.cfs_quota_us").read_text().strip() == "30000"
    assert Path(pids, "pids.max").read_text().strip() == "20"
    assert Path(mem, "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
    bad = runtime(root, "update", "--pids-limit", "abc", "c1", check=False)
    assert bad.returncode == 1 and "pids-limit" in bad.stderr
    assert Path(pids, "pids.max").read_text().strip() == "20"  # left as it was
    runtime(root, "delete", "-f", "c1")


def test_update_from_resources_file(root: Path, bundle: Path, workdir: Path) -> None:
    _detached(root, bundle, "c1", "sleep", "60")
    res = workdir / "res.json"
    res.write_text(json.dumps({"pids": {"limit": 7}}))
    runtime(root, "update", "-r", str(res), "c1")
    assert Path(_manager(root, "c1").paths["pids"], "pids.max").read_text().strip() == "7"
    runtime(root, "delete", "-f", "c1")


def test_pause_stops_a_counter_and_resume_restarts_it(root: Path, bundle: Path) -> None:
    cfg = config(bundle)
    cfg["root"]["readonly"] = False
    write_config(bundle, cfg)
    # The counter is the file's size: one byte more every few milliseconds.
    _detached(root, bundle, "c1", "sh", "-c",
              "while true; do echo -n x >> /count; usleep 2000; done")
    counter = bundle / "rootfs" / "count"

    def read() -> int:
        for _ in range(200):
            if counter.exists() and counter.stat().st_size:
                return counter.stat().st_size
            time.sleep(0.01)
        raise AssertionError("counter never written")

    read()
    runtime(root, "pause", "c1")
    assert state(root, "c1")["status"] == "paused"
    first = read()
    time.sleep(0.3)
    assert read() == first  # frozen: not a single increment
    runtime(root, "resume", "c1")
    assert state(root, "c1")["status"] == "running"
    time.sleep(0.3)
    assert read() > first
    again = runtime(root, "resume", "c1", check=False)
    assert again.returncode == 1 and "running" in again.stderr
    runtime(root, "delete", "-f", "c1")


def test_events_stats_sample(root: Path, bundle: Path) -> None:
    _detached(root, bundle, "c1", "sleep", "60")
    event = json.loads(runtime(root, "events", "--stats", "c1").stdout)
    assert event["type"] == "stats" and event["id"] == "c1"
    data = event["data"]
    assert data["pids"]["current"] >= 1
    assert data["memory"]["usage"]["usage"] > 0
    assert "cpu" in data
    runtime(root, "delete", "-f", "c1")


def test_kill_all_reaches_every_process(root: Path, bundle: Path) -> None:
    # Without a pid namespace, killing the init would leave its children.
    cfg = config(bundle)
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]
    write_config(bundle, cfg)
    _detached(root, bundle, "c1", "sh", "-c", "sleep 60 & sleep 60 & wait")
    mgr = _manager(root, "c1")
    deadline = time.monotonic() + 5
    while len(mgr.pids()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    runtime(root, "kill", "--all", "c1", "KILL")
    deadline = time.monotonic() + 5
    while mgr.pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mgr.pids() == []
    runtime(root, "delete", "c1")
