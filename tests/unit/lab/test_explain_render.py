"""The --explain summary as pure logic: steps in, groups out; who prints what across forks."""

from __future__ import annotations

import os

from tomato.explain import layout, render
from tomato.explain.summary import Summary

CONTAINER = "fa16beae1db442e460b417cb870c70426099efb47ad66c9514cd57083ba94943"
ROOTFS = f"/r/containers/{CONTAINER}/bundle/rootfs"
NEWNS, NEWUTS, NEWIPC, NEWNET, NEWPID, NEWCGROUP = (0x20000, 0x4000000, 0x8000000, 0x40000000,
                                                   0x20000000, 0x2000000)
MS_BIND, MS_REC, MS_PRIVATE, MS_SLAVE, MS_REMOUNT, MS_RDONLY = (0x1000, 0x4000, 0x40000,
                                                                 0x80000, 0x20, 0x1)


def test_short_cuts_64_hex_ids_only():
    assert layout.short(f"/x/{CONTAINER}/y") == "/x/fa16beae1db4/y"
    assert layout.short("deadbeef" * 7) == "deadbeef" * 7  # 56 hex: not an id of ours
    assert layout.short("") == ""


def test_group_wraps_text_at_semicolons_and_shell_at_ands():
    g = layout.Group("ns")
    g.text(*[f"part {i:02d} " + "x" * 30 for i in range(5)])
    g.shell(*[f"command{i} " + "y" * 40 for i in range(4)])
    lines = g.lines()
    assert lines[0].startswith("[ns]       part 00 ") and lines[0].endswith(";")
    assert all(len(line) <= layout.WIDTH for line in lines)
    assert [line for line in lines if "$ " in line][0].endswith(" &&")
    assert sum(line.count("command") for line in lines) == 4


def test_a_container_made_by_the_runtime():
    steps = [
        ("mount", ("overlay", ROOTFS, "overlay", 0,
                   "lowerdir=/s/1/fs:/s/2/fs,upperdir=/s/3/fs,workdir=/s/3/work")),
        ("mkdir", (f"/sys/fs/cgroup/cpu/tomato/{CONTAINER}",)),
        ("mkdir", (f"/sys/fs/cgroup/memory/tomato/{CONTAINER}",)),
        ("write", (f"/sys/fs/cgroup/cpu/tomato/{CONTAINER}/cpu.cfs_quota_us", "50000")),
        ("write", (f"/sys/fs/cgroup/memory/tomato/{CONTAINER}/memory.limit_in_bytes", "67108864")),
        ("write", (f"/sys/fs/cgroup/devices/tomato/{CONTAINER}/devices.deny", "a")),
        ("write", (f"/sys/fs/cgroup/devices/tomato/{CONTAINER}/devices.allow", "c 1:3 rwm")),
        ("write", (f"/sys/fs/cgroup/devices/tomato/{CONTAINER}/devices.allow", "c 1:5 rwm")),
        ("mkdir", (f"/sys/fs/cgroup/devices/tomato/{CONTAINER}",)),
        ("mkdir", (f"/sys/fs/cgroup/unified/tomato/{CONTAINER}",)),
        *[("mkdir", (f"/sys/fs/cgroup/{c}/tomato/{CONTAINER}",)) for c in ("pids", "freezer")],
        ("clone", (NEWNS | NEWUTS | NEWIPC | NEWNET | NEWPID,)),
        ("hostname", ("box",)),
        ("mount", ("none", "/", None, MS_REC | MS_SLAVE, None)),
        ("mount", (ROOTFS, ROOTFS, None, MS_BIND | MS_REC, None)),
        ("mount", ("proc", f"{ROOTFS}/proc", "proc", 0xe, None)),
        ("mount", ("tmpfs", f"{ROOTFS}/dev", "tmpfs", 0x2, "mode=755")),
        ("unshare", (NEWCGROUP,)),
        ("pivot", (".", ".")),
        ("umount", (".", 2)),
        ("mount", ("/dev/null", "/proc/keys", None, MS_BIND, None)),
        ("mount", ("/proc/sys", "/proc/sys", None, MS_BIND | MS_REC, None)),
        ("mount", ("none", "/proc/sys", None, MS_RDONLY | MS_REMOUNT | MS_BIND | MS_REC, None)),
        ("exec", (("/bin/ls", "/"),)),
    ]
    spec = {"process": {"capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"]},
                        "noNewPrivileges": True, "user": {"uid": 0, "gid": 0}},
            "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO",
                                  "syscalls": [{"names": ["read", "write"]}, {"names": ["x"]}]}}}
    lines = render.render(steps, {"CapBnd": "0000000000000021"}, spec, {})
    text = "\n".join(lines)
    assert [line.split()[0] for line in lines if line.startswith("[")] == [
        "[rootfs]", "[cgroup]", "[ns]", "[mounts]", "[mask]", "[security]", "[exec]"]
    assert lines[0] == "[rootfs]   overlay: 2 lowerdirs + upperdir on ROOTFS, pivot_root into " \
                       "it, the old root detached"
    assert "           ROOTFS = /r/containers/fa16beae1db4/bundle/rootfs" in lines
    assert "[cgroup]   tomato/fa16beae1db4 in 6 hierarchies: cpu memory devices pids freezer " \
           "(v1), unified (v2)" in lines
    joined = text.replace(";\n" + " " * 11, "; ")  # a paragraph wraps at its "; "
    assert "limits: cpu.cfs_quota_us=50000 memory.limit_in_bytes=67108864; devices: deny " \
           "all, allow 2 rules; the init joins each (cgroup.procs)" in joined
    assert "[ns]       new: mnt uts ipc net pid cgroup; the init is pid 1 there; hostname box" \
        in lines
    assert "[mounts]   / rslave; 2 mounts in ROOTFS:" in lines
    assert "           /proc /dev" in lines
    assert "[mask]     1 paths hidden: /proc/keys" in lines
    assert "           1 made read-only: /proc/sys" in lines
    assert lines[-2:] == [
        "           $ setpriv --no-new-privs --bounding-set=-all,+chown,+kill --reuid=0 "
        "--regid=0 CMD   (seccomp: no shell tool)", "[exec]     /bin/ls /"]
    assert "[security] caps: 2, seccomp: 3 rules (default errno), no_new_privs, uid 0 gid 0" \
        in lines
    assert CONTAINER not in text


def test_the_engines_network_is_one_line_a_part():
    steps = [("unshare", (NEWNET,)),
             ("mount", ("/proc/thread-self/ns/net", f"/r/netns/{CONTAINER}", None, MS_BIND,
                        None)),
             ("setns", ("/proc/thread-self/ns/net", NEWNET)),
             ("link", (("ip", "link", "set", "dev", "#1", "up"), "")),
             ("link", (("ip", "link", "add", "br0", "type", "bridge"), "")),
             ("link", (("ip", "addr", "add", "10.1.0.1/16", "dev", "#9"), "")),
             ("link", (("ip", "link", "add", "veth1", "master", "9", "type", "veth", "peer",
                        "name", "eth0", "netns", "/proc/self/fd/5"), "br0")),
             ("link", (("ip", "addr", "add", "10.1.0.2/16", "dev", "#2"), "")),
             ("link", (("ip", "link", "set", "dev", "#2", "up"), "")),
             ("link", (("ip", "route", "add", "default", "via", "10.1.0.1"), ""))]
    assert render.render(steps) == [
        "[net]      a netns pinned to a file: NETNS = /r/netns/fa16beae1db4",
        "           bridge br0 made, the gateway 10.1.0.1/16 on it",
        "           veth pair veth1 ⇄ eth0 (in NETNS): 10.1.0.2/16, route default via 10.1.0.1",
        "           $ touch NETNS && unshare --net=NETNS true",
        "           $ ip link add br0 type bridge && ip addr add 10.1.0.1/16 dev br0 &&",
        "           $ ip link add veth1 master br0 type veth peer name eth0 netns NETNS",
        "           $ nsenter --net=NETNS sh -c 'ip link set lo up && ip addr add 10.1.0.2/16 "
        "dev eth0 && ip link set eth0 up && ip route add default via 10.1.0.1'"]


def test_files_read_are_each_shown_with_their_full_path():
    path = f"/sys/fs/cgroup/cpu/tomato/{CONTAINER}/cpu.cfs_quota_us"
    assert render.render([("read", (path, "30000"))]) == [
        "[cgroup]   cpu.cfs_quota_us is 30000", f"           $ cat {path}"]


def test_steps_no_group_explains_are_shown_as_they_are():
    assert render.render([("step", ('chroot("/x")', "chroot /x"))]) == [
        '[step]     chroot("/x")', "           $ chroot /x"]


def test_each_step_is_printed_once_across_a_fork():
    """The steps recorded before a fork are the child's to print (a container's init
    at its execve); after it, the parent prints only its own."""
    r, w = os.pipe()
    ex = Summary(w)
    ex.sethostname("before-fork")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        ex.mkdir("/sys/fs/cgroup/pids/x")
        ex.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    ex.flush()  # nothing: the child printed our step with its own
    ex.umount("/somewhere", 2)
    ex.flush()
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read().splitlines()
    assert out == ["[cgroup]   made x in pids", "           $ mkdir /sys/fs/cgroup/pids/x",
                   "[ns]       hostname before-fork", "           $ hostname before-fork",
                   "[step]     unmount /somewhere", "           $ umount -l /somewhere"]


def test_a_helper_fork_never_prints_at_its_exit():
    r, w = os.pipe()
    ex = Summary(w)
    ex.sethostname("kept")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - a helper (an nft child) that exits normally
        ex.finish()
        os._exit(0)
    os.waitpid(pid, 0)
    ex.finish()  # ours to print: the helper printed nothing
    os.close(w)
    with os.fdopen(r) as f:
        assert f.read().splitlines() == ["[ns]       hostname kept",
                                         "           $ hostname kept"]
