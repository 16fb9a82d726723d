"""Pure logic of the lab: ELF parsing, knob translation, explain formatting, overlay options."""

from __future__ import annotations

import io

import pytest
from elfbuild import elf64 as _elf64

from tomato._sys.elf import parse_elf, read_elf
from tomato.errors import InvalidArgument, NotFound
from tomato.lab import translate as tr
from tomato.lab.explain import NULL, Explainer, mount_shell
from tomato.lab.layers import stack_from_options


def test_elf_needed_interpreter_and_runpath():
    info = parse_elf(_elf64(b"/lib64/ld-linux-x86-64.so.2", [b"libtinfo.so.6", b"libc.so.6"],
                            runpath=b"$ORIGIN/../lib:/opt/x"))
    assert info.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert info.needed == ("libtinfo.so.6", "libc.so.6")
    assert info.runpath == ("$ORIGIN/../lib", "/opt/x")
    assert not info.is_static and info.elf_class == 2 and info.machine == 62


def test_elf_static():
    info = parse_elf(_elf64(None, []))
    assert info.interpreter is None and info.needed == () and info.is_static


@pytest.mark.parametrize("data", [b"#!/bin/sh\necho hi\n" * 4, b"", b"\x7fELF" + b"\x09" * 60])
def test_not_elf_is_invalid_argument(data):
    with pytest.raises(InvalidArgument):
        parse_elf(data, "x")


def test_truncated_program_headers():
    data = _elf64(b"/lib64/ld.so", [b"libc.so.6"])[:80]
    with pytest.raises(InvalidArgument):
        parse_elf(data, "x")


def test_read_elf_missing_file():
    with pytest.raises(NotFound):
        read_elf("/nonexistent/prog")


def test_v1_names_on_v2():
    files = {"cpu.max": "max 100000\n", "memory.max": "max\n"}
    assert tr.to_v2_writes("cpu.cfs_quota_us", "30000", files.__getitem__) == \
        [("cpu.max", "30000 100000")]
    files["cpu.max"] = "30000 100000\n"
    assert tr.to_v2_writes("cpu.cfs_period_us", "50000", files.__getitem__) == \
        [("cpu.max", "30000 50000")]
    assert tr.to_v2_writes("cpu.cfs_quota_us", "-1", files.__getitem__) == \
        [("cpu.max", "max 100000")]
    assert tr.to_v2_writes("memory.limit_in_bytes", "1048576", files.__getitem__) == \
        [("memory.max", "1048576")]
    assert tr.to_v2_writes("cpu.shares", "1024", files.__getitem__) == [("cpu.weight", "39")]
    assert tr.to_v2_writes("freezer.state", "FROZEN", files.__getitem__) == \
        [("cgroup.freeze", "1")]
    assert tr.to_v2_writes("pids.max", "10", files.__getitem__) == [("pids.max", "10")]
    with pytest.raises(InvalidArgument):
        tr.to_v2_writes("memory.memsw.limit_in_bytes", "100", files.__getitem__)


def test_v2_names_on_v1():
    assert tr.to_v1_writes("cpu.max", "30000 100000") == \
        [("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "30000")]
    assert tr.to_v1_writes("cpu.max", "max") == [("cpu.cfs_quota_us", "-1")]
    assert tr.to_v1_writes("memory.max", "max") == [("memory.limit_in_bytes", "-1")]
    assert tr.to_v1_writes("cgroup.freeze", "1") == [("freezer.state", "FROZEN")]
    with pytest.raises(InvalidArgument):
        tr.to_v1_writes("cpu.max", "a b c")


def test_reading_back_across_versions():
    v2 = {"cpu.max": "30000 100000", "cpu.stat": "usage_usec 12\nuser_usec 1\n",
          "memory.current": "4096"}
    assert tr.v1_value_on_v2("cpu.cfs_quota_us", v2.__getitem__) == "30000"
    assert tr.v1_value_on_v2("cpuacct.usage", v2.__getitem__) == "12000"
    assert tr.v1_value_on_v2("memory.usage_in_bytes", v2.__getitem__) == "4096"
    v1 = {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000",
          "memory.limit_in_bytes": tr.V1_MAX}
    assert tr.v2_value_on_v1("cpu.max", v1.__getitem__) == "max 100000"
    assert tr.v2_value_on_v1("memory.max", v1.__getitem__) == "max"
    assert tr.v1_controller_for("io.weight") == "blkio"
    assert tr.v2_controller_for("cpuacct.usage") == "cpu"


def test_explain_lines():
    out = io.StringIO()
    ex = Explainer(out)
    ex.unshare(0x20000000 | 0x00020000)
    ex.write("/sys/fs/cgroup/cpu/x/cpu.cfs_quota_us", "30000")
    ex.mount("overlay", "/m", "overlay", 0, "lowerdir=/a:/b,upperdir=/u,workdir=/w")
    lines = out.getvalue().splitlines()
    assert lines[0] == "+ unshare(CLONE_NEWNS|CLONE_NEWPID) — unshare --mount --pid"
    assert lines[1].endswith("— echo 30000 > /sys/fs/cgroup/cpu/x/cpu.cfs_quota_us")
    assert lines[2].endswith(
        "— mount -t overlay -o lowerdir=/a:/b,upperdir=/u,workdir=/w overlay /m")


def test_null_explainer_does_nothing():
    assert NULL.enabled is False
    assert NULL.step("x", "y") is None
    assert NULL.mount("a", "b", "c", 0, None) is None
    assert NULL.unshare(0) is None


def test_mount_shell_forms():
    assert mount_shell("/a", "/b", None, 0x1000 | 0x4000, None) == "mount --rbind /a /b"
    assert mount_shell("none", "/", None, 0x4000 | 0x40000, None) == "mount --make-rprivate /"
    assert mount_shell("proc", "/proc", "proc", 0x2 | 0x4 | 0x8, None) == \
        "mount -t proc -o nosuid,nodev,noexec proc /proc"


def test_overlay_options_order():
    s = stack_from_options("overlay", "overlay",
                           ("lowerdir=/l1:/l2", "upperdir=/u", "workdir=/w"))
    assert [(la.role, la.index, la.path) for la in s.layers] == \
        [("upperdir", 0, "/u"), ("lowerdir", 1, "/l1"), ("lowerdir", 2, "/l2")]
    assert s.workdir == "/w"
    assert s.mount_command("/m") == \
        "mount -t overlay overlay -o lowerdir=/l1:/l2,upperdir=/u,workdir=/w /m"
    b = stack_from_options("bind", "/snap/fs", ("rbind", "ro"))
    assert [la.path for la in b.layers] == ["/snap/fs"] and b.upper is None


def test_explain_is_cheap_to_import():
    """The runtime's start path may import it: no dataclasses, typing, enum or re."""
    import subprocess
    import sys
    code = ("import sys; before = set(sys.modules); import tomato.lab.explain; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    added = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split()
    assert set(added) <= {"__future__", "tomato", "tomato.lab", "tomato.lab.explain",
                          "tomato.explain", "tomato.explain.shell",
                          "tomato.explain.trace"}, added


def test_null_explainer_overrides_every_reporting_method():
    from tomato.lab.explain import REPORTING, NullExplainer, _noop
    public = {n for n in vars(Explainer) if not n.startswith("_") and callable(
        getattr(Explainer, n))}
    assert public == set(REPORTING)
    assert all(getattr(NullExplainer, n) is _noop for n in REPORTING)


def test_explainer_on_a_file_descriptor():
    import os
    r, w = os.pipe()
    Explainer(w).pivot_root(".", ".")
    os.close(w)
    assert os.read(r, 1000) == b'+ pivot_root(".", ".") \xe2\x80\x94 pivot_root . .\n'
    os.close(r)


def test_parse_steps_reads_back_what_was_written():
    from tomato.lab.explain import parse_steps
    out = io.StringIO()
    ex = Explainer(out)
    ex.sethostname("box")
    ex.umount("/old", 2)
    assert parse_steps("noise\n" + out.getvalue()) == [
        ('sethostname("box")', "hostname box"), ('umount2("/old", MNT_DETACH)', "umount -l /old")]


def test_memory_sizes_with_suffixes():
    assert tr.to_v2_writes("memory.limit_in_bytes", "64M", {}.__getitem__) == \
        [("memory.max", str(64 << 20))]
    assert tr.to_v1_writes("memory.max", "1g") == [("memory.limit_in_bytes", str(1 << 30))]
    with pytest.raises(InvalidArgument):
        tr.to_v2_writes("memory.limit_in_bytes", "lots", {}.__getitem__)
