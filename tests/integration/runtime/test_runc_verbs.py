"""kill, list, update and delete as runc has them, side by side with runc 1.1."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from .rt import runtime, state
from .rt_extra import cid, edit, wait_for, wait_stopped
from .runc_side import needs_runc, runc, runc_root  # noqa: F401 (fixture)

OURS, THEIRS = cid("t"), cid("r")  # the same length: the same table columns


def _sleeper(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].update(args=["sleep", "60"]))


def test_kill_0_and_kill_all_of_a_stopped_container_succeed(root: Path, bundle: Path) -> None:
    _sleeper(bundle)
    runtime(root, "run", "-d", "--bundle", str(bundle), OURS)
    try:
        assert runtime(root, "kill", OURS, "0").returncode == 0  # running: it is there
        runtime(root, "kill", OURS, "KILL")
        wait_stopped(root, OURS)
        for argv in (["kill", OURS, "0"], ["kill", "--all", OURS, "0"],
                     ["kill", "--all", OURS, "9"], ["kill", "-a", OURS, "KILL"]):
            proc = runtime(root, *argv, check=False)
            assert proc.returncode == 0, (argv, proc.stderr)
        plain = runtime(root, "kill", OURS, "TERM", check=False)
        assert plain.returncode == 1 and "container not running" in plain.stderr
        assert state(root, OURS)["status"] == "stopped"
    finally:
        runtime(root, "delete", "--force", OURS)


@needs_runc
def test_list_is_runcs(root: Path, bundle: Path, runc_root: Path) -> None:  # noqa: F811
    empty_ours = runtime(root, "list").stdout
    empty_theirs = runc(runc_root, "list").stdout
    assert empty_ours == empty_theirs  # the header alone
    assert runtime(root, "list", "-f", "json").stdout == runc(runc_root, "list", "-f",
                                                             "json").stdout == "null\n"
    _sleeper(bundle)
    runtime(root, "run", "-d", "--bundle", str(bundle), OURS)
    runc(runc_root, "run", "-d", "--bundle", str(bundle), THEIRS)
    try:
        ours = runtime(root, "list").stdout.splitlines()
        theirs = runc(runc_root, "list").stdout.splitlines()

        def tabwriter(lines: list[str]) -> list[str]:
            """Go's tabwriter(minwidth 12, padding 3) over the same cells."""
            rows = [line.split() for line in lines]
            widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(5)]
            return ["".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + r[5]
                    for r in rows]
        assert len(ours) == len(theirs) == 2
        assert ours[0].split() == theirs[0].split()
        assert ours == tabwriter(ours) and theirs == tabwriter(theirs), (ours, theirs)
        assert ours[1].split()[2:4] == theirs[1].split()[2:4] == ["running", str(bundle)]
        assert ours[1].split()[5] == theirs[1].split()[5] == "root"
        mine = json.loads(runtime(root, "list", "--format", "json").stdout)
        runcs = json.loads(runc(runc_root, "list", "--format", "json").stdout)
        assert [list(m) for m in mine] == [list(r) for r in runcs]
        assert runtime(root, "list", "-q").stdout == f"{OURS}\n"
    finally:
        runtime(root, "delete", "--force", OURS)
        runc(runc_root, "delete", "--force", THEIRS)


def _cgroup_file(pid: int, controller: str, name: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path(f"/sys/fs/cgroup/{controller}{path}/{name}").read_text().strip()
    raise AssertionError(f"no {controller} cgroup for {pid}")


def test_update_of_device_rules_takes_effect_at_once(root: Path, bundle: Path,
                                                     workdir: Path) -> None:
    """runc's update leaves devices alone; the spec's update takes linux.resources, and
    a device denied by it cannot be opened afterwards (the default devices stay)."""
    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["args"] = ["sleep", "60"]
        cfg["process"]["capabilities"]["bounding"].append("CAP_MKNOD")
        cfg["process"]["capabilities"]["effective"].append("CAP_MKNOD")
        cfg["process"]["capabilities"]["permitted"].append("CAP_MKNOD")
        cfg["linux"]["resources"] = {"devices": [{"allow": True, "access": "rwm"}]}
    edit(bundle, fn)
    runtime(root, "run", "-d", "--bundle", str(bundle), OURS)
    # a loop device: denied, opening it says EPERM; allowed, it opens (or ENXIO)
    probe = ["sh", "-c", "head -c0 /dev/probe 2>&1 | grep -c 'not permitted'; "
                         "echo x > /dev/null && echo null-ok"]
    try:
        runtime(root, "exec", OURS, "mknod", "/dev/probe", "b", "7", "0")
        assert runtime(root, "exec", OURS, *probe).stdout.split() == ["0", "null-ok"]
        res = workdir / "deny-all.json"
        res.write_text(json.dumps({"devices": [{"allow": False, "access": "rwm"}]}))
        runtime(root, "update", "-r", str(res), OURS)
        assert runtime(root, "exec", OURS, *probe).stdout.split() == ["1", "null-ok"]
    finally:
        runtime(root, "delete", "--force", OURS)


def test_update_of_a_paused_container_leaves_it_paused(root: Path, bundle: Path) -> None:
    _sleeper(bundle)
    runtime(root, "run", "-d", "--bundle", str(bundle), OURS)
    try:
        pid = state(root, OURS)["pid"]
        runtime(root, "pause", OURS)
        runtime(root, "update", "--memory", "64m", "--pids-limit", "50", OURS)
        assert state(root, OURS)["status"] == "paused"
        assert _cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
        assert _cgroup_file(pid, "pids", "pids.max") == "50"
        runtime(root, "resume", OURS)
        assert state(root, OURS)["status"] == "running"
    finally:
        runtime(root, "delete", "--force", OURS)


# (flags, {(controller, file): value}) applied by both runtimes; the same files after.
UPDATES: list[tuple[list[str], dict[tuple[str, str], str]]] = [
    (["--memory", "64m", "--memory-swap", "128m", "--memory-reservation", "32m"],
     {("memory", "memory.limit_in_bytes"): str(64 << 20),
      ("memory", "memory.soft_limit_in_bytes"): str(32 << 20)}),
    (["--cpu-share", "512", "--cpu-period", "50000", "--cpu-quota", "25000"],
     {("cpu", "cpu.shares"): "512", ("cpu", "cpu.cfs_period_us"): "50000",
      ("cpu", "cpu.cfs_quota_us"): "25000"}),
    (["--cpu-quota", "10000"], {("cpu", "cpu.cfs_quota_us"): "10000",
                                ("cpu", "cpu.cfs_period_us"): "100000"}),
    (["--pids-limit", "77"], {("pids", "pids.max"): "77"}),
    (["--cpuset-cpus", "0", "--cpuset-mems", "0"],
     {("cpuset", "cpuset.cpus"): "0", ("cpuset", "cpuset.mems"): "0"}),
    (["--cpu-rt-period", "100000", "--cpu-rt-runtime", "2000"],
     {("cpu", "cpu.rt_period_us"): "100000", ("cpu", "cpu.rt_runtime_us"): "2000"}),
    (["--memory", "-1"], {("memory", "memory.limit_in_bytes"): "9223372036854771712"}),
    (["--kernel-memory", "10m"], {}),
]


@needs_runc
@pytest.mark.parametrize("flags,files", UPDATES, ids=[" ".join(u[0]) for u in UPDATES])
def test_update_flags_as_runc(root: Path, bundle: Path, runc_root: Path,  # noqa: F811
                              flags: list[str], files: dict[tuple[str, str], str]) -> None:
    if any("rt_" in name for _, name in files) and \
            not os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        pytest.skip("no CONFIG_RT_GROUP_SCHED here")
    _sleeper(bundle)
    runtime(root, "run", "-d", "--bundle", str(bundle), OURS)
    runc(runc_root, "run", "-d", "--bundle", str(bundle), THEIRS)
    try:
        ours = runtime(root, "update", *flags, OURS, check=False)
        theirs = runc(runc_root, "update", *flags, THEIRS, check=False)
        assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
        for who, pid in ((OURS, state(root, OURS)["pid"]),
                         (THEIRS, json.loads(runc(runc_root, "state", THEIRS).stdout)["pid"])):
            got = {key: _cgroup_file(pid, *key) for key in files}
            assert got == files, who
    finally:
        runtime(root, "delete", "--force", OURS)
        runc(runc_root, "delete", "--force", THEIRS)


BAD_UPDATES = [["--memory", "lots"], ["--cpu-period", "-5"], ["--cpu-quota", "x"],
               ["--pids-limit", "many"], ["--cpu-rt-runtime", "2.5"],
               ["--blkio-weight", "five"], ["--memory", "64m", "--memory-swap", "32m"]]


@needs_runc
def test_bad_update_values_fail_as_with_runc(root: Path, bundle: Path,
                                             runc_root: Path) -> None:  # noqa: F811
    _sleeper(bundle)
    runtime(root, "run", "-d", "--bundle", str(bundle), OURS)
    runc(runc_root, "run", "-d", "--bundle", str(bundle), THEIRS)
    try:
        for flags in BAD_UPDATES:
            ours = runtime(root, "update", *flags, OURS, check=False)
            theirs = runc(runc_root, "update", *flags, THEIRS, check=False)
            assert theirs.returncode != 0, (flags, theirs.stderr)
            assert ours.returncode == 1, (flags, ours.stderr)
            lines = ours.stderr.strip().splitlines()
            assert len(lines) == 1 and flags[-2].lstrip("-") in lines[0], (flags, ours.stderr)
        assert state(root, OURS)["status"] == "running"
    finally:
        runtime(root, "delete", "--force", OURS)
        runc(runc_root, "delete", "--force", THEIRS)


def test_delete_force_removes_sub_cgroups_the_container_made(root: Path,
                                                             bundle: Path) -> None:
    """A container that owns its cgroups (cgroupns, rw mount) makes sub-cgroups and moves
    processes into them; `delete --force` takes them all, processes and directories."""
    script = ("for d in /sys/fs/cgroup/*/; do case $d in *unified*|*systemd*) continue;; "
              "esac; mkdir -p $d/sub/deeper && echo $$ > $d/sub/deeper/cgroup.procs "
              "2>/dev/null; done; sleep 60 & sleep 60")

    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["args"] = ["sh", "-c", script]
        cgroup = next(m for m in cfg["mounts"] if m["type"] == "cgroup")
        cgroup["options"] = [o for o in cgroup["options"] if o != "ro"] + ["rw"]
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                      if ns["type"] != "pid"]  # the hard case: no pid ns
    edit(bundle, fn)
    runtime(root, "run", "-d", "--bundle", str(bundle), OURS)
    pid = state(root, OURS)["pid"]

    def cgroups_of_pid() -> list[Path]:
        out = []
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            ctrl = ctrls.split(",")[0]
            if ctrl in ("pids", "memory", "cpu", "freezer", "devices"):
                out.append(Path(f"/sys/fs/cgroup/{ctrl}{path}"))
        return out

    assert wait_for(lambda: all(d.name == "deeper" for d in cgroups_of_pid())), \
        cgroups_of_pid()
    subs = cgroups_of_pid()
    runtime(root, "delete", "--force", OURS)
    assert not any(d.exists() or d.parent.exists() for d in subs)
