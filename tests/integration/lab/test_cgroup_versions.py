"""CgroupTool on whatever this kernel has: v1 names and v2 names both work.

Library-level (no `tomato` executable), so the cgroup v2 lane can run it in its
pure-cgroup2 guest:
    TOMATO_CGROUP2_VM_TESTS=tests/integration/lab/test_cgroup_versions.py \\
        tools/cgroup2-vm/run.sh test
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tomato.errors import Unavailable
from tomato.lab.cgtool import CgroupTool
from tomato.lab.explain import Explainer, parse_steps

CTRLS = ("cpu", "cpuacct", "memory", "pids")


@pytest.fixture
def group() -> Iterator[str]:
    parent = f"tomato-lab-test-{uuid.uuid4().hex[:8]}"
    yield f"{parent}/g"
    tool = CgroupTool()
    for p in tool.places(CTRLS, parent):
        for dirpath, _d, _f in os.walk(p.directory):
            try:
                pids = open(os.path.join(dirpath, "cgroup.procs")).read().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
    deadline = time.monotonic() + 10
    for p in tool.places(CTRLS, parent):
        while os.path.isdir(p.directory):
            try:
                tool.delete((p.controller,), parent, recursive=True)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def _file(tool: CgroupTool, ctrl: str, group: str, name: str) -> str:
    with open(os.path.join(tool.place(ctrl, group).directory, name)) as f:
        return f.read().strip()


def test_both_spellings_on_this_kernel(group):
    out = io.StringIO()
    tool = CgroupTool(ex=Explainer(out))
    tool.create(CTRLS, group)
    made = [call.split('"')[1] for call, _ in parse_steps(out.getvalue())
            if call.startswith("mkdir(")]
    assert made and all(os.path.isdir(d) for d in made)
    v2 = tool.place("cpu", group).version == 2
    if v2:  # the controllers were enabled for the group in each ancestor
        parent = os.path.dirname(tool.place("cpu", group).directory)
        with open(os.path.join(parent, "cgroup.subtree_control")) as f:
            assert {"cpu", "memory", "pids"} <= set(f.read().split())
    tool.set(group, "cpu.cfs_quota_us", "30000")
    if v2:
        assert _file(tool, "cpu", group, "cpu.max") == "30000 100000"
    else:
        assert _file(tool, "cpu", group, "cpu.cfs_quota_us") == "30000"
    tool.set(group, "cpu.max", "50000 200000")
    assert tool.get(group, "cpu.cfs_quota_us") == "50000"
    assert tool.get(group, "cpu.cfs_period_us") == "200000"
    assert tool.get(group, "cpu.max") == "50000 200000"
    tool.set(group, "memory.limit_in_bytes", "64M")
    assert tool.get(group, "memory.max") == str(64 << 20)
    assert _file(tool, "memory", group, "memory.max" if v2 else "memory.limit_in_bytes") == \
        str(64 << 20)
    tool.set(group, "pids.max", "9")
    assert tool.stats(group)["pids"] == 0
    absent = next(c for c in ("net_cls", "net_prio", "rdma", "perf_event", "misc")
                  if c not in tool.mounted())
    with pytest.raises(Unavailable, match=f"{absent} is not mounted"):
        tool.place(absent, group)


@pytest.mark.slow
def test_stress_at_30_percent_by_v1_name(group):
    stress = shutil.which("stress")
    if stress is None:
        pytest.skip("Debian's stress is not installed (apt-get install stress)")
    tool = CgroupTool()
    tool.create(("cpu", "cpuacct"), group)
    tool.set(group, "cpu.cfs_quota_us", "30000")
    p = subprocess.Popen(["/bin/sh", "-c", 'read _ && exec "$@"', "sh", stress, "-c", "2",
                          "-t", "60"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        tool.attach(("cpu", "cpuacct"), group, p.pid)
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.close()
        deadline = time.monotonic() + 10
        while len(tool.pids(("cpuacct",), group)) < 3:
            assert time.monotonic() < deadline, "stress workers did not start"
            time.sleep(0.02)
        time.sleep(0.5)
        shares = []
        for _ in range(5):
            t0, u0 = time.monotonic(), tool.stats(group)["cpu_usage_ns"] or 0
            time.sleep(2.0)
            t1, u1 = time.monotonic(), tool.stats(group)["cpu_usage_ns"] or 0
            shares.append((u1 - u0) / 1e9 / (t1 - t0))
            assert shares[-1] <= 0.32, f"measured {shares} CPUs under a 30 % quota"
            if shares[-1] >= 0.28:
                break
        else:
            raise AssertionError(f"measured {shares} CPUs: never reached 28 %")
    finally:
        for pid in tool.pids(("cpuacct",), group):
            os.kill(pid, 9)
        p.wait(timeout=10)
