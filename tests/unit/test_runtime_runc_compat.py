"""Pure logic of tomato-runtime's runc compatibility: log quoting, --cgroup parsing,
timestamps, the -ENOSYS stub's program, the topmost mount, the documented differences."""

from __future__ import annotations

import errno
import re
import struct

import pytest

from tomato.cli.runtime_values import sub_cgroups as _sub_cgroups
from tomato.errors import InvalidArgument
from tomato.runtime.create import now_rfc3339
from tomato.runtime.features import features
from tomato.runtime.hostmounts import top_mount
from tomato.runtime.log import go_quote


@pytest.mark.parametrize("text,quoted", [
    ("plain", '"plain"'),
    ('exec: "/x": no such file', '"exec: \\"/x\\": no such file"'),
    ("back\\slash", '"back\\\\slash"'),
    ("two\nlines\ttab\r", '"two\\nlines\\ttab\\r"'),
    ("bell\x07", '"bell\\x07"'),
    ("héllo", '"héllo"'),
])
def test_go_quote_is_gos_percent_q(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_sub_cgroups_as_runc_parses_them() -> None:
    assert _sub_cgroups([]) is None
    assert _sub_cgroups(["sub"]) == {"": "sub"}
    assert _sub_cgroups(["pids,memory:a", "cpu:b/c"]) == {"pids": "a", "memory": "a",
                                                         "cpu": "b/c"}
    for bad in (["a:b:c"], ["pids:"], ["sub", "cpu:x"]):
        with pytest.raises(InvalidArgument, match="--cgroup"):
            _sub_cgroups(bad)


def test_created_is_gos_rfc3339nano() -> None:
    for _ in range(50):
        stamp = now_rfc3339()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z", stamp), stamp


MOUNTINFO = """\
22 1 0:21 / /proc rw - proc proc rw
30 1 0:40 / /b/rootfs rw - overlay overlay rw
31 30 0:40 / /b/rootfs rw - overlay overlay rw
32 31 0:50 / /b/rootfs/proc rw - proc proc rw
40 1 0:60 / /with\\040space rw - tmpfs t rw
"""


def test_top_mount_is_the_one_nothing_covers() -> None:
    assert top_mount("/b/rootfs", MOUNTINFO) == 31
    assert top_mount("/b/rootfs/proc", MOUNTINFO) == 32
    assert top_mount("/with space", MOUNTINFO) == 40
    assert top_mount("/nothing", MOUNTINFO) == 0


def test_enosys_stub_returns_enosys_above_the_largest_syscall() -> None:
    from tomato._sys import seccomp
    from tomato.oci import seccomp_spec

    spec = seccomp_spec.parse({"defaultAction": "SCMP_ACT_ERRNO",
                               "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
                               "syscalls": [{"names": ["read", "openat"],
                                             "action": "SCMP_ACT_ALLOW"}]})
    assert spec is not None
    program = seccomp.enosys_stub(spec)
    insns = list(struct.iter_unpack("=HBBI", program))
    assert insns[0] == (0x20, 0, 0, 4)  # the arch first
    rets = [k for code, _jt, _jf, k in insns if code == 0x06]
    assert rets == [seccomp.ACT_ERRNO | errno.ENOSYS]
    compared = {k for code, _jt, _jf, k in insns if code == 0x25}  # JGT: the largest ones
    openat = seccomp.resolve_syscall("openat", seccomp.arch_token("SCMP_ARCH_X86_64"))
    openat_x32 = seccomp.resolve_syscall("openat", seccomp.arch_token("SCMP_ARCH_X32"))
    assert compared == {openat, openat_x32}
    # every jump lands inside the stub or on the first instruction after it
    for i, (code, jt, jf, k) in enumerate(insns):
        if code == 0x05:
            assert i + 1 + k <= len(insns)
        elif code & 0x07 == 0x05:
            assert i + 1 + max(jt, jf) <= len(insns)


def test_features_name_every_difference_from_runc() -> None:
    notes = {k: v for k, v in features()["annotations"].items()
             if k.startswith("io.tomato.runtime.differs-from-runc.")}
    assert {k.rsplit(".", 1)[-1] for k in notes} >= {"seccomp", "startContainer",
                                                     "rootfsPropagation", "kill", "devices"}
    assert all(v and "\n" not in v for v in notes.values())
