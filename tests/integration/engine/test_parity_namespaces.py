"""Issue 19, "Namespaces and cgroups, per container", through the real `tomato`: Docker's
--pid/--ipc/--uts/--userns/--cgroupns modes on the real kernel (namespace inodes compared
with the host's and with other containers'), --cgroup-parent, --volumes-from, --group-add,
the cgroup flags read back from the container's cgroup files, --privileged's devices,
`inspect`'s HostConfig as docker shows it and its Tomato.Namespaces, `--explain`'s setns
steps, and Docker's errors for what is refused."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Engine, until


def _info(engine: Engine, ref: str) -> dict:  # type: ignore[type-arg]
    return json.loads(engine.run("inspect", ref).stdout)[0]


def _host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


def _ns_of(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def _in_container(engine: Engine, *flags: str, cmd: str) -> str:
    return engine.run("run", "--rm", *flags, "busybox", "sh", "-c", cmd).stdout.strip()


def _cgroup_dir(pid: int, controller: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path(f"/sys/fs/cgroup/{controller}{path}")
    raise AssertionError(f"no {controller} hierarchy")


def _refused(engine: Engine, *args: str) -> str:
    proc = engine.run(*args, check=False)
    assert proc.returncode == 125, (args, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc.stderr


# -- pid ------------------------------------------------------------------------------
def test_pid_host_is_the_hosts_namespace_and_no_abbreviation(engine: Engine) -> None:
    inside = _in_container(engine, "--pid", "host", cmd="readlink /proc/self/ns/pid")
    assert inside == _host_ns("pid")
    own = _in_container(engine, cmd="readlink /proc/self/ns/pid")
    assert own != _host_ns("pid")
    # argparse's allow_abbrev once made --pid a --pids-limit: a prefix is no flag
    refused = _refused(engine, "run", "--rm", "--pi", "host", "busybox", "true")
    assert "unknown flag: --pi" in refused
    c = _info(engine, engine.run("create", "--pid", "host", "busybox", "true").stdout.strip())
    assert c["HostConfig"]["PidMode"] == "host"


def test_pid_container_joins_its_namespace(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "pidsrc", "busybox", "sleep", "300")
    src = _info(engine, "pidsrc")
    seen = _in_container(engine, "--pid", "container:pidsrc",
                         cmd="readlink /proc/self/ns/pid; ps -o comm")
    lines = seen.splitlines()
    assert lines[0] == _ns_of(src["State"]["Pid"], "pid")
    assert "sleep" in lines[1:]  # the other container's processes, pid 1 among them
    cid = engine.run("create", "--pid", "container:pidsrc", "busybox", "true").stdout.strip()
    assert _info(engine, cid)["HostConfig"]["PidMode"] == f"container:{src['Id']}"
    # the monitor that started it (the runtime in-process) is back in its own pid
    # namespace: it removes a detached --rm container (a thread it starts once failed)
    gone = engine.run("run", "-d", "--rm", "--pid", "container:pidsrc", "busybox",
                      "true").stdout.strip()
    assert until(lambda: gone not in engine.run("ps", "-aq", "--no-trunc").stdout)
    logs = Path(engine.root, "containers", gone, "monitor.log")
    assert not logs.exists() or "cleanup failed" not in logs.read_text()


def test_a_join_follows_its_donor_across_restarts(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "donor", "--ipc", "shareable", "busybox", "sleep", "300")
    engine.run("create", "--name", "joiner", "--pid", "container:donor", "--ipc",
               "container:donor", "busybox", "sleep", "300")
    engine.run("restart", "-t", "0", "donor")  # a new init, new namespaces
    engine.run("start", "joiner")
    donor, joiner = (_info(engine, n)["State"]["Pid"] for n in ("donor", "joiner"))
    for kind in ("pid", "ipc"):
        assert _ns_of(joiner, kind) == _ns_of(donor, kind)
    engine.run("rm", "-f", "joiner", "donor")


def test_pid_container_errors_are_dockers(engine: Engine) -> None:
    err = _refused(engine, "run", "--rm", "--pid", "container:nosuch", "busybox", "true")
    assert "No such container: nosuch" in err
    stopped = engine.run("create", "--name", "pidstopped", "busybox", "true").stdout.strip()
    # docker creates it, and fails the start (moby's WithNamespaces)
    err = _refused(engine, "run", "--name", "pidjoiner", "--pid", "container:pidstopped",
                   "busybox", "true")
    assert f"failed to join PID namespace: container {stopped} is not running" in err
    assert _info(engine, "pidjoiner")["State"]["Status"] == "created"
    assert "--pid: invalid PID mode" in _refused(engine, "run", "--pid", "bad", "busybox", "true")
    assert "--pid: invalid PID mode" in _refused(engine, "run", "--pid", "container:",
                                                 "busybox", "true")


# -- ipc ------------------------------------------------------------------------------
def test_ipc_modes(engine: Engine) -> None:
    assert _in_container(engine, "--ipc", "host", cmd="readlink /proc/self/ns/ipc") == \
        _host_ns("ipc")
    private = _in_container(engine, cmd="readlink /proc/self/ns/ipc; grep ' /dev/shm ' "
                                        "/proc/mounts")
    assert private.splitlines()[0] != _host_ns("ipc") and "tmpfs" in private
    none = engine.run("run", "--rm", "--ipc", "none", "busybox", "grep", " /dev/shm ",
                      "/proc/mounts", check=False)
    assert none.returncode == 1 and none.stdout == ""  # no /dev/shm at all
    assert "invalid IPC mode: bogus" in _refused(engine, "run", "--ipc", "bogus", "busybox", "true")
    c = _info(engine, engine.run("create", "busybox", "true").stdout.strip())
    assert c["HostConfig"]["IpcMode"] == "private"


def test_ipc_shareable_and_container_share_namespace_and_shm(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "ipcsrc", "--ipc", "shareable", "busybox", "sh", "-c",
               "echo from-donor > /dev/shm/note; sleep 300")
    src = _info(engine, "ipcsrc")
    out = _in_container(engine, "--ipc", "container:ipcsrc",
                        cmd="readlink /proc/self/ns/ipc; cat /dev/shm/note; "
                            "echo back > /dev/shm/reply")
    assert out.splitlines() == [_ns_of(src["State"]["Pid"], "ipc"), "from-donor"]
    reply = engine.run("exec", "ipcsrc", "cat", "/dev/shm/reply").stdout
    assert reply == "back\n"
    assert src["HostConfig"]["IpcMode"] == "shareable"
    engine.run("run", "-d", "--name", "ipcpriv", "busybox", "sleep", "300")
    err = _refused(engine, "run", "--rm", "--ipc", "container:ipcpriv", "busybox", "true")
    assert "non-shareable IPC (hint: use IpcMode:shareable for the donor container)" in err
    engine.run("rm", "-f", "ipcsrc")  # its /dev/shm tmpfs goes with it (the leak check)


# -- uts, userns, cgroupns --------------------------------------------------------------
def test_uts_userns_cgroupns(engine: Engine) -> None:
    out = _in_container(engine, "--uts", "host", cmd="hostname; readlink /proc/self/ns/uts")
    assert out.splitlines() == [os.uname().nodename, _host_ns("uts")]
    err = _refused(engine, "run", "--uts", "host", "-h", "other", "busybox", "true")
    assert "conflicting options: hostname and the UTS mode" in err
    assert "--uts: invalid UTS mode" in _refused(engine, "run", "--uts", "x", "busybox", "true")
    # Tomato makes no user namespace (no userns-remap): "host" is what every container has
    assert _in_container(engine, "--userns", "host", cmd="readlink /proc/self/ns/user") == \
        _host_ns("user")
    assert "--userns: invalid USER mode" in _refused(engine, "run", "--userns", "private",
                                                     "busybox", "true")
    assert _in_container(engine, "--cgroupns", "host", cmd="readlink /proc/self/ns/cgroup") \
        == _host_ns("cgroup")
    private = _in_container(engine, "--cgroupns", "private",
                            cmd="readlink /proc/self/ns/cgroup; cat /proc/self/cgroup")
    assert private.splitlines()[0] != _host_ns("cgroup")
    assert all(line.endswith(":/") for line in private.splitlines()[1:])
    assert "--cgroupns: invalid CGROUP mode" in _refused(engine, "run", "--cgroupns", "x",
                                                         "busybox", "true")
    cid = engine.run("create", "--uts", "host", "--userns", "host", "--cgroupns", "host",
                     "busybox", "true").stdout.strip()
    host = _info(engine, cid)["HostConfig"]
    assert (host["UTSMode"], host["UsernsMode"], host["CgroupnsMode"]) == \
        ("host", "host", "host")


# -- cgroups --------------------------------------------------------------------------
@pytest.fixture
def own_parent() -> Iterator[str]:
    """A cgroup parent of this test's own in every v1 controller it may touch (the
    runtime makes what is missing; whatever is left afterwards is removed here)."""
    name = f"tomato-test-{uuid.uuid4().hex[:8]}"
    yield f"/{name}"
    for controller in ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices",
                       "freezer"):
        path = Path(f"/sys/fs/cgroup/{controller}/{name}")
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.is_dir():
                    child.rmdir()
            path.rmdir()


def test_cgroup_parent_places_the_container(engine: Engine, own_parent: str) -> None:
    cid = engine.run("run", "-d", "--cgroup-parent", own_parent, "busybox", "sleep",
                     "300").stdout.strip()
    info = _info(engine, cid)
    assert info["HostConfig"]["CgroupParent"] == own_parent
    for controller in ("memory", "pids", "cpu"):
        assert _cgroup_dir(info["State"]["Pid"], controller) == \
            Path(f"/sys/fs/cgroup/{controller}{own_parent}/{cid}")
    engine.run("rm", "-f", cid)
    assert "invalid cgroup parent" in _refused(engine, "run", "--cgroup-parent", "../up",
                                               "busybox", "true")


def test_cgroup_flags_land_in_the_cgroup(engine: Engine) -> None:
    proc = engine.run("run", "-d", "--name", "limits", "-m", "64m", "--oom-kill-disable",
                      "--oom-score-adj", "500", "--memory-swappiness", "10",
                      "--cpu-period", "50000", "--cpu-quota", "25000", "--cpuset-mems", "0",
                      "--device-cgroup-rule", "c 42:* rm", "--blkio-weight", "300",
                      "busybox", "sleep", "300")
    info = _info(engine, "limits")
    pid = info["State"]["Pid"]
    mem = _cgroup_dir(pid, "memory")
    assert "oom_kill_disable 1" in (mem / "memory.oom_control").read_text()
    assert (mem / "memory.swappiness").read_text().strip() == "10"
    cpu = _cgroup_dir(pid, "cpu")
    assert (cpu / "cpu.cfs_period_us").read_text().strip() == "50000"
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "25000"
    assert (_cgroup_dir(pid, "cpuset") / "cpuset.mems").read_text().strip() == "0"
    assert "c 42:* rm" in (_cgroup_dir(pid, "devices") / "devices.list").read_text()
    # this host's root may not go below 0 (no CAP_SYS_RESOURCE): a positive adjustment
    assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == "500"
    if "CapEff" in Path("/proc/self/status").read_text():
        eff = int(next(line.split()[1] for line in
                       Path("/proc/self/status").read_text().splitlines()
                       if line.startswith("CapEff")), 16)
        if not eff & (1 << 24):  # refused in one line, never silently left at 0
            err = _refused(engine, "run", "--rm", "--oom-score-adj", "-500", "busybox", "true")
            assert "cannot set oom_score_adj to -500: a negative value needs " \
                   "CAP_SYS_RESOURCE" in err
    host = info["HostConfig"]
    assert (host["OomKillDisable"], host["OomScoreAdj"], host["MemorySwappiness"]) == \
        (True, 500, 10)
    assert (host["CpuPeriod"], host["CpuQuota"], host["CpusetMems"]) == (50000, 25000, "0")
    assert host["DeviceCgroupRules"] == ["c 42:* rm"]
    if not Path(_cgroup_dir(pid, "blkio") / "blkio.weight").exists():
        # no CFQ/BFQ here: docker warns and discards the weight
        assert "WARNING: Your kernel does not support Block I/O weight" in proc.stderr
        assert host["BlkioWeight"] == 0
    else:
        assert host["BlkioWeight"] == 300
    fresh = _info(engine, engine.run("create", "busybox", "true").stdout.strip())["HostConfig"]
    assert (fresh["MemorySwappiness"], fresh["OomKillDisable"]) == (None, False)


def test_cgroup_flag_errors_are_dockers(engine: Engine) -> None:
    cases = [
        (("--memory-swappiness", "101"), "Valid memory swappiness range is 0-100"),
        (("--oom-score-adj", "1001"), "range for oom score adj is [-1000, 1000]"),
        (("--cpu-period", "10"), "CPU cfs period can not be less than 1ms"),
        (("--cpu-quota", "10"), "CPU cfs quota can not be less than 1ms"),
        (("--cpus", "1", "--cpu-quota", "5000"),
         "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
        (("--cpu-rt-period", "1000", "--cpu-rt-runtime", "2000"),
         "cpu real-time runtime cannot be higher than cpu real-time period"),
        (("--blkio-weight", "70000"),
         'invalid argument "70000" for "--blkio-weight" flag: strconv.ParseUint: parsing '
         '"70000": value out of range'),
        (("--cpuset-mems", "0-x"), "Invalid value 0-x for cpuset mems: invalid format: 0-x"),
        (("--cpuset-mems", "63"), "Requested memory nodes are not available - requested 63"),
        (("--device-cgroup-rule", "c 1:3"),
         "invalid argument \"c 1:3\" for \"--device-cgroup-rule\" flag: invalid device "
         "cgroup format 'c 1:3'"),
        (("--volumes-from", "x:zz"), "invalid mode: zz"),
        (("--group-add", "nosuchgroup"),
         "unable to find group nosuchgroup: no matching entries in group file"),
    ]
    for flags, message in cases:
        err = _refused(engine, "run", "--rm", *flags, "busybox", "true")
        assert message in err, (flags, err)
    # docker discards a weight the kernel cannot apply before it checks its range
    weight = engine.run("run", "--rm", "--blkio-weight", "5", "busybox", "true", check=False)
    if Path("/sys/fs/cgroup/blkio/blkio.weight").exists():
        assert weight.returncode == 125
        assert "Range of blkio weight is from 10 to 1000" in weight.stderr
    else:
        assert weight.returncode == 0 and weight.stderr.startswith("WARNING: Your kernel does "
                                                                   "not support Block I/O")


def test_cpu_rt_runtime_under_a_parent_with_a_budget(engine: Engine, own_parent: str) -> None:
    if not Path("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists():
        err = _refused(engine, "run", "--rm", "--cpu-rt-runtime", "1000", "busybox", "true")
        assert "Your kernel does not support CPU real-time scheduler" in err
        return
    # The kernel gives a cgroup no real-time time unless its parent has some: docker's
    # daemon-level --cpu-rt-runtime prepares the parents; here the test's own parent.
    parent = Path(f"/sys/fs/cgroup/cpu{own_parent}")
    parent.mkdir()
    (parent / "cpu.rt_runtime_us").write_text("100000")  # 10% of the root's 1 s period
    out = engine.run("run", "-d", "--cgroup-parent", own_parent, "--cpu-rt-period", "100000",
                     "--cpu-rt-runtime", "5000", "busybox", "sleep", "300").stdout.strip()
    info = _info(engine, out)
    cpu = _cgroup_dir(info["State"]["Pid"], "cpu")
    assert (cpu / "cpu.rt_runtime_us").read_text().strip() == "5000"
    assert (cpu / "cpu.rt_period_us").read_text().strip() == "100000"
    host = info["HostConfig"]
    assert (host["CpuRealtimePeriod"], host["CpuRealtimeRuntime"]) == (100000, 5000)
    engine.run("rm", "-f", out)
    # more than the parent has: the kernel refuses the write, named in one line
    err = _refused(engine, "run", "--rm", "--cgroup-parent", own_parent, "--cpu-rt-period",
                   "100000", "--cpu-rt-runtime", "90000", "busybox", "true")
    assert "cannot set cpu.rt_runtime_us to '90000': invalid argument" in err, err


# -- volumes-from, group-add, privileged ----------------------------------------------
def test_volumes_from_with_modes(engine: Engine, tmp_path: Path) -> None:
    bound = tmp_path / "bound"
    bound.mkdir()
    (bound / "b.txt").write_text("bind\n")
    engine.run("create", "--name", "vsrc", "-v", "vfvol:/data", "-v", f"{bound}:/bound",
               "busybox", "true")
    engine.run("run", "--rm", "-v", "vfvol:/data", "busybox", "sh", "-c",
               "echo vol > /data/v.txt")
    out = _in_container(engine, "--volumes-from", "vsrc",
                        cmd="cat /data/v.txt /bound/b.txt; echo rw > /data/w.txt && echo ok")
    assert out.splitlines() == ["vol", "bind", "ok"]
    ro = engine.run("run", "--rm", "--volumes-from", "vsrc:ro", "busybox", "sh", "-c",
                    "cat /data/w.txt; touch /data/x", check=False)
    assert ro.stdout == "rw\n" and ro.returncode != 0 and "Read-only" in ro.stderr
    cid = engine.run("create", "--volumes-from", "vsrc:ro", "busybox", "true").stdout.strip()
    assert _info(engine, cid)["HostConfig"]["VolumesFrom"] == ["vsrc:ro"]
    rm = engine.run("volume", "rm", "vfvol", check=False)  # the consumer uses it too
    assert rm.returncode != 0 and "in use" in rm.stderr
    assert "No such container: nosuch" in _refused(engine, "run", "--volumes-from", "nosuch",
                                                   "busybox", "true")
    engine.run("rm", "-f", cid, "vsrc")
    engine.run("volume", "rm", "vfvol")


def test_group_add(engine: Engine) -> None:
    groups = _in_container(engine, "--group-add", "123", "--group-add", "nogroup",
                           "-u", "nobody", cmd="id -G").split()
    nogroup = next(line.split(":")[2] for line in
                   engine.run("run", "--rm", "busybox", "cat", "/etc/group").stdout.splitlines()
                   if line.startswith("nogroup:"))
    assert "123" in groups and nogroup in groups
    cid = engine.run("create", "--group-add", "123", "busybox", "true").stdout.strip()
    assert _info(engine, cid)["HostConfig"]["GroupAdd"] == ["123"]


def test_privileged_gets_the_hosts_devices(engine: Engine) -> None:
    host = {p.name for p in Path("/dev").iterdir()
            if p.is_char_device() or p.is_block_device()} - {"console", "ptmx"}
    listed = set(_in_container(engine, "--privileged", cmd="ls /dev").split())
    assert host <= listed, sorted(host - listed)
    plain = set(_in_container(engine, cmd="ls /dev").split())
    assert not host <= plain


# -- inspect's namespaces and --explain -----------------------------------------------
def test_inspect_shows_every_namespace_and_who_shares_it(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "nsa", "--ipc", "shareable", "busybox", "sleep", "300")
    engine.run("run", "-d", "--name", "nsb", "--pid", "container:nsa", "--ipc",
               "container:nsa", "--network", "host", "--uts", "host", "busybox",
               "sleep", "300")
    b = _info(engine, "nsb")
    spaces = {n["Type"]: n for n in b["Tomato"]["Namespaces"]}
    assert set(spaces) >= {"pid", "ipc", "uts", "network", "mount", "cgroup", "user"}
    for kind in ("pid", "ipc"):
        assert spaces[kind]["SharedWith"] == ["nsa"]
        assert spaces[kind]["Inode"] == \
            os.stat(f"/proc/{b['State']['Pid']}/ns/{kind}").st_ino
    assert spaces["network"]["SharedWith"] == ["host"]
    assert spaces["uts"]["SharedWith"] == ["host"]
    assert spaces["mount"]["SharedWith"] == []
    a_spaces = {n["Type"]: n for n in _info(engine, "nsa")["Tomato"]["Namespaces"]}
    assert a_spaces["pid"]["SharedWith"] == ["nsb"]
    assert b["HostConfig"]["PidMode"].startswith("container:")  # docker's shape is kept
    engine.run("stop", "-t", "0", "nsb")
    stopped = {n["Type"]: n for n in _info(engine, "nsb")["Tomato"]["Namespaces"]}
    assert "Inode" not in stopped["pid"] and stopped["uts"]["Mode"] == "host"


def test_explain_shows_the_namespace_joins(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "exsrc", "--ipc", "shareable", "busybox", "sleep",
               "300")
    pid = _info(engine, "exsrc")["State"]["Pid"]
    proc = engine.run("run", "--rm", "--explain=full", "--pid", "container:exsrc", "--ipc",
                      "container:exsrc", "busybox", "true")
    text = proc.stdout + proc.stderr
    assert f'setns(open("/proc/{pid}/ns/pid"), CLONE_NEWPID)' in text, text
    assert f'setns(open("/proc/{pid}/ns/ipc"), CLONE_NEWIPC)' in text, text
    summary = engine.run("run", "--rm", "--explain", "--pid", "container:exsrc", "--ipc",
                         "container:exsrc", "--uts", "host", "busybox", "true").stderr
    ns_line = next(line for line in summary.splitlines() if line.startswith("[ns]"))
    assert f"joined: pid (/proc/{pid}/ns/pid), ipc (/proc/{pid}/ns/ipc)" in ns_line, summary
    assert "uts" not in ns_line  # the host's: neither made nor joined
    assert f"nsenter --pid=/proc/{pid}/ns/pid" in summary


def _a_block_device() -> Path | None:
    return next((p for p in sorted(Path("/dev").iterdir()) if p.is_block_device()), None)


def test_block_io_device_flags(engine: Engine) -> None:
    dev = _a_block_device()
    if dev is None:
        pytest.skip("no block device on this host")
    numbers = f"{os.major(dev.stat().st_rdev)}:{os.minor(dev.stat().st_rdev)}"
    proc = engine.run("run", "-d", "--name", "bio", "--device-read-iops", f"{dev}:100",
                      "--device-write-iops", f"{dev}:50", "--blkio-weight-device",
                      f"{dev}:300", "busybox", "sleep", "300")
    info = _info(engine, "bio")
    blkio = _cgroup_dir(info["State"]["Pid"], "blkio")
    assert f"{numbers} 100" in (blkio / "blkio.throttle.read_iops_device").read_text()
    assert f"{numbers} 50" in (blkio / "blkio.throttle.write_iops_device").read_text()
    host = info["HostConfig"]
    assert host["BlkioDeviceReadIOps"] == [{"Path": str(dev), "Rate": 100}]
    assert host["BlkioDeviceWriteIOps"] == [{"Path": str(dev), "Rate": 50}]
    if not (blkio / "blkio.weight_device").exists():  # no CFQ/BFQ: docker's warning
        assert "Weight-device discarded." in proc.stderr
        assert host["BlkioWeightDevice"] == []
    for flags, message in (
            (("--device-read-iops", "sda"), 'for "--device-read-iops" flag: bad format: sda'),
            (("--device-write-iops", "/tmp/x:5"), "bad format for device path: /tmp/x:5"),
            (("--device-read-iops", f"{dev}:-1"), "invalid rate for device"),
            (("--blkio-weight-device", f"{dev}:5"), f"invalid weight for device: {dev}:5")):
        assert message in _refused(engine, "run", "--rm", *flags, "busybox", "true")
