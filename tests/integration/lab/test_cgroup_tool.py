"""`tomato cgroup create|set|get|exec|stats|delete` on this host's real hierarchies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from tomato.lab.cgtool import CgroupTool


def _dirs(group: str, ctrls=("cpu", "cpuacct")) -> list[str]:
    return [p.directory for p in CgroupTool().places(tuple(ctrls), group)]


def test_create_set_get_delete(tomato, lab_group):
    g = f"{lab_group}/my"
    tomato("cgroup", "create", "-g", f"cpu,cpuacct,memory:{g}")
    assert all(os.path.isdir(d) for d in _dirs(g, ("cpu", "cpuacct", "memory")))
    tomato("cgroup", "set", "-r", "cpu.cfs_quota_us=30000", g)
    cpu_dir = _dirs(g, ("cpu",))[0]
    version = CgroupTool().place("cpu", g).version
    if version == 1:
        assert open(os.path.join(cpu_dir, "cpu.cfs_quota_us")).read().strip() == "30000"
    else:
        assert open(os.path.join(cpu_dir, "cpu.max")).read().split()[0] == "30000"
    r = tomato("cgroup", "get", "-r", "cpu.cfs_quota_us", "-r", "cpu.max", g)
    assert r.stdout == f"{g}:\ncpu.cfs_quota_us: 30000\ncpu.max: 30000 100000\n"
    # The v2 spelling, on whatever this host has.
    tomato("cgroup", "set", "-r", "cpu.max=50000 200000", g)
    assert tomato("cgroup", "get", "-v", "-r", "cpu.cfs_quota_us", "-r", "cpu.cfs_period_us",
                  g).stdout == "50000\n200000\n"
    tomato("cgroup", "set", "-r", "memory.limit_in_bytes=64M", g)  # the kernel parses 64M
    assert tomato("cgroup", "get", "-n", "-r", "memory.max", g).stdout == \
        f"memory.max: {64 << 20}\n"
    r = tomato("cgroup", "delete", "-g", f"cpu,cpuacct,memory:{lab_group}", check=False)
    assert r.returncode == 1 and "child groups" in r.stderr
    tomato("cgroup", "delete", "-r", "-g", f"cpu,cpuacct,memory:{lab_group}")
    assert not any(os.path.exists(d) for d in _dirs(lab_group, ("cpu", "cpuacct", "memory")))


def test_explain_lists_what_exists(tomato, lab_group):
    g = f"{lab_group}/x"
    r = tomato("cgroup", "create", "--explain=full", "-g", f"cpu,pids:{g}")
    made = [line.split('"')[1] for line in r.stderr.splitlines()]
    assert made and all(line.startswith('+ mkdir("') for line in r.stderr.splitlines())
    assert all(os.path.isdir(d) for d in made)
    assert set(_dirs(g, ("cpu", "pids"))) <= set(made)
    r = tomato("cgroup", "set", "--explain=full", "-r", "pids.max=7", g)
    pids_dir = _dirs(g, ("pids",))[0]
    assert r.stderr == (f'+ write("{pids_dir}/pids.max", "7") — '
                        f"echo 7 > {pids_dir}/pids.max\n")
    assert open(f"{pids_dir}/pids.max").read().strip() == "7"
    r = tomato("cgroup", "delete", "--explain=full", "-r", "-g", f"cpu,pids:{lab_group}")
    removed = [line.split('"')[1] for line in r.stderr.splitlines()]
    assert set(made) == set(removed)
    assert not any(os.path.exists(d) for d in removed)


def test_exec_places_the_command(tomato, lab_group):
    g = f"{lab_group}/e"
    tomato("cgroup", "create", "-g", f"cpu,cpuacct,pids:{g}")
    r = tomato("cgroup", "exec", "-g", f"cpu,cpuacct,pids:{g}", "cat", "/proc/self/cgroup")
    lines = {tuple(line.split(":", 2)[1].split(",")): line.split(":", 2)[2]
             for line in r.stdout.splitlines()}
    for ctrl in ("cpu", "cpuacct", "pids"):
        path = next(v for k, v in lines.items() if ctrl in k)
        assert path == "/" + g, r.stdout


def test_stats_and_errors(tomato, lab_group):
    g = f"{lab_group}/s"
    tomato("cgroup", "create", g)
    out = dict(line.split(": ", 1) for line in tomato("cgroup", "stats", g).stdout.splitlines())
    assert out["cpu_usage_ns"] == "0" and out["pids"] == "0"
    r = tomato("cgroup", "create", "-g", f"net_cls:{lab_group}/n", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("tomato: cgroup controller net_cls is not mounted on this host")
    r = tomato("cgroup", "set", "-r", "cpu.cfs_quota_us=1", f"{lab_group}/none", check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = tomato("cgroup", "set", "-r", "cpu.cfs_quota_us=abc", g, check=False)
    assert r.returncode == 1 and "cpu.cfs_quota_us" in r.stderr and "Traceback" not in r.stderr
    r = tomato("cgroup", "create", "../etc", check=False)
    assert r.returncode == 1 and "no '..'" in r.stderr


def _share(tool: CgroupTool, group: str, seconds: float) -> float:
    t0, u0 = time.monotonic(), tool.stats(group)["cpu_usage_ns"] or 0
    time.sleep(seconds)
    t1, u1 = time.monotonic(), tool.stats(group)["cpu_usage_ns"] or 0
    return (u1 - u0) / 1e9 / (t1 - t0)


@pytest.mark.slow
def test_stress_held_at_30_percent(tomato, lab_group, workdir):
    """The note's experiment with the note's commands: cgset cpu.cfs_quota_us=30000, then
    stress -c 2 under cgexec: never above 30 % (+2) of one CPU, and near it in some
    window (other test sessions may load this 2-CPU machine)."""
    stress = shutil.which("stress")
    if stress is None:
        pytest.skip("Debian's stress is not installed (apt-get install stress)")
    g = f"{lab_group}/my"
    tomato("cgroup", "create", "-g", f"cpu,cpuacct:{g}")
    tomato("cgroup", "set", "-r", "cpu.cfs_quota_us=30000", "-r", "cpu.cfs_period_us=100000", g)
    p = subprocess.Popen([str(os.path.dirname(sys.executable)) + "/tomato", "cgroup", "exec",
                          "-g", f"cpu,cpuacct:{g}", stress, "-c", "2", "-t", "60"],
                         stdout=subprocess.DEVNULL)
    tool = CgroupTool()
    try:
        deadline = time.monotonic() + 10
        while len(tool.pids(("cpuacct",), g)) < 3:
            assert time.monotonic() < deadline, "stress workers did not start"
            time.sleep(0.02)
        time.sleep(0.5)
        shares = []
        for _ in range(5):
            shares.append(_share(tool, g, 2.0))
            assert shares[-1] <= 0.32, f"measured {shares} CPUs under a 30 % quota"
            if shares[-1] >= 0.28:
                break
        else:
            raise AssertionError(f"measured {shares} CPUs: never reached 28 %")
        assert (tool.stats(g)["nr_throttled"] or 0) > 0
        # The picture of it: a short plot, the quota drawn as a line.
        png = workdir / "cpu.png"
        r = tomato("cgroup", "stats", g, "--plot", str(png), "--duration", "2",
                   "--interval", "0.5", timeout=60)
        lines = r.stdout.splitlines()
        assert lines[0] == f"4 samples over 2 s, one every 0.5 s; wrote {png}"
        assert lines[1].startswith("CPU used: ") and " % of one CPU on average, " in lines[1]
        # what a quota means: an average per period (a sample may show a little more)
        assert lines[2] == "the quota: 30 ms of CPU time per 100 ms period, 30 % on average"
        assert len(lines) == 3  # no memory line: the group has no memory cgroup
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    finally:
        for pid in tool.pids(("cpuacct",), g):
            os.kill(pid, 9)
        p.wait(timeout=10)


@pytest.mark.slow
def test_container_stats_plot(tomato, workdir):
    """`tomato stats --plot`'s equivalent: a container's own groups, found from its pid."""
    tomato("rootfs", "from-host", "/bin/bash", "--into", str(workdir / "r"), "--image", "hot")
    try:
        tomato("run", "-d", "--name", "hot", "--cpus", "0.3", "-m", "64m", "--network", "none",
               "hot", "/bin/bash", "-c", "while :; do :; done", timeout=120)
        st = dict(line.split(": ", 1) for line in
                  tomato("cgroup", "stats", "--container", "hot").stdout.splitlines())
        assert st["cpu_quota_us"] == "30000" and st["cpu_period_us"] == "100000"
        assert st["memory_limit_bytes"] == str(64 << 20) and st["pids"] == "1"
        assert st["memory_failcnt"] == "0" and st["oom_kills"] == "0"
        png = workdir / "hot.png"
        r = tomato("cgroup", "stats", "--container", "hot", "--plot", str(png), "--duration",
                   "1", "--interval", "0.5", timeout=60)
        lines = r.stdout.splitlines()
        assert lines[0] == f"2 samples over 1 s, one every 0.5 s; wrote {png}"
        assert lines[2] == "the quota: 30 ms of CPU time per 100 ms period, 30 % on average"
        assert lines[3].startswith("memory: at most ") and \
            lines[3].endswith(" MiB under a 64 MiB limit")
        # the limit is the same file a cgroup of our own has: cgroup get --container
        assert tomato("cgroup", "get", "--container", "hot", "-r", "cpu.cfs_quota_us",
                      "-r", "memory.limit_in_bytes").stdout == \
            f"hot:\ncpu.cfs_quota_us: 30000\nmemory.limit_in_bytes: {64 << 20}\n"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        r = tomato("cgroup", "stats", "--container", "nope", check=False)
        assert r.returncode == 1 and "nope" in r.stderr
    finally:
        tomato("rm", "-f", "hot", check=False)
        tomato("rmi", "hot", check=False)
