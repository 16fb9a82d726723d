"""The rootfs corners of the runtime spec, as runc has them: rootfsPropagation on the
container's "/", a read-only /dev tmpfs with its submounts, the host's /proc bound
without a pid namespace, bundle-relative mount sources, and --no-pivot's mitigation."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .rt import run_in, runtime
from .rt_extra import assert_nothing_left, cid, edit
from .runc_side import needs_runc, runc, runc_root  # noqa: F401 (fixture)

C1 = cid("rc")

ROOT_PROPAGATION = r"""awk '$5 == "/" { split($0, h, " - "); n = split(h[1], f, " ");
  p = "private"; for (i = 7; i <= n; i++) { if (f[i] ~ /^shared:/) p = "shared";
  else if (f[i] ~ /^master:/) p = "slave"; else if (f[i] == "unbindable") p = "unbindable" }
  print p }' /proc/self/mountinfo"""


@pytest.fixture
def shared_bundle(bundle: Path, workdir: Path) -> Iterator[Path]:
    """The bundle on a mount of its own that is shared with the host's namespace, so
    the container's copy of it is a peer (the case rootfsPropagation is about)."""
    place = workdir / "shared"
    place.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tomato-shared", str(place)],
                   check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(place)], check=True)
        subprocess.run(["cp", "-a", str(bundle), str(place / "bundle")], check=True)
        yield place / "bundle"
    finally:
        subprocess.run(["umount", "-l", str(place)], check=False)


@pytest.mark.parametrize("propagation,seen", [
    ("", "private"), ("private", "private"), ("rprivate", "private"),
    ("slave", "slave"), ("rslave", "slave"), ("shared", "shared"), ("rshared", "shared"),
    ("unbindable", "unbindable"), ("runbindable", "unbindable")])
def test_rootfs_propagation_is_the_roots(root: Path, shared_bundle: Path, propagation: str,
                                         seen: str) -> None:
    """runc (since 1.3): the propagation asked is what "/" has inside; runc 1.1 left a
    private "/" for shared and unbindable, which the spec does not allow."""
    def fn(cfg: dict[str, Any]) -> None:
        if propagation:
            cfg["linux"]["rootfsPropagation"] = propagation
        cfg["process"]["args"] = ["sh", "-c", ROOT_PROPAGATION]
    edit(shared_bundle, fn)
    out = runtime(root, "run", "--bundle", str(shared_bundle), C1).stdout.split()
    assert out == [seen]


@needs_runc
def test_readonly_dev_tmpfs_keeps_its_submounts(root: Path, bundle: Path,
                                               runc_root: Path) -> None:  # noqa: F811
    """/dev "ro" with devpts, shm and mqueue below: submounts first, read-only after."""
    def fn(cfg: dict[str, Any]) -> None:
        dev = next(m for m in cfg["mounts"] if m["destination"] == "/dev")
        dev["options"].append("ro")
        cfg["root"]["readonly"] = True
        cfg["process"]["args"] = ["sh", "-c",
                                  "touch /dev/new 2>/dev/null && echo dev-rw || echo dev-ro; "
                                  "touch /dev/shm/x && echo shm-rw; test -c /dev/null && "
                                  "echo null; test -e /dev/pts/ptmx && echo pts; "
                                  "grep -c ' /dev/mqueue ' /proc/self/mountinfo"]
    edit(bundle, fn)
    ours = run_in(root, bundle, C1).stdout.split()
    theirs = runc(runc_root, "run", "--bundle", str(bundle), "r" + C1).stdout.split()
    assert ours == theirs == ["dev-ro", "shm-rw", "null", "pts", "1"]


@needs_runc
def test_host_proc_bound_without_a_pid_namespace(root: Path, bundle: Path,
                                                 runc_root: Path) -> None:  # noqa: F811
    """A container in the host's pid namespace may bind the host's /proc (runc's
    checkProcMount lets a procfs source go on /proc); its masks still apply."""
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                      if ns["type"] != "pid"]
        proc = next(m for m in cfg["mounts"] if m["destination"] == "/proc")
        proc.update({"type": "bind", "source": "/proc", "options": ["rbind", "nosuid"]})
        cfg["process"]["args"] = ["sh", "-c", "test -d /proc/1 && echo host-pids; "
                                  "wc -c < /proc/kcore 2>/dev/null || echo masked"]
    edit(bundle, fn)
    ours = run_in(root, bundle, C1).stdout.split()
    theirs = runc(runc_root, "run", "--bundle", str(bundle), "r" + C1).stdout.split()
    assert ours == theirs
    assert ours[0] == "host-pids"
    assert ours[1] in ("0", "masked")  # /dev/null over it, or the kernel has none


def test_a_bind_over_proc_that_is_not_procfs_is_still_refused(root: Path, bundle: Path,
                                                             workdir: Path) -> None:
    fake = workdir / "fakeproc"
    fake.mkdir()

    def fn(cfg: dict[str, Any]) -> None:
        proc = next(m for m in cfg["mounts"] if m["destination"] == "/proc")
        proc.update({"type": "bind", "source": str(fake), "options": ["rbind"]})
    edit(bundle, fn)
    proc = run_in(root, bundle, C1, "true", check=False)
    assert proc.returncode == 1 and "inside /proc" in proc.stderr, proc.stderr
    assert_nothing_left(root)


@needs_runc
def test_relative_mount_source_is_the_bundles(root: Path, bundle: Path, workdir: Path,
                                              runc_root: Path) -> None:  # noqa: F811
    (bundle / "data").mkdir()
    (bundle / "data" / "note").write_text("from the bundle\n")
    elsewhere = workdir / "elsewhere"
    (elsewhere / "data").mkdir(parents=True)
    (elsewhere / "data" / "note").write_text("from the cwd\n")

    def fn(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/data", "type": "bind", "source": "data",
                              "options": ["rbind", "ro"]})
        cfg["process"]["args"] = ["cat", "/data/note"]
    edit(bundle, fn)
    ours = runtime(root, "run", "--bundle", str(bundle), C1, cwd=elsewhere).stdout
    theirs = runc(runc_root, "run", "--bundle", str(bundle), "r" + C1, cwd=elsewhere).stdout
    assert ours == theirs == "from the bundle\n"


ESCAPE = ("mkdir -p /tmp/p; unshare -mrpf sh -c 'mount -t proc proc /tmp/p 2>/dev/null "
          "&& echo MOUNTED-A-BARE-PROC || echo refused'")


@needs_runc
def test_no_pivot_container_cannot_mount_a_bare_proc(root: Path, bundle: Path,
                                                     runc_root: Path) -> None:  # noqa: F811
    """Under --no-pivot the host's /proc stays in the container's mount namespace; the
    kernel would let a new user+pid namespace mount an unmasked procfs because of it."""
    def fn(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = False
        # CAP_SETFCAP: mapping uid 0 into a new user namespace needs it (Linux 5.12)
        caps = ["CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SYS_CHROOT",
                "CAP_SETFCAP"]
        cfg["process"]["capabilities"] = {k: caps for k in ("bounding", "effective",
                                                             "permitted")}
        cfg["process"]["noNewPrivileges"] = False
        cfg["process"]["args"] = ["sh", "-c", ESCAPE]
    edit(bundle, fn)
    control = run_in(root, bundle, C1).stdout.split()
    assert control == ["refused"]  # with pivot_root: nothing of the host's to lean on
    ours = runtime(root, "run", "--no-pivot", "--bundle", str(bundle), C1).stdout.split()
    theirs = runc(runc_root, "run", "--no-pivot", "--bundle", str(bundle),
                  "r" + C1).stdout.split()
    assert ours == theirs == ["refused"]


@pytest.mark.parametrize("propagation", ["private", "rprivate"])
def test_no_pivot_refuses_a_private_root_as_runc(root: Path, bundle: Path,
                                                 propagation: str) -> None:
    edit(bundle, lambda cfg: cfg["linux"].__setitem__("rootfsPropagation", propagation))
    proc = runtime(root, "create", "--no-pivot", "--bundle", str(bundle), C1, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "rootfsPropagation of [r]private is not safe without pivot_root" in proc.stderr
    assert_nothing_left(root)


def _mounts_under(path: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4] == str(path) or line.split()[4].startswith(f"{path}/")]


def _without_mount_ns(cfg: dict[str, Any]) -> None:
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                  if ns["type"] != "mount"]


def test_no_mount_namespace_mounts_in_the_callers_and_delete_takes_them(
        root: Path, bundle: Path) -> None:
    """The spec lets the mount namespace be inherited: the container's mounts are then
    the caller's (runc leaves them there for good); `delete` takes them away."""
    rootfs = bundle / "rootfs"

    def fn(cfg: dict[str, Any]) -> None:
        _without_mount_ns(cfg)
        cfg["process"]["args"] = ["sleep", "60"]
    edit(bundle, fn)
    mnt_ns = os.readlink("/proc/self/ns/mnt")
    runtime(root, "run", "-d", "--bundle", str(bundle), C1)
    try:
        pid = runtime(root, "state", C1).stdout.split('"pid": ')[1].split(",")[0]
        assert os.readlink(f"/proc/{pid}/ns/mnt") == mnt_ns
        points = {line.split()[4] for line in _mounts_under(rootfs)}
        assert {str(rootfs), f"{rootfs}/proc", f"{rootfs}/dev", f"{rootfs}/dev/pts"} <= points
        out = runtime(root, "exec", C1, "sh", "-c", "touch /x 2>&1; cat /proc/1/comm").stdout
        assert "Read-only file system" in out  # root.readonly, on our bind only
    finally:
        runtime(root, "delete", "--force", C1)
    assert _mounts_under(rootfs) == []
    (rootfs / "x").touch()  # the rootfs itself was never made read-only
    (rootfs / "x").unlink()
    assert_nothing_left(root)


def test_no_mount_namespace_failed_create_leaves_no_mount(root: Path, bundle: Path) -> None:
    rootfs = bundle / "rootfs"

    def fn(cfg: dict[str, Any]) -> None:
        _without_mount_ns(cfg)
        cfg["mounts"].append({"destination": "/missing", "type": "bind",
                              "source": "/nonexistent/source", "options": ["rbind"]})
    edit(bundle, fn)
    proc = runtime(root, "create", "--bundle", str(bundle), C1, check=False)
    assert proc.returncode == 1 and "/nonexistent/source" in proc.stderr, proc.stderr
    assert _mounts_under(rootfs) == []
    assert_nothing_left(root)


def _with_userns(cfg: dict[str, Any]) -> None:
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


@needs_runc
def test_bind_sources_the_user_namespace_cannot_reach_are_bound(
        root: Path, bundle: Path, workdir: Path, runc_root: Path) -> None:  # noqa: F811
    """The mapped root (uid 100000 on the host) cannot reach a 0700 directory of uid
    4242, nor a file below it; the runtime opens both before the init is in the user
    namespace, as runc does, so they are bound all the same."""
    for p in (workdir, bundle):
        p.chmod(0o755)  # mkdtemp's 0700: the mapped root must reach its rootfs
    secret = workdir / "secret"
    (secret / "dir").mkdir(parents=True)
    (secret / "dir" / "inside").write_text("x")
    (secret / "file").write_text("y")
    os.chown(secret, 4242, 4242)
    secret.chmod(0o700)
    (bundle / "rootfs" / "secret-dir").mkdir()  # the host's root owns the rootfs: the
    (bundle / "rootfs" / "secret-file").touch()  # mapped root could not make them

    def fn(cfg: dict[str, Any]) -> None:
        _with_userns(cfg)
        cfg["mounts"] += [
            {"destination": "/secret-dir", "type": "bind", "source": str(secret / "dir"),
             "options": ["rbind", "ro"]},
            {"destination": "/secret-file", "type": "bind", "source": str(secret / "file"),
             "options": ["bind", "ro"]}]
        cfg["process"]["args"] = ["sh", "-c", "grep -c ' /secret-' /proc/self/mountinfo; "
                                  "cat /secret-file /secret-dir/inside; echo"]
    edit(bundle, fn)
    ours = run_in(root, bundle, C1).stdout.split()
    theirs = runc(runc_root, "run", "--bundle", str(bundle), "r" + C1).stdout.split()
    assert ours == theirs == ["2", "yx"]
