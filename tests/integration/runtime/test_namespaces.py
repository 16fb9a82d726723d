"""Namespaces: each type new or joined by path, user-namespace mappings, time offsets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .rt import run_in, runtime
from .rt_extra import cid, edit, ns_inode, run_detached, status_line, wait_for

ALL_KINDS = ("cgroup", "ipc", "mnt", "net", "pid", "uts", "user", "time")
C1, A, B = cid("c1"), cid("a"), cid("b")


def open_to_userns(bundle: Path) -> None:
    """mkdtemp makes 0700 directories; the mapped root (nobody on the host) must
    be able to reach its rootfs, as with runc."""
    for p in (bundle.parent, bundle):
        p.chmod(0o755)


def add_userns(cfg: dict[str, Any], host_id: int = 100000, size: int = 65536) -> None:
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": size}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": host_id, "size": size}]


def has_time_ns() -> bool:
    return os.path.exists("/proc/self/ns/time")


def test_every_namespace_type_new(root: Path, bundle: Path) -> None:
    if not has_time_ns():
        pytest.skip("this kernel has no time namespaces")

    def fn(cfg: dict[str, Any]) -> None:
        add_userns(cfg)
        cfg["linux"]["namespaces"].append({"type": "time"})
    edit(bundle, fn)
    open_to_userns(bundle)
    script = "; ".join(f"echo {k} $(readlink /proc/self/ns/{k})" for k in ALL_KINDS)
    out = run_in(root, bundle, C1, "sh", "-c", script).stdout
    inside = dict(line.split() for line in out.splitlines())
    assert set(inside) == set(ALL_KINDS)
    for kind in ALL_KINDS:
        assert inside[kind].startswith(f"{kind}:[")
        assert inside[kind] != ns_inode("self", kind), f"{kind} namespace is the host's"


def test_namespaces_not_asked_for_are_the_hosts(root: Path, bundle: Path) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid"}]
        cfg.pop("hostname", None)
    edit(bundle, fn)
    script = "; ".join(f"echo {k} $(readlink /proc/self/ns/{k})" for k in ALL_KINDS)
    inside = dict(line.split() for line in run_in(root, bundle, C1, "sh", "-c",
                                                  script).stdout.splitlines())
    for kind in ALL_KINDS:
        same = inside[kind] == ns_inode("self", kind)
        assert same == (kind not in ("mnt", "pid")), kind


def _second_bundle(workdir: Path, bundle: Path, a_pid: int, kinds: tuple[str, ...]) -> Path:
    """A bundle sharing the first one's rootfs and joining a's namespaces of kinds."""
    b = workdir / "b"
    b.mkdir()
    (b / "config.json").write_text((bundle / "config.json").read_text())
    os.symlink(bundle / "rootfs", b / "rootfs")
    proc_name = {"network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid"}

    def fn(cfg: dict[str, Any]) -> None:
        cfg.pop("hostname")
        kept = [n for n in cfg["linux"]["namespaces"] if n["type"] not in kinds]
        cfg["linux"]["namespaces"] = kept + [
            {"type": t, "path": f"/proc/{a_pid}/ns/{proc_name[t]}"} for t in kinds]
    edit(b, fn)
    return b


NS_SCRIPT = "; ".join(f"echo {k} $(readlink /proc/self/ns/{k})" for k in ALL_KINDS)


def test_join_net_ipc_uts_by_path(root: Path, bundle: Path, workdir: Path) -> None:
    edit(bundle, lambda cfg: cfg.__setitem__("hostname", "alpha"))
    a_pid = run_detached(root, bundle, A, "sleep", "60")
    try:
        b = _second_bundle(workdir, bundle, a_pid, ("network", "ipc", "uts"))
        out = run_in(root, b, B, "sh", "-c", "hostname; " + NS_SCRIPT).stdout.splitlines()
        assert out[0] == "alpha"  # a's uts namespace
        inside = dict(line.split() for line in out[1:])
        for kind in ("net", "ipc", "uts"):
            assert inside[kind] == ns_inode(a_pid, kind), kind
        for kind in ("mnt", "cgroup", "pid"):
            assert inside[kind] != ns_inode(a_pid, kind), kind
            assert inside[kind] != ns_inode("self", kind), kind
    finally:
        runtime(root, "delete", "--force", A)


def test_join_pid_namespace_by_path(root: Path, bundle: Path, workdir: Path) -> None:
    a_pid = run_detached(root, bundle, A, "sleep", "60")
    try:
        b = _second_bundle(workdir, bundle, a_pid, ("pid",))
        out = run_in(root, b, B, "sh", "-c",
                     "echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; " + NS_SCRIPT
                     ).stdout.splitlines()
        assert out[0] != "1"  # a's sleep is pid 1 of that namespace
        assert out[1].strip() == "sleep 60"  # and b sees it
        inside = dict(line.split() for line in out[2:])
        assert inside["pid"] == ns_inode(a_pid, "pid")
    finally:
        runtime(root, "delete", "--force", A)


def test_join_a_missing_namespace_path_fails_cleanly(root: Path, bundle: Path) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "network"]
        cfg["linux"]["namespaces"].append({"type": "network", "path": "/proc/999999999/ns/net"})
    edit(bundle, fn)
    proc = run_in(root, bundle, C1, "true", check=False)
    assert proc.returncode == 1 and "/proc/999999999/ns/net" in proc.stderr
    assert runtime(root, "list", "-q").stdout == ""


def test_user_namespace_mapping(root: Path, bundle: Path, workdir: Path) -> None:
    shared = workdir / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    open_to_userns(bundle)
    # The mapped root cannot create directories in a rootfs the host's root owns.
    (bundle / "rootfs" / "shared").mkdir()

    def fn(cfg: dict[str, Any]) -> None:
        add_userns(cfg, 100000, 65536)
        cfg["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared),
                              "options": ["bind", "rw"]})
        cfg["process"]["args"] = [
            "sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; "
            "stat -c %u /bin/busybox; touch /shared/made; exec sleep 60"]
    edit(bundle, fn)
    runtime(root, "run", "-d", "--bundle", str(bundle), C1)
    try:
        pid = int(runtime(root, "state", C1).stdout.split('"pid": ')[1].split(",")[0])
        status = Path(f"/proc/{pid}/status").read_text()
        # Nobody on the host: root inside is uid 100000 outside.
        assert status_line(status, "Uid").split() == ["100000"] * 4
        assert status_line(status, "Gid").split() == ["100000"] * 4
        # `run -d` returns once the process runs, not once it has touched the file
        assert wait_for(lambda: (shared / "made").exists())
        assert os.stat(shared / "made").st_uid == 100000
    finally:
        runtime(root, "delete", "--force", C1)


def test_user_namespace_seen_inside(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: add_userns(cfg, 200000, 70000))
    open_to_userns(bundle)
    out = run_in(root, bundle, C1, "sh", "-c",
                 "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; "
                 "stat -c %u /bin/busybox; echo x > /dev/null && head -c 3 /dev/zero | wc -c"
                 ).stdout.splitlines()
    assert out[0] == "0" and out[1] == "0"
    assert out[2].split() == ["0", "200000", "70000"]
    assert out[3].split() == ["0", "200000", "70000"]
    assert out[4] == "65534"  # the host's root owns the image: unmapped, so nobody
    assert out[5].strip() == "3"  # default devices work (bound from the host: no mknod)


def test_network_namespace_has_only_lo(root: Path, bundle: Path) -> None:
    out = run_in(root, bundle, C1, "sh", "-c",
                 "tail -n +3 /proc/net/dev | cut -d: -f1; echo ---; ls /sys/class/net").stdout
    devs, sysfs = out.split("---\n")
    assert devs.split() == ["lo"]
    assert sysfs.split() == ["lo"]


def test_time_namespace_boottime_offset(root: Path, bundle: Path) -> None:
    if not has_time_ns():
        pytest.skip("this kernel has no time namespaces")
    offset = 10 * 86400

    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "time"})
        cfg["linux"]["timeOffsets"] = {"boottime": {"secs": offset, "nanosecs": 0}}
    edit(bundle, fn)
    before = float(Path("/proc/uptime").read_text().split()[0])
    out = run_in(root, bundle, C1, "cat", "/proc/uptime").stdout
    after = float(Path("/proc/uptime").read_text().split()[0])
    inside = float(out.split()[0])
    # /proc/uptime has 10 ms resolution
    assert before + offset - 0.01 <= inside <= after + offset + 0.01, (before, inside, after)


@pytest.mark.parametrize("cgroupns", [True, False], ids=["cgroupns", "no-cgroupns"])
def test_cgroup_namespace(root: Path, bundle: Path, cgroupns: bool) -> None:
    if not cgroupns:
        edit(bundle, lambda cfg: cfg["linux"].__setitem__(
            "namespaces", [n for n in cfg["linux"]["namespaces"] if n["type"] != "cgroup"]))
    out = run_in(root, bundle, C1, "cat", "/proc/self/cgroup").stdout
    paths = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in out.splitlines()}
    assert paths["pids"] and paths["memory"]
    if cgroupns:
        assert paths["pids"] == "/" and paths["memory"] == "/"
    else:
        assert paths["pids"] != "/" and C1 in paths["pids"]
