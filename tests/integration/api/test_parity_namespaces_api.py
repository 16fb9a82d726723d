"""Issue 19's namespace and cgroup flags through the Engine API: the real docker CLI
against `tomato serve` (its HostConfig fields, as docker sends them), a raw request for
what docker's client would refuse itself, and `docker inspect` reading them back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import Server


def _pid(api: Server, ref: str) -> int:
    return int(api.docker("inspect", "-f", "{{.State.Pid}}", ref).stdout)


def _cgroup_dir(pid: int, controller: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path(f"/sys/fs/cgroup/{controller}{path}")
    raise AssertionError(f"no {controller} hierarchy")


def test_namespace_modes_through_docker(api: Server) -> None:
    api.docker("run", "-d", "--name", "nsdonor", "--ipc", "shareable", "busybox", "sh", "-c",
               "echo shared > /dev/shm/f; sleep 300")
    donor = _pid(api, "nsdonor")
    out = api.docker("run", "--rm", "--pid", "container:nsdonor", "--ipc", "container:nsdonor",
                     "--uts", "host", "--cgroupns", "host", "--userns", "host", "busybox",
                     "sh", "-c", "for n in pid ipc uts cgroup; do readlink /proc/self/ns/$n; "
                     "done; cat /dev/shm/f").stdout.split()
    assert out == [os.readlink(f"/proc/{donor}/ns/pid"), os.readlink(f"/proc/{donor}/ns/ipc"),
                   os.readlink("/proc/self/ns/uts"), os.readlink("/proc/self/ns/cgroup"),
                   "shared"]
    host_pid = api.docker("run", "--rm", "--pid", "host", "busybox", "readlink",
                          "/proc/self/ns/pid").stdout.strip()
    assert host_pid == os.readlink("/proc/self/ns/pid")
    api.docker("create", "--name", "nsjoiner", "--pid", "container:nsdonor", "--ipc",
               "container:nsdonor", "--uts", "host", "--cgroupns", "host", "busybox", "true")
    shown = api.docker("inspect", "-f", "{{.HostConfig.PidMode}} {{.HostConfig.IpcMode}} "
                       "{{.HostConfig.UTSMode}} {{.HostConfig.CgroupnsMode}}",
                       "nsjoiner").stdout.split()
    donor_id = api.docker("inspect", "-f", "{{.Id}}", "nsdonor").stdout.strip()
    assert shown == [f"container:{donor_id}", f"container:{donor_id}", "host", "host"]
    # Tomato's own key beside docker's: docker's client still reads the rest
    raw = json.loads(api.docker("inspect", "nsdonor").stdout)[0]
    kinds = {n["Type"]: n for n in raw["Tomato"]["Namespaces"]}
    assert kinds["pid"]["Inode"] == os.stat(f"/proc/{donor}/ns/pid").st_ino


def test_a_stopped_or_private_donor_is_dockers_error(api: Server) -> None:
    stopped = api.docker("create", "--name", "nsstopped", "busybox", "true").stdout.strip()
    proc = api.docker("run", "--rm", "--pid", "container:nsstopped", "busybox", "true",
                      check=False)
    assert proc.returncode == 125
    assert f"failed to join PID namespace: container {stopped} is not running" in proc.stderr
    api.docker("run", "-d", "--name", "nsprivate", "busybox", "sleep", "300")
    proc = api.docker("run", "--rm", "--ipc", "container:nsprivate", "busybox", "true",
                      check=False)
    assert proc.returncode == 125 and "non-shareable IPC" in proc.stderr
    proc = api.docker("run", "--rm", "--pid", "container:nosuch", "busybox", "true",
                      check=False)
    assert proc.returncode == 125 and "No such container: nosuch" in proc.stderr


def test_raw_hostconfig_is_checked_in_the_daemons_words(api: Server) -> None:
    for host, words in (({"PidMode": "bogus"}, "invalid PID mode: bogus"),
                        ({"IpcMode": "bogus"}, "invalid IPC mode: bogus"),
                        ({"CgroupnsMode": "x"}, "invalid cgroup namespace mode: x"),
                        ({"MemorySwappiness": 101}, "valid memory swappiness range is 0-100"),
                        ({"OomScoreAdj": -2000}, "range for oom score adj is [-1000, 1000]"),
                        ({"DeviceCgroupRules": ["z 1:1 r"]},
                         "invalid device cgroup rule format: 'z 1:1 r'"),
                        ({"NanoCpus": 1000000000, "CpuPeriod": 50000},
                         "Conflicting options: Nano CPUs and CPU Period cannot both be set")):
        status, body = api.request("POST", "/containers/create",
                                   {"Image": "busybox", "Cmd": ["true"], "HostConfig": host})
        assert status == 400, (host, status, body)
        assert words in body["message"], (host, body)


def test_cgroup_flags_through_docker(api: Server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    dev = next((p for p in sorted(Path("/dev").iterdir()) if p.is_block_device()), None)
    api.docker("create", "--name", "vsrc", "-v", f"{data}:/data", "busybox", "true")
    proc = api.docker("run", "-d", "--name", "lim", "-m", "64m", "--oom-kill-disable",
                      "--oom-score-adj", "300", "--memory-swappiness", "20", "--cpu-period",
                      "40000", "--cpu-quota", "20000", "--cpuset-mems", "0",
                      "--device-cgroup-rule", "b 7:* r", "--blkio-weight", "200",
                      "--group-add", "321", "--volumes-from", "vsrc:ro",
                      *(["--device-read-iops", f"{dev}:77", "--device-write-bps", f"{dev}:1mb"]
                        if dev else []), "busybox", "sleep", "300")
    pid = _pid(api, "lim")
    if dev is not None:
        numbers = f"{os.major(dev.stat().st_rdev)}:{os.minor(dev.stat().st_rdev)}"
        blkio = _cgroup_dir(pid, "blkio")
        assert f"{numbers} 77" in (blkio / "blkio.throttle.read_iops_device").read_text()
        assert f"{numbers} 1048576" in (blkio / "blkio.throttle.write_bps_device").read_text()
    mem = _cgroup_dir(pid, "memory")
    assert "oom_kill_disable 1" in (mem / "memory.oom_control").read_text()
    assert (mem / "memory.swappiness").read_text().strip() == "20"
    cpu = _cgroup_dir(pid, "cpu")
    assert (cpu / "cpu.cfs_period_us").read_text().strip() == "40000"
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "20000"
    assert "b 7:* r" in (_cgroup_dir(pid, "devices") / "devices.list").read_text()
    assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == "300"
    assert "321" in api.docker("exec", "lim", "id", "-G").stdout.split()
    ro = api.docker("exec", "lim", "touch", "/data/x", check=False)
    assert ro.returncode != 0 and "Read-only" in ro.stderr
    fields = api.docker("inspect", "-f", "{{.HostConfig.OomKillDisable}} "
                        "{{.HostConfig.OomScoreAdj}} {{.HostConfig.MemorySwappiness}} "
                        "{{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}} "
                        "{{.HostConfig.CpusetMems}} {{.HostConfig.DeviceCgroupRules}} "
                        "{{.HostConfig.GroupAdd}} {{.HostConfig.VolumesFrom}}",
                        "lim").stdout.split(" ")
    assert [f.strip() for f in fields] == ["true", "300", "20", "40000", "20000", "0",
                                           "[b", "7:*", "r]", "[321]", "[vsrc:ro]"]
    if not (_cgroup_dir(pid, "blkio") / "blkio.weight").exists():
        # the daemon's Warnings, printed by docker's CLI; the weight discarded
        assert "Your kernel does not support Block I/O weight" in proc.stderr
        assert api.docker("inspect", "-f", "{{.HostConfig.BlkioWeight}}",
                          "lim").stdout.strip() == "0"


def test_privileged_through_docker_sees_the_hosts_devices(api: Server) -> None:
    host = {p.name for p in Path("/dev").iterdir()
            if p.is_char_device() or p.is_block_device()} - {"console", "ptmx"}
    listed = set(api.docker("run", "--rm", "--privileged", "busybox", "ls",
                            "/dev").stdout.split())
    assert host <= listed, sorted(host - listed)


def test_docker_py_host_config(api: Server, tmp_path: Path) -> None:
    docker = pytest.importorskip("docker", reason="needs docker-py: pip install docker")
    client = docker.DockerClient(base_url=api.host, version="auto", timeout=60)
    try:
        data = tmp_path / "data"
        data.mkdir()
        (data / "f").write_text("from-src\n")
        client.containers.create("busybox", "true", name="pysrc",
                                 volumes={str(data): {"bind": "/data", "mode": "rw"}})
        donor = client.containers.run("busybox", ["sleep", "300"], detach=True, name="pydonor",
                                      ipc_mode="shareable")
        out = client.containers.run(
            "busybox", ["sh", "-c", "for n in pid ipc uts; do readlink /proc/self/ns/$n; done; "
                        "cat /data/f; id -G; cat /proc/self/oom_score_adj"],
            remove=True, pid_mode="container:pydonor", ipc_mode="container:pydonor",
            uts_mode="host", volumes_from=["pysrc:ro"], group_add=["456"],
            oom_score_adj=200, mem_limit="64m", oom_kill_disable=True, mem_swappiness=30,
            cpu_period=60000, cpu_quota=30000, cpuset_mems="0",
            device_cgroup_rules=["c 10:200 rwm"]).decode().split()
        donor.reload()
        pid = donor.attrs["State"]["Pid"]
        assert out[:3] == [os.readlink(f"/proc/{pid}/ns/pid"),
                           os.readlink(f"/proc/{pid}/ns/ipc"), os.readlink("/proc/self/ns/uts")]
        assert out[3] == "from-src" and "456" in out[4:-1] and out[-1] == "200"
        made = client.containers.create("busybox", "true", pid_mode="host", cgroupns="host",
                                        mem_limit="64m", oom_kill_disable=True,
                                        mem_swappiness=30, cpu_period=60000, cpu_quota=30000)
        host = made.attrs["HostConfig"]
        assert (host["PidMode"], host["CgroupnsMode"], host["OomKillDisable"],
                host["MemorySwappiness"], host["CpuPeriod"], host["CpuQuota"]) == \
            ("host", "host", True, 30, 60000, 30000)
        with pytest.raises(docker.errors.APIError) as info:
            client.containers.create("busybox", "true", pid_mode="bogus")
        assert "invalid PID mode: bogus" in str(info.value)
    finally:
        client.close()
