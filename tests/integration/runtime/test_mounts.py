"""The container's filesystem: spec mounts in order with their options, /dev,
masked and read-only paths, hostname, sysctls, propagation and a read-only root."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .rt import run_in, runtime
from .rt_extra import cid, edit, host_mountinfo, new_host_mounts, run_detached

C1 = cid("c1")


def mountinfo(text: str) -> list[dict[str, Any]]:
    """Parse /proc/self/mountinfo lines into dicts (mountpoint, opts, fstype, source, super)."""
    out = []
    for line in text.splitlines():
        if " - " not in line:
            continue
        left, right = line.split(" - ", 1)
        lf = left.split()
        rf = right.split()
        out.append({"root": lf[3], "point": lf[4], "opts": set(lf[5].split(",")),
                    "optional": lf[6:], "fstype": rf[0], "source": rf[1],
                    "super": set(rf[2].split(",")) if len(rf) > 2 else set()})
    return out


def by_point(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    # The last mount on a point is the visible one.
    return {e["point"]: e for e in entries}


def add_mounts(bundle: Path, *mounts: dict[str, Any], readonly: bool | None = None) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["mounts"].extend(mounts)
        if readonly is not None:
            cfg["root"]["readonly"] = readonly
    edit(bundle, fn)


def test_default_mounts_in_order_with_their_flags(root: Path, bundle: Path) -> None:
    info = mountinfo(run_in(root, bundle, C1, "cat", "/proc/self/mountinfo").stdout)
    points = [e["point"] for e in info]
    expected = ["/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                "/sys/fs/cgroup"]
    assert points[:len(expected)] == expected
    m = by_point(info)
    assert "ro" in m["/"]["opts"]  # root.readonly is true in runc's default spec
    assert m["/proc"]["fstype"] == "proc"
    assert m["/dev"]["fstype"] == "tmpfs" and "nosuid" in m["/dev"]["opts"]
    assert {"size=65536k", "mode=755"} <= m["/dev"]["super"]
    assert m["/dev/pts"]["fstype"] == "devpts"
    assert {"nosuid", "noexec"} <= m["/dev/pts"]["opts"]
    assert {"gid=5", "mode=620", "ptmxmode=666"} <= m["/dev/pts"]["super"]
    assert m["/dev/shm"]["fstype"] == "tmpfs"
    assert {"nosuid", "nodev", "noexec"} <= m["/dev/shm"]["opts"]
    assert m["/dev/mqueue"]["fstype"] == "mqueue"
    assert {"nosuid", "nodev", "noexec"} <= m["/dev/mqueue"]["opts"]
    assert m["/sys"]["fstype"] == "sysfs"
    assert {"ro", "nosuid", "nodev", "noexec"} <= m["/sys"]["opts"]
    assert "ro" in m["/sys/fs/cgroup"]["opts"]


def test_proc_is_the_containers_and_sysfs_is_read_only(root: Path, bundle: Path) -> None:
    proc = run_in(root, bundle, C1, "sh", "-c",
                  "cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                  "mkdir /sys/kernel/tomato-probe 2>&1; ( : > /sys/kernel/uevent_helper ) 2>&1; "
                  "true", check=False)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("sh -c")  # /proc shows our pid namespace: we are pid 1
    assert "Read-only file system" in lines[1]
    assert "Read-only file system" in lines[2]
    assert not os.path.exists("/sys/kernel/tomato-probe")


def test_bind_mount_ro_and_rw(root: Path, bundle: Path, workdir: Path) -> None:
    host = workdir / "shared"
    host.mkdir()
    (host / "f").write_text("from host\n")
    add_mounts(bundle,
               {"destination": "/data-ro", "type": "bind", "source": str(host),
                "options": ["bind", "ro"]},
               {"destination": "/data-rw", "type": "bind", "source": str(host),
                "options": ["rbind", "rw"]})
    proc = run_in(root, bundle, C1, "sh", "-c",
                  "cat /data-ro/f; { echo no > /data-ro/ro-new; } 2>&1; "
                  "echo yes > /data-rw/rw-new; "
                  "grep -E ' /data-r[ow] ' /proc/self/mountinfo | awk '{print $5, $6}'",
                  check=False)
    lines = proc.stdout.splitlines()
    assert lines[0] == "from host"
    assert "Read-only file system" in lines[1]
    assert not (host / "ro-new").exists()
    assert (host / "rw-new").read_text() == "yes\n"
    opts = dict(line.split() for line in lines[2:])
    assert "ro" in opts["/data-ro"].split(",")
    assert "rw" in opts["/data-rw"].split(",")


def test_file_bind_mounts(root: Path, bundle: Path, workdir: Path) -> None:
    hosts = workdir / "hosts"
    hosts.write_text("10.0.0.1 tomato\n")
    (bundle / "rootfs" / "etc" / "hosts").write_text("image's own\n")
    add_mounts(bundle,
               {"destination": "/etc/hosts", "type": "bind", "source": str(hosts),
                "options": ["bind", "ro"]},
               {"destination": "/new/dir/config", "type": "bind", "source": str(hosts),
                "options": ["bind"]})
    out = run_in(root, bundle, C1, "sh", "-c",
                 "cat /etc/hosts /new/dir/config; { echo x >> /etc/hosts; } 2>&1; "
                 "echo y >> /new/dir/config && echo appended").stdout.splitlines()
    assert out[:2] == ["10.0.0.1 tomato"] * 2
    assert "Read-only file system" in out[2]
    assert out[3] == "appended"
    assert hosts.read_text() == "10.0.0.1 tomato\ny\n"
    assert (bundle / "rootfs" / "etc" / "hosts").read_text() == "image's own\n"


def test_lxcfs_style_file_over_proc(root: Path, bundle: Path, workdir: Path) -> None:
    fake = workdir / "uptime"
    fake.write_text("12345.67 890.12\n")
    add_mounts(bundle, {"destination": "/proc/uptime", "type": "bind", "source": str(fake),
                        "options": ["bind", "ro"]})
    assert run_in(root, bundle, C1, "cat", "/proc/uptime").stdout == "12345.67 890.12\n"


def test_bind_vs_rbind_submounts(root: Path, bundle: Path, workdir: Path) -> None:
    host = workdir / "tree"
    (host / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tomato-sub", str(host / "sub")],
                   check=True)
    try:
        (host / "sub" / "marker").write_text("submount\n")
        add_mounts(bundle,
                   {"destination": "/plain", "type": "bind", "source": str(host),
                    "options": ["bind"]},
                   {"destination": "/recursive", "type": "bind", "source": str(host),
                    "options": ["rbind"]})
        out = run_in(root, bundle, C1, "sh", "-c",
                     "ls /plain/sub | wc -l; cat /recursive/sub/marker").stdout
        assert out.splitlines() == ["0", "submount"]
    finally:
        subprocess.run(["umount", str(host / "sub")], check=True)


@pytest.mark.parametrize("option", ["ro", "rro"])
def test_recursive_read_only(root: Path, bundle: Path, workdir: Path, option: str) -> None:
    """"ro" on an rbind leaves submounts writable; "rro" makes every one read-only."""
    host = workdir / "tree"
    (host / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nodev", "tomato-sub",
                    str(host / "sub")], check=True)
    try:
        add_mounts(bundle, {"destination": "/tree", "type": "bind", "source": str(host),
                            "options": ["rbind", option]})
        out = run_in(root, bundle, C1, "sh", "-c",
                     "{ echo x > /tree/top; } 2>&1; { echo x > /tree/sub/f && echo sub-rw; } 2>&1; "
                     "grep ' /tree/sub ' /proc/self/mountinfo | cut -d' ' -f6").stdout.splitlines()
        assert "Read-only file system" in out[0]
        if option == "rro":
            assert "Read-only file system" in out[1]
            assert {"ro", "nodev"} <= set(out[2].split(","))  # its own flags kept
        else:
            assert out[1] == "sub-rw"
    finally:
        subprocess.run(["umount", str(host / "sub")], check=True)


def test_nosuid_nodev_noexec_on_a_bind(root: Path, bundle: Path, workdir: Path) -> None:
    host = workdir / "bin"
    host.mkdir()
    script = host / "hello"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o755)
    add_mounts(bundle,
               {"destination": "/locked", "type": "bind", "source": str(host),
                "options": ["bind", "nosuid", "nodev", "noexec"]},
               {"destination": "/open", "type": "bind", "source": str(host),
                "options": ["bind"]})
    proc = run_in(root, bundle, C1, "sh", "-c",
                  "/open/hello; /locked/hello 2>&1; "
                  "grep -E ' /(locked|open) ' /proc/self/mountinfo | awk '{print $5, $6}'",
                  check=False)
    lines = proc.stdout.splitlines()
    assert lines[0] == "ran"
    assert "Permission denied" in lines[1]
    opts = {k: set(v.split(",")) for k, v in (line.split() for line in lines[2:])}
    assert {"nosuid", "nodev", "noexec"} <= opts["/locked"]
    assert not {"nosuid", "nodev", "noexec"} & opts["/open"]


def test_tmpfs_size_and_mode(root: Path, bundle: Path) -> None:
    add_mounts(bundle, {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                        "options": ["nosuid", "size=1m", "mode=1750"]})
    out = run_in(root, bundle, C1, "sh", "-c",
                 "df -k /scratch | tail -1 | awk '{print $2}'; stat -c %a /scratch; "
                 "grep ' /scratch ' /proc/self/mountinfo").stdout.splitlines()
    assert out[0] == "1024"
    assert out[1] == "1750"
    entry = mountinfo(out[2])[0]
    assert {"size=1024k", "mode=1750"} <= entry["super"] and "nosuid" in entry["opts"]


def test_mounts_are_made_in_spec_order(root: Path, bundle: Path) -> None:
    # The second mount lands inside the first; reversed, the outer one would hide it.
    add_mounts(bundle,
               {"destination": "/stack", "type": "tmpfs", "source": "outer",
                "options": ["size=1m"]},
               {"destination": "/stack/inner", "type": "tmpfs", "source": "inner",
                "options": ["size=2m"]})
    out = run_in(root, bundle, C1, "sh", "-c",
                 "grep -n ' /stack' /proc/self/mountinfo | awk '{print $5}'; "
                 "df -k /stack/inner | tail -1 | awk '{print $2}'").stdout.split()
    assert out[:2] == ["/stack", "/stack/inner"]
    assert out[2] == "2048"


def test_mqueue_is_a_private_instance(root: Path, bundle: Path) -> None:
    out = run_in(root, bundle, C1, "sh", "-c",
                 "touch /dev/mqueue/q1 && ls /dev/mqueue").stdout
    assert out.split() == ["q1"]


@pytest.mark.parametrize("cgroupns", [True, False], ids=["cgroupns", "no-cgroupns"])
def test_cgroup_mount_shows_the_containers_own_cgroup(root: Path, bundle: Path,
                                                       cgroupns: bool) -> None:
    if not cgroupns:
        edit(bundle, lambda cfg: cfg["linux"].__setitem__(
            "namespaces", [n for n in cfg["linux"]["namespaces"] if n["type"] != "cgroup"]))
    pid = run_detached(root, bundle, C1, "sleep", "60")
    try:
        host_path = next(line.split(":", 2)[2] for line in
                         Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                         if line.split(":")[1] == "pids")
        assert "tomato" in host_path or C1 in host_path, host_path
        host_procs = Path(f"/sys/fs/cgroup/pids{host_path}/cgroup.procs").read_text().split()
        assert host_procs == [str(pid)]
        out = runtime(root, "exec", C1, "sh", "-c",
                      "cat /sys/fs/cgroup/pids/cgroup.procs; echo ---; "
                      "{ echo 5 > /sys/fs/cgroup/pids/pids.max; } 2>&1; true").stdout
        inside, rest = out.split("---\n")
        # init (1) and the exec'd processes: the container's cgroup, not the host's root
        procs = inside.split()
        assert "1" in procs and 2 <= len(procs) <= 4, procs
        assert "Read-only file system" in rest
    finally:
        runtime(root, "delete", "--force", C1)


def test_per_mount_propagation_options(root: Path, bundle: Path, workdir: Path) -> None:
    host = workdir / "vol"
    host.mkdir()
    add_mounts(bundle, *({"destination": f"/{name}", "type": "bind", "source": str(host),
                          "options": ["rbind", name]}
                         for name in ("rshared", "rprivate", "runbindable")))
    entries = by_point(mountinfo(run_in(root, bundle, C1, "cat",
                                        "/proc/self/mountinfo").stdout))
    assert any(o.startswith("shared:") for o in entries["/rshared"]["optional"])
    assert entries["/rprivate"]["optional"] == []
    assert entries["/runbindable"]["optional"] == ["unbindable"]


@pytest.mark.parametrize("propagation", ["rslave", "rprivate"])
def test_rootfs_propagation(root: Path, bundle: Path, propagation: str) -> None:
    """A host mount under a shared mount of the rootfs reaches an rslave container only."""
    mnt = bundle / "rootfs" / "mnt"
    mnt.mkdir(exist_ok=True)
    probe = mnt / "probe"
    probe.mkdir()
    subprocess.run(["mount", "--bind", str(mnt), str(mnt)], check=True)
    mounted_probe = False
    try:
        subprocess.run(["mount", "--make-shared", str(mnt)], check=True)
        edit(bundle, lambda cfg: cfg["linux"].__setitem__("rootfsPropagation", propagation))
        run_detached(root, bundle, C1, "sleep", "60")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tomato-probe", str(probe)],
                       check=True)
        mounted_probe = True
        out = runtime(root, "exec", C1, "sh", "-c",
                      "grep -c ' /mnt/probe ' /proc/self/mountinfo; true").stdout.strip()
        assert out == ("1" if propagation == "rslave" else "0")
        runtime(root, "delete", "--force", C1)
    finally:
        if mounted_probe:
            subprocess.run(["umount", str(probe)], check=False)
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("propagation", ["shared", "rshared", "private", "slave", "unbindable"])
def test_every_rootfs_propagation_starts(root: Path, bundle: Path, propagation: str) -> None:
    """pivot_root refuses a shared new root or parent: runc makes the rootfs' parent private."""
    edit(bundle, lambda cfg: cfg["linux"].__setitem__("rootfsPropagation", propagation))
    proc = run_in(root, bundle, C1, "sh", "-c", "echo $$; exit 3", check=False)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split() == ["1"]


def test_rshared_rootfs_does_not_leak_the_rootfs_bind_to_the_host(root: Path,
                                                                 bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["linux"].__setitem__("rootfsPropagation", "rshared"))
    before = host_mountinfo()
    run_detached(root, bundle, C1, "sleep", "60")
    try:
        assert new_host_mounts(before, bundle) == []
    finally:
        runtime(root, "delete", "--force", C1)


@pytest.mark.parametrize("readonly", [True, False])
def test_root_readonly(root: Path, bundle: Path, readonly: bool) -> None:
    edit(bundle, lambda cfg: cfg["root"].__setitem__("readonly", readonly))
    proc = run_in(root, bundle, C1, "sh", "-c", "touch /written 2>&1; true")
    if readonly:
        assert "Read-only file system" in proc.stdout
        assert not (bundle / "rootfs" / "written").exists()
    else:
        assert proc.stdout == ""
        assert (bundle / "rootfs" / "written").exists()


def test_default_devices(root: Path, bundle: Path) -> None:
    out = run_in(root, bundle, C1, "sh", "-c",
                 "for d in null zero full random urandom tty pts/ptmx; do "
                 "stat -c '%n %F %t:%T %a' /dev/$d; done; "
                 "for l in ptmx fd stdin stdout stderr; do echo /dev/$l $(readlink /dev/$l); done; "
                 "head -c 5 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; "
                 "{ echo x > /dev/full; } 2>&1; ls /dev/fd/ | head -1; true").stdout.splitlines()
    stats = {line.split()[0]: line.split(None, 1)[1] for line in out[:7]}
    assert stats["/dev/null"] == "character special file 1:3 666"
    assert stats["/dev/zero"] == "character special file 1:5 666"
    assert stats["/dev/full"] == "character special file 1:7 666"
    assert stats["/dev/random"] == "character special file 1:8 666"
    assert stats["/dev/urandom"] == "character special file 1:9 666"
    assert stats["/dev/tty"] == "character special file 5:0 666"
    assert stats["/dev/pts/ptmx"].startswith("character special file 5:2")
    links = dict(line.split(None, 1) for line in out[7:12])
    assert links == {"/dev/ptmx": "pts/ptmx", "/dev/fd": "/proc/self/fd",
                     "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
                     "/dev/stderr": "/proc/self/fd/2"}
    assert out[12].strip() == "5"
    assert out[13] == "null-ok"
    assert "No space left on device" in out[14]
    assert out[15] == "0"  # /dev/fd lists this shell's fds


def test_linux_devices(root: Path, bundle: Path) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["devices"] = [
            {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
             "uid": 1000, "gid": 1001},
            {"path": "/dev/sub/myzero", "type": "c", "major": 1, "minor": 5},
        ]
    edit(bundle, fn)
    out = run_in(root, bundle, C1, "sh", "-c",
                 "stat -c '%F %t:%T %a %u:%g' /dev/mynull /dev/sub/myzero; "
                 # root here lacks CAP_DAC_OVERRIDE: the 0640 node owned by 1000 is closed to it
                 "{ echo x > /dev/mynull; } 2>&1; echo x > /dev/sub/myzero && echo write-ok; "
                 "head -c 3 /dev/sub/myzero | wc -c"
                 ).stdout.splitlines()
    assert out[0] == "character special file 1:3 640 1000:1001"
    assert out[1].startswith("character special file 1:5 666 0:0")
    assert "Permission denied" in out[2]
    assert out[3] == "write-ok"
    assert out[4].strip() == "3"


def test_unlisted_device_is_unusable_even_if_made(root: Path, bundle: Path) -> None:
    """The device cgroup only allows the default and listed devices: a node the
    container makes itself (CAP_MKNOD) for /dev/loop-control cannot be opened."""
    from .rt_extra import set_caps

    edit(bundle, lambda cfg: set_caps(cfg, ["CAP_MKNOD", "CAP_DAC_OVERRIDE"]))
    out = run_in(root, bundle, C1, "sh", "-c",
                 "mknod /dev/lc c 10 237 && echo made; ( exec 3< /dev/lc ) 2>&1; "
                 "mknod /dev/nul2 c 1 3 && echo x > /dev/nul2 && echo allowed-ok; true"
                 ).stdout.splitlines()
    assert len(out) == 3 and out[0] == "made", out
    assert "Operation not permitted" in out[1], out
    assert out[2] == "allowed-ok"  # /dev/null's numbers are allowed under any name


def test_linux_devices_may_list_ptmx_and_default_devices(root: Path, bundle: Path) -> None:
    """A privileged spec lists every host device, /dev/ptmx and /dev/null among them:
    /dev/ptmx stays the link to the container's devpts (runc skips it)."""
    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["devices"] = [
            {"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2, "fileMode": 0o666},
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666},
            {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0, "fileMode": 0o666},
        ]
    edit(bundle, fn)
    out = run_in(root, bundle, C1, "sh", "-c",
                 "readlink /dev/ptmx; stat -c '%t:%T' /dev/null /dev/pts/ptmx").stdout.split()
    assert out == ["pts/ptmx", "1:3", "5:2"]


def test_masked_paths_are_empty(root: Path, bundle: Path) -> None:
    assert Path("/proc/keys").read_text() != ""  # the host's is not empty
    edit(bundle, lambda cfg: cfg["linux"]["maskedPaths"].extend(["/etc/passwd", "/home"]))
    (bundle / "rootfs" / "home" / "secret").write_text("x")
    out = run_in(root, bundle, C1, "sh", "-c",
                 "for f in /proc/keys /proc/timer_list /etc/passwd; do "
                 "echo $f $(wc -c < $f); done; ls -A /home | wc -l; "
                 "ls -A /sys/firmware | wc -l; touch /home/x 2>&1; true").stdout.splitlines()
    assert out[:3] == ["/proc/keys 0", "/proc/timer_list 0", "/etc/passwd 0"]
    assert out[3].strip() == "0"  # a masked directory: an empty read-only tmpfs
    assert out[4].strip() == "0"
    assert "Read-only file system" in out[5]


def test_proc_kcore_is_masked(root: Path, bundle: Path) -> None:
    if not os.path.exists("/proc/kcore"):
        pytest.skip("this kernel has no /proc/kcore (CONFIG_PROC_KCORE off)")
    out = run_in(root, bundle, C1, "sh", "-c", "head -c 64 /proc/kcore | wc -c").stdout
    assert out.strip() == "0"


def test_readonly_paths_are_unwritable(root: Path, bundle: Path) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = False
        cfg["linux"]["readonlyPaths"].append("/tmp")
    edit(bundle, fn)
    out = run_in(root, bundle, C1, "sh", "-c",
                 # a new netns starts from the host's value: try the other one
                 "f=/proc/sys/net/ipv4/ip_forward; a=$(cat $f); "
                 "{ echo $((1 - a)) > $f; } 2>&1; [ $(cat $f) = $a ] && echo unchanged; "
                 "touch /tmp/x 2>&1; touch /y && echo root-writable; true").stdout.splitlines()
    assert "Read-only file system" in out[0]
    assert out[1] == "unchanged"
    assert "Read-only file system" in out[2]
    assert out[3] == "root-writable"


def test_proc_sysrq_trigger_is_read_only(root: Path, bundle: Path) -> None:
    if not os.path.exists("/proc/sysrq-trigger"):
        pytest.skip("this kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ off)")
    # Opening for writing is enough to prove it; nothing is written.
    out = run_in(root, bundle, C1, "sh", "-c", "( : > /proc/sysrq-trigger ) 2>&1; true").stdout
    assert "Read-only file system" in out


def test_hostname_and_domainname(root: Path, bundle: Path) -> None:
    host_name = os.uname().nodename
    host_domain = Path("/proc/sys/kernel/domainname").read_text()

    def fn(cfg: dict[str, Any]) -> None:
        cfg["hostname"] = "box1"
        cfg["domainname"] = "tomato.test"
    edit(bundle, fn)
    out = run_in(root, bundle, C1, "sh", "-c",
                 "hostname; cat /proc/sys/kernel/domainname").stdout.split()
    assert out == ["box1", "tomato.test"]
    assert os.uname().nodename == host_name
    assert Path("/proc/sys/kernel/domainname").read_text() == host_domain


def test_sysctl_in_new_namespaces(root: Path, bundle: Path) -> None:
    host_fwd = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    # A new netns starts from the host's value: ask for the other one.
    flipped_fwd = "0" if host_fwd.strip() == "1" else "1"
    host_shm = Path("/proc/sys/kernel/shm_rmid_forced").read_text()
    flipped_shm = "0" if host_shm.strip() == "1" else "1"

    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": flipped_fwd,
                                  "kernel.shm_rmid_forced": flipped_shm}
    edit(bundle, fn)
    out = run_in(root, bundle, C1, "sh", "-c",
                 "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced").stdout
    assert out.split() == [flipped_fwd, flipped_shm]
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_fwd
    assert Path("/proc/sys/kernel/shm_rmid_forced").read_text() == host_shm


def test_no_pivot_keeps_masks_and_read_only_paths(root: Path, bundle: Path) -> None:
    out = run_in(root, bundle, C1, "sh", "-c",
                 "wc -c < /proc/keys; ( : > /proc/sys/net/ipv4/ip_forward ) 2>&1; "
                 "touch /x 2>&1; echo $$; true", extra=("--no-pivot",)).stdout.splitlines()
    assert out[0].strip() == "0"
    assert "Read-only file system" in out[1]
    assert "Read-only file system" in out[2]
    assert out[3] == "1"
