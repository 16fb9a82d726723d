"""Bad input: exit 1, one line on stderr naming what is wrong, and nothing left behind
(no state directory, nothing listed; the autouse no_leaks fixture checks mounts,
cgroups and processes)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .rt import runtime, state
from .rt_extra import (
    assert_nothing_left,
    assert_one_line_error,
    cid,
    edit,
    host_mountinfo,
    new_host_mounts,
    run_detached,
    wait_stopped,
)

C1 = cid("c1")


def _missing_config(bundle: Path) -> None:
    (bundle / "config.json").unlink()


def _invalid_json(bundle: Path) -> None:
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2", "process": ')


def _not_an_object(bundle: Path) -> None:
    (bundle / "config.json").write_text("[1, 2]")


def _root_missing(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["root"].__setitem__("path", "no-such-rootfs"))


def _unknown_namespace(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["linux"]["namespaces"].append({"type": "bogus"}))


def _proc_symlink_to_host_root(bundle: Path) -> None:
    proc = bundle / "rootfs" / "proc"
    proc.rmdir()
    proc.symlink_to("/")


def _proc_symlink_climbing_out(bundle: Path) -> None:
    proc = bundle / "rootfs" / "proc"
    proc.rmdir()
    proc.symlink_to("../../../../../../../../..")


def _bind_target_climbing_out(bundle: Path) -> None:
    src = bundle / "volume"
    src.mkdir()
    # rootfs/data -> ../../../../../../../../../tmp: a relative link out of the rootfs
    (bundle / "rootfs" / "data").symlink_to("../../../../../../../../../tmp")
    edit(bundle, lambda cfg: cfg["mounts"].append(
        {"destination": "/data/vol", "type": "bind", "source": str(src),
         "options": ["rbind"]}))


def _bind_target_symlink_to_root(bundle: Path) -> None:
    src = bundle / "volume"
    src.mkdir()
    (bundle / "rootfs" / "data").symlink_to("/")
    edit(bundle, lambda cfg: cfg["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(src), "options": ["rbind"]}))


def _volume_steered_into_proc(bundle: Path) -> None:
    src = bundle / "volume"
    src.mkdir()
    (bundle / "rootfs" / "data").symlink_to("/proc/sys")
    edit(bundle, lambda cfg: cfg["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(src), "options": ["rbind"]}))


def _tmpfs_over_proc(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["mounts"].append(
        {"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}))


def _bind_source_missing(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["mounts"].append(
        {"destination": "/data", "type": "bind", "source": "/no/such/source",
         "options": ["rbind"]}))


def _unknown_capability(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"]["capabilities"]["bounding"].append("CAP_BOGUS"))


def _unknown_syscall(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["linux"].__setitem__("seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["no_such_syscall_x"], "action": "SCMP_ACT_ERRNO"}]}))


def _unknown_arch(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["linux"].__setitem__("seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PDP11"]}))


def _overlapping_mappings(bundle: Path) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 100},
                                       {"containerID": 50, "hostID": 300000, "size": 100}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 100}]
    edit(bundle, fn)


def _missing_executable(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].__setitem__("args", ["/no/such/binary"]))


def _hostname_without_uts(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["linux"].__setitem__(
        "namespaces", [n for n in cfg["linux"]["namespaces"] if n["type"] != "uts"]))


def _bad_sysctl(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["linux"].__setitem__("sysctl", {"net.no.such.key": "1"}))


def _host_sysctl(key: str) -> str:
    # The host's current value: harmless should a refusal ever fail to happen.
    return Path("/proc/sys/" + key.replace(".", "/")).read_text().strip()


def _unnamespaced_sysctl(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["linux"].__setitem__(
        "sysctl", {"kernel.core_pattern": _host_sysctl("kernel.core_pattern")}))


def _net_sysctl_without_netns(bundle: Path) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "network"]
        cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": _host_sysctl("net.ipv4.ip_forward")}
    edit(bundle, fn)


def _ipc_sysctl_without_ipcns(bundle: Path) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "ipc"]
        cfg["linux"]["sysctl"] = {"kernel.shmmni": _host_sysctl("kernel.shmmni")}
    edit(bundle, fn)


def _cwd_is_a_file(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].__setitem__("cwd", "/etc/passwd"))


def _relative_cwd(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].__setitem__("cwd", "tmp"))


def _relative_mount_destination(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["mounts"].append(
        {"destination": "relative/dir", "type": "tmpfs", "source": "tmpfs"}))


def _bad_tmpfs_option(bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["mounts"].append(
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=lots"]}))


CASES: list[tuple[str, Callable[[Path], None], tuple[str, ...]]] = [
    ("missing-config", _missing_config, ("config.json",)),
    ("invalid-json", _invalid_json, ("config.json", "JSON")),
    ("config-not-an-object", _not_an_object, ("config.json",)),
    ("root-missing", _root_missing, ("no-such-rootfs",)),
    ("unknown-namespace", _unknown_namespace, ("namespace", "bogus")),
    ("proc-symlink-to-root", _proc_symlink_to_host_root, ("/proc", "symlink")),
    ("proc-symlink-climbs-out", _proc_symlink_climbing_out, ("/proc",)),
    ("bind-target-climbs-out", _bind_target_climbing_out, ("/data/vol", "escapes")),
    ("bind-target-symlink-to-root", _bind_target_symlink_to_root, ("/data", "root")),
    ("volume-steered-into-proc", _volume_steered_into_proc, ("/data", "/proc/sys")),
    ("tmpfs-over-proc", _tmpfs_over_proc, ("/proc",)),
    ("bind-source-missing", _bind_source_missing, ("/no/such/source",)),
    ("unknown-capability", _unknown_capability, ("CAP_BOGUS",)),
    ("unknown-syscall", _unknown_syscall, ("no_such_syscall_x",)),
    ("unknown-arch", _unknown_arch, ("SCMP_ARCH_PDP11",)),
    ("overlapping-mappings", _overlapping_mappings, ("uidMappings", "overlap")),
    ("missing-executable", _missing_executable, ("/no/such/binary",)),
    ("hostname-without-uts", _hostname_without_uts, ("hostname", "uts")),
    ("bad-sysctl", _bad_sysctl, ("net.no.such.key",)),
    ("sysctl-not-namespaced", _unnamespaced_sysctl, ("kernel.core_pattern", "host")),
    ("net-sysctl-without-netns", _net_sysctl_without_netns,
     ("net.ipv4.ip_forward", "network namespace")),
    ("ipc-sysctl-without-ipcns", _ipc_sysctl_without_ipcns, ("kernel.shmmni", "ipc")),
    ("cwd-is-a-file", _cwd_is_a_file, ("/etc/passwd",)),
    ("relative-cwd", _relative_cwd, ("cwd",)),
    ("relative-mount-destination", _relative_mount_destination, ("relative/dir",)),
    ("bad-tmpfs-option", _bad_tmpfs_option, ("/scratch",)),
]


@pytest.mark.parametrize("mutate,needles", [(m, n) for _, m, n in CASES],
                         ids=[name for name, _, _ in CASES])
def test_create_rejects(root: Path, bundle: Path, mutate: Callable[[Path], None],
                        needles: tuple[str, ...]) -> None:
    mutate(bundle)
    proc = runtime(root, "create", "--bundle", str(bundle), C1, check=False)
    assert_one_line_error(proc, *needles)
    assert_nothing_left(root)


@pytest.mark.parametrize("mutate,needles", [(_invalid_json, ("JSON",)),
                                            (_proc_symlink_to_host_root, ("/proc",))],
                         ids=["invalid-json", "proc-symlink"])
def test_run_rejects(root: Path, bundle: Path, mutate: Callable[[Path], None],
                     needles: tuple[str, ...]) -> None:
    mutate(bundle)
    proc = runtime(root, "run", "--bundle", str(bundle), C1, check=False)
    assert_one_line_error(proc, *needles)
    assert_nothing_left(root)


def test_symlinked_proc_leaves_the_host_alone(root: Path, bundle: Path) -> None:
    """Even where the rootfs points /proc at /, nothing is mounted on the host's /."""
    _proc_symlink_to_host_root(bundle)
    before = host_mountinfo()
    runtime(root, "create", "--bundle", str(bundle), C1, check=False)
    assert new_host_mounts(before, bundle) == []


def test_missing_bundle(root: Path, workdir: Path) -> None:
    proc = runtime(root, "create", "--bundle", str(workdir / "nope"), C1, check=False)
    assert_one_line_error(proc, str(workdir / "nope"))
    assert_nothing_left(root)


def test_id_that_exists(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].__setitem__("args", ["sleep", "60"]))
    runtime(root, "create", "--bundle", str(bundle), C1)
    try:
        first = state(root, C1)
        proc = runtime(root, "create", "--bundle", str(bundle), C1, check=False)
        assert_one_line_error(proc, C1, "already exists")
        again = state(root, C1)  # the first container is untouched
        assert again["status"] == "created" and again["pid"] == first["pid"]
        assert os.path.exists(f"/proc/{first['pid']}")
    finally:
        runtime(root, "delete", "--force", C1)
    assert_nothing_left(root)


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "", "..", "x y", "a\nb"],
                         ids=["dotdot-slash", "slash", "empty", "dotdot", "space", "newline"])
def test_bad_ids(root: Path, bundle: Path, bad_id: str) -> None:
    proc = runtime(root, "create", "--bundle", str(bundle), bad_id, check=False)
    assert_one_line_error(proc, "invalid container id")
    assert_nothing_left(root)
    assert not (root.parent / "x").exists()


@pytest.mark.parametrize("value", ["abc", "-1", "1.5"])
def test_bad_preserve_fds(root: Path, bundle: Path, value: str) -> None:
    proc = runtime(root, "create", "--bundle", str(bundle), f"--preserve-fds={value}", C1,
                   check=False)
    assert_one_line_error(proc, "--preserve-fds", value)
    assert_nothing_left(root)


def test_start_on_running_and_stopped(root: Path, bundle: Path) -> None:
    run_detached(root, bundle, C1, "sh", "-c", "read x")  # stdin is /dev/null: exits soon
    wait_stopped(root, C1)
    proc = runtime(root, "start", C1, check=False)
    assert_one_line_error(proc, C1, "stopped")
    runtime(root, "delete", C1)
    run_detached(root, bundle, C1, "sleep", "60")
    try:
        proc = runtime(root, "start", C1, check=False)
        assert_one_line_error(proc, C1, "running")
        assert state(root, C1)["status"] == "running"
    finally:
        runtime(root, "delete", "--force", C1)
    assert_nothing_left(root)


def test_start_of_a_missing_container(root: Path) -> None:
    proc = runtime(root, "start", "nosuch", check=False)
    assert_one_line_error(proc, "nosuch", "does not exist")


def test_delete_running_without_force(root: Path, bundle: Path) -> None:
    pid = run_detached(root, bundle, C1, "sleep", "60")
    try:
        proc = runtime(root, "delete", C1, check=False)
        assert_one_line_error(proc, C1, "running")
        assert state(root, C1)["status"] == "running"
        assert os.path.exists(f"/proc/{pid}")
    finally:
        runtime(root, "delete", "--force", C1)
    assert_nothing_left(root)


def test_bad_input_is_logged_as_json(root: Path, bundle: Path, workdir: Path) -> None:
    _invalid_json(bundle)
    log = workdir / "log.json"
    proc = runtime(root, "--log", str(log), "--log-format", "json", "create", "--bundle",
                   str(bundle), C1, check=False)
    assert_one_line_error(proc, "JSON")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(e.get("level") == "error" and "JSON" in e.get("msg", "") for e in entries), entries
    assert_nothing_left(root)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
