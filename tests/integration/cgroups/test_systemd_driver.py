"""tomato-runtime --systemd-cgroup: containers as transient systemd scopes.

Where systemd is PID 1 (the cgroup2 guest's second phase, tools/cgroup2-vm: v2, and
v1 with test-legacy) the lifecycle is checked through systemd's eyes (`systemctl
show`) and the kernel's (the cgroup files): the unit and its properties, the limits
in the files, `update`, a daemon-reload that must not undo them, and nothing left
after delete.  Without systemd (this development machine) the flag fails in one
line, runc's, and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tomato.cgroups.systemd import NOT_RUNNING, is_running_systemd

VENV_RUNTIME = Path(sys.executable).parent / "tomato-runtime"
# In the guest there is no venv: the runtime runs from the source tree (PYTHONPATH).
RUNTIME = [str(VENV_RUNTIME)] if VENV_RUNTIME.exists() else \
    [sys.executable, "-m", "tomato.cli.runtime"]
CGROUP_ROOT = "/sys/fs/cgroup"


def _root_is_initramfs() -> bool:
    """pivot_root cannot leave the initial rootfs (the guest's root): runc's answer
    there is --no-pivot, ours too."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/" and fields[fields.index("-") + 1] == "rootfs":
                return True
    return False


NO_PIVOT = _root_is_initramfs()

needs_systemd = pytest.mark.skipif(not is_running_systemd(),
                                   reason="systemd is not PID 1 here (the cgroup2 guest's "
                                          "systemd phase runs these: tools/cgroup2-vm)")


def rt(root: Path, *args: str, check: bool = True, timeout: float = 120,
       stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """tomato-runtime as containerd runs it; a created container keeps the stdio it
    inherits, so that goes to files, never pipes."""
    verb = next((i for i, a in enumerate(args) if a in ("create", "run")), None)
    if NO_PIVOT and verb is not None:
        args = (*args[:verb + 1], "--no-pivot", *args[verb + 1:])
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run([*RUNTIME, "--root", str(root), *args], stdout=out, stderr=err,
                              input=stdin, stdin=None if stdin is not None else
                              subprocess.DEVNULL, text=True, timeout=timeout)
        out.seek(0)
        err.seek(0)
        proc.stdout, proc.stderr = out.read(), err.read()
    if check and proc.returncode != 0:
        raise AssertionError(f"tomato-runtime {' '.join(args)}: exit {proc.returncode}: "
                             f"{proc.stderr}")
    return proc


def configure(bundle: Path, args: list[str], resources: dict | None = None,
              cgroups_path: str | None = None, annotations: dict | None = None) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["args"] = args
    if resources is not None:
        cfg["linux"]["resources"] = {**cfg["linux"].get("resources", {}), **resources}
    if cgroups_path is not None:
        cfg["linux"]["cgroupsPath"] = cgroups_path
    if annotations:
        cfg["annotations"] = annotations
    (bundle / "config.json").write_text(json.dumps(cfg))


def state(root: Path, cid: str) -> dict[str, Any]:
    return json.loads(rt(root, "state", cid).stdout)


def saved_cgroup(root: Path, cid: str) -> dict[str, Any]:
    """The state file's cgroup record (what kill/delete/pause read)."""
    return json.loads((root / cid / "state.json").read_text())["cgroup"]


def show(unit: str, *names: str) -> dict[str, str]:
    out = subprocess.run(["systemctl", "show", unit, *(f"--property={n}" for n in names)],
                         capture_output=True, text=True, check=True).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, eq, value = line.partition("=")
        if eq:  # a list (DeviceAllow) comes as one line an item
            found[name] = f"{found[name]}; {value}" if name in found else value
    return found


def wait_for(predicate: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def unit_gone(unit: str) -> bool:
    return show(unit, "LoadState")["LoadState"] == "not-found"


def directories(cg: dict[str, Any]) -> list[str]:
    return [cg["path"]] if cg["version"] == 2 else sorted(set(cg["paths"].values()))


def limits(cg: dict[str, Any]) -> dict[str, str]:
    """The container's limits as the kernel holds them, in one shape for v1 and v2."""
    def read(ctrl: str, name: str) -> str:
        d = cg["path"] if cg["version"] == 2 else cg["paths"].get(ctrl)
        try:
            return Path(d, name).read_text().strip() if d else ""
        except OSError:
            return ""

    if cg["version"] == 2:
        quota, _, period = read("cpu", "cpu.max").partition(" ")
        return {"memory": read("memory", "memory.max"), "pids": read("pids", "pids.max"),
                "quota": quota, "period": period, "weight": read("cpu", "cpu.weight"),
                "cpus": read("cpuset", "cpuset.cpus")}
    return {"memory": read("memory", "memory.limit_in_bytes"), "pids": read("pids", "pids.max"),
            "quota": read("cpu", "cpu.cfs_quota_us"), "period": read("cpu", "cpu.cfs_period_us"),
            "weight": read("cpu", "cpu.shares"), "cpus": read("cpuset", "cpuset.cpus")}


@pytest.fixture
def root(runtime_root: Path) -> Iterator[Path]:
    yield runtime_root
    for cid in os.listdir(runtime_root):
        rt(runtime_root, "delete", "--force", cid, check=False)


@pytest.fixture
def cid() -> str:
    return f"sd{uuid.uuid4().hex[:10]}"


def _cgroups_named(text: str) -> list[str]:
    found = []
    for dirpath, dirnames, _ in os.walk(CGROUP_ROOT):
        if dirpath.count("/") > 9:
            dirnames[:] = []
        found += [os.path.join(dirpath, d) for d in dirnames if text in d]
    return found


# ---- no systemd: one line, nothing left ----------------------------------------------

@pytest.mark.skipif(is_running_systemd(), reason="systemd is running here")
@pytest.mark.parametrize("verb", ["run", "create"])
def test_without_systemd_one_line_and_nothing_left(root: Path, bundle: Path, cid: str,
                                                   verb: str) -> None:
    configure(bundle, ["true"])
    done = rt(root, "--systemd-cgroup", verb, "--bundle", str(bundle), cid, check=False)
    assert done.returncode == 1
    assert done.stderr == f"tomato-runtime: {NOT_RUNNING}\n"
    assert os.listdir(root) == []
    assert _cgroups_named(cid) == []


def test_without_the_flag_a_systemd_path_is_still_refused(root: Path, bundle: Path,
                                                          cid: str) -> None:
    configure(bundle, ["true"], cgroups_path="system.slice:tomato:x")
    done = rt(root, "run", "--bundle", str(bundle), cid, check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "must be a plain path" in done.stderr
    assert os.listdir(root) == []


# ---- systemd as PID 1 ----------------------------------------------------------------------

LIMITS = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50},
          "cpu": {"shares": 512, "quota": 25000, "period": 100000, "cpus": "0"}}


@needs_systemd
def test_create_start_kill_delete(root: Path, bundle: Path, cid: str) -> None:
    configure(bundle, ["sleep", "1000"], LIMITS)
    rt(root, "--systemd-cgroup", "create", "--bundle", str(bundle), cid)
    unit = f"tomato-{cid}.scope"
    cg = saved_cgroup(root, cid)
    assert (cg["driver"], cg["unit"], cg["slice"]) == ("systemd", unit, "system.slice")
    v2 = cg["version"] == 2
    props = show(unit, "ActiveState", "Slice", "Delegate", "ControlGroup", "Description",
                 "TasksMax", "CPUQuotaPerSecUSec", "DevicePolicy", "MemoryMax", "MemoryLimit",
                 "CPUWeight", "CPUShares", "AllowedCPUs")
    assert props["ActiveState"] == "active"
    assert props["Slice"] == "system.slice" and props["Delegate"] == "yes"
    assert props["ControlGroup"] == f"/system.slice/{unit}"
    assert props["Description"] == f"tomato container {cid}"
    assert props["TasksMax"] == "50" and props["CPUQuotaPerSecUSec"] == "250ms"
    assert props["DevicePolicy"] == "strict"
    if v2:
        assert props["MemoryMax"] == str(64 << 20) and props["CPUWeight"] == "20"
        assert props["AllowedCPUs"] == "0"
    else:
        assert props["MemoryLimit"] == str(64 << 20) and props["CPUShares"] == "512"
    assert limits(cg) == {"memory": str(64 << 20), "pids": "50", "quota": "25000",
                          "period": "100000", "weight": "20" if v2 else "512", "cpus": "0"}
    pid = state(root, cid)["pid"]
    own = Path(f"/proc/{pid}/cgroup").read_text()
    assert f"/system.slice/{unit}\n" in own
    for d in directories(cg):  # v1: also the controllers systemd leaves alone (freezer ...)
        assert str(pid) in Path(d, "cgroup.procs").read_text().split(), d

    rt(root, "start", cid)
    assert state(root, cid)["status"] == "running"
    rt(root, "kill", cid, "KILL")
    wait_for(lambda: state(root, cid)["status"] == "stopped", "the init to die")
    rt(root, "kill", "--all", cid, "9")  # containerd's shim after every exit
    rt(root, "delete", cid)
    assert not (root / cid).exists()
    wait_for(lambda: unit_gone(unit), f"{unit} to go")
    assert [d for d in directories(cg) if os.path.exists(d)] == []


@needs_systemd
def test_a_daemon_reload_keeps_the_limits_and_the_device_rules(root: Path, bundle: Path,
                                                               cid: str) -> None:
    """systemd rewrites what it knows from the unit's properties on a reload: the
    properties must say what the files say, device rules included."""
    configure(bundle, ["sleep", "1000"], LIMITS)
    rt(root, "--systemd-cgroup", "run", "--detach", "--bundle", str(bundle), cid)
    cg = saved_cgroup(root, cid)
    before = limits(cg)
    probe = ("echo ok > /dev/null && rm -f /dev/xmem && mknod /dev/xmem c 1 1 && "
             "{ head -c1 /dev/xmem >/dev/null 2>&1 && echo opened || echo denied; }")
    assert rt(root, "exec", "--cap", "CAP_MKNOD", cid, "sh", "-c", probe).stdout == "denied\n"
    allowed = show(cg["unit"], "DeviceAllow")["DeviceAllow"]
    assert "/dev/char/1:3 rwm" in allowed
    subprocess.run(["systemctl", "daemon-reload"], check=True, timeout=120)
    assert limits(cg) == before
    assert rt(root, "exec", "--cap", "CAP_MKNOD", cid, "sh", "-c", probe).stdout == "denied\n"
    rt(root, "delete", "--force", cid)
    wait_for(lambda: unit_gone(cg["unit"]), "the unit to go")


@needs_systemd
def test_update_changes_the_unit_and_the_files(root: Path, bundle: Path, cid: str) -> None:
    configure(bundle, ["sleep", "1000"], LIMITS)
    rt(root, "--systemd-cgroup", "run", "--detach", "--bundle", str(bundle), cid)
    cg = saved_cgroup(root, cid)
    rt(root, "update", "--memory", str(128 << 20), "--pids-limit", "70", "--cpu-quota", "50000",
       "--cpu-share", "1024", cid)
    props = show(cg["unit"], "TasksMax", "CPUQuotaPerSecUSec", "MemoryMax", "MemoryLimit",
                 "CPUWeight", "CPUShares")
    assert props["TasksMax"] == "70" and props["CPUQuotaPerSecUSec"] == "500ms"
    v2 = cg["version"] == 2
    assert props["MemoryMax" if v2 else "MemoryLimit"] == str(128 << 20)
    assert props["CPUWeight" if v2 else "CPUShares"] == ("39" if v2 else "1024")
    now = limits(cg)
    assert (now["memory"], now["pids"], now["quota"], now["weight"]) == \
        (str(128 << 20), "70", "50000", "39" if v2 else "1024")
    subprocess.run(["systemctl", "daemon-reload"], check=True, timeout=120)
    assert limits(cg) == now
    rt(root, "delete", "--force", cid)
    wait_for(lambda: unit_gone(cg["unit"]), "the unit to go")


@needs_systemd
def test_slice_prefix_name_pause_and_force_delete(root: Path, bundle: Path, cid: str) -> None:
    configure(bundle, ["sleep", "1000"], cgroups_path=f"tomato-t.slice:pfx:{cid}")
    unit = f"pfx-{cid}.scope"
    try:
        rt(root, "--systemd-cgroup", "run", "--detach", "--bundle", str(bundle), cid)
        props = show(unit, "Slice", "ControlGroup")
        assert props == {"Slice": "tomato-t.slice",
                         "ControlGroup": f"/tomato.slice/tomato-t.slice/{unit}"}
        rt(root, "pause", cid)
        assert state(root, cid)["status"] == "paused"
        rt(root, "resume", cid)
        assert state(root, cid)["status"] == "running"
        assert rt(root, "exec", cid, "echo", "in").stdout == "in\n"
        cg = saved_cgroup(root, cid)
        rt(root, "delete", "--force", cid)
        wait_for(lambda: unit_gone(unit), f"{unit} to go")
        assert [d for d in directories(cg) if os.path.exists(d)] == []
    finally:
        # The slices are the caller's (kubelet's pod slices), as with runc: ours to stop.
        subprocess.run(["systemctl", "stop", "tomato.slice"], capture_output=True, timeout=120)


@needs_systemd
def test_a_foreground_run_that_exits_leaves_nothing(root: Path, bundle: Path, cid: str) -> None:
    configure(bundle, ["sh", "-c", "exit 3"])
    assert rt(root, "--systemd-cgroup", "run", "--bundle", str(bundle), cid,
              check=False).returncode == 3
    assert os.listdir(root) == []
    wait_for(lambda: unit_gone(f"tomato-{cid}.scope"), "the unit to go")
    assert _cgroups_named(cid) == []


@needs_systemd
def test_annotations_are_unit_properties(root: Path, bundle: Path, cid: str) -> None:
    configure(bundle, ["sleep", "1000"], annotations={
        "org.systemd.property.TimeoutStopUSec": "uint64 123456789",
        "org.systemd.property.CollectMode": "'inactive-or-failed'"})
    rt(root, "--systemd-cgroup", "run", "--detach", "--bundle", str(bundle), cid)
    props = show(f"tomato-{cid}.scope", "TimeoutStopUSec", "CollectMode")
    assert props == {"TimeoutStopUSec": "2min 3.456789s", "CollectMode": "inactive-or-failed"}
    rt(root, "delete", "--force", cid)


@needs_systemd
@pytest.mark.parametrize(("path", "annotations", "words"), [
    # refused before anything is made (the other names: tests/unit/cgroups)
    ("/plain/path", {}, 'expected cgroupsPath to be of format "slice:prefix:name" for systemd '
                        'cgroups, got "/plain/path" instead'),
    # refused by systemd, once the init exists: rolled back
    ("", {"org.systemd.property.NoSuchProperty": "true"}, "unable to start unit"),
])
def test_bad_input_one_line_and_nothing_left(root: Path, bundle: Path, cid: str, path: str,
                                             annotations: dict, words: str) -> None:
    configure(bundle, ["sleep", "1000"], cgroups_path=path, annotations=annotations)
    done = rt(root, "--systemd-cgroup", "run", "--detach", "--bundle", str(bundle), cid,
              check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("tomato-runtime: ") and done.stderr.count("\n") == 1
    assert words in done.stderr
    assert os.listdir(root) == []
    assert unit_gone(f"tomato-{cid}.scope")
    assert _cgroups_named(cid) == []


@needs_systemd
def test_a_unit_name_in_use_is_refused_and_the_first_keeps_running(root: Path, bundle: Path,
                                                                   cid: str) -> None:
    configure(bundle, ["sleep", "1000"], cgroups_path=f":tomato:{cid}")
    rt(root, "--systemd-cgroup", "run", "--detach", "--bundle", str(bundle), cid)
    done = rt(root, "--systemd-cgroup", "run", "--detach", "--bundle", str(bundle),
              cid + "b", check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert f"unable to start unit tomato-{cid}.scope: " in done.stderr
    assert "already loaded" in done.stderr
    assert not (root / (cid + "b")).exists()
    assert state(root, cid)["status"] == "running"
    assert show(f"tomato-{cid}.scope", "ActiveState")["ActiveState"] == "active"
    rt(root, "delete", "--force", cid)


@needs_systemd
def test_the_system_bus_path(workdir: Path) -> None:
    """Through dbus-daemon rather than systemd's private socket: Hello, AddMatch,
    Subscribe, a transient scope started and stopped, the jobs' ends awaited."""
    if shutil.which("dbus-daemon") is None:
        pytest.skip("no dbus-daemon (Debian's dbus package)")
    subprocess.run(["systemctl", "start", "dbus.socket", "dbus.service"], check=True,
                   timeout=120)
    from tomato.cgroups.dbus import MANAGER, SYSTEMD, SYSTEMD_PATH, Connection, Variant

    sleeper = subprocess.Popen(["sleep", "1000"])
    unit = f"tomato-bus-{uuid.uuid4().hex[:8]}.scope"
    try:
        with Connection.systemd(timeout=30, private=False) as bus:
            assert bus.unique_name.startswith(":")
            job = bus.call(SYSTEMD, SYSTEMD_PATH, MANAGER, "StartTransientUnit",
                           "ssa(sv)a(sa(sv))",
                           [unit, "replace", [("PIDs", Variant("au", [sleeper.pid])),
                                              ("Delegate", Variant("b", True))], []])[0]
            assert bus.wait_job(str(job)) == "done"
            assert f"/system.slice/{unit}\n" in Path(f"/proc/{sleeper.pid}/cgroup").read_text()
            job = bus.call(SYSTEMD, SYSTEMD_PATH, MANAGER, "StopUnit", "ss",
                           [unit, "replace"])[0]
            assert bus.wait_job(str(job)) == "done"
        assert sleeper.wait(timeout=30) == -signal.SIGTERM  # the scope's stop kills it
        wait_for(lambda: unit_gone(unit), f"{unit} to go")
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
