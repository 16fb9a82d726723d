"""The eBPF device program, run through a tiny interpreter of the few opcodes it
uses and compared with the rule semantics (later rules win)."""

from __future__ import annotations

import itertools
import struct

import pytest

from tomato.cgroups import devices_bpf
from tomato.cgroups.resources import DeviceRule, effective_device_rules

ACC = {"m": 1, "r": 2, "w": 4}
TYPE = {"b": 1, "c": 2}


def run(prog: bytes, dev_type: str, major: int, minor: int, access: str) -> int:
    """Interpret the program on one bpf_cgroup_dev_ctx."""
    ctx = struct.pack("<III", (sum(ACC[a] for a in access) << 16) | TYPE[dev_type], major,
                      minor)
    insns = [struct.unpack_from("<BBhi", prog, i) for i in range(0, len(prog), 8)]
    reg = [0] * 11
    pc = 0
    for _ in range(10_000):
        code, regs, off, imm = insns[pc]
        dst, src = regs & 0xF, regs >> 4
        pc += 1
        if code == 0x61:
            reg[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0x54:
            reg[dst] = reg[dst] & imm & 0xFFFFFFFF
        elif code == 0x74:
            reg[dst] = (reg[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xBC:
            reg[dst] = reg[src] & 0xFFFFFFFF
        elif code == 0xB7:
            reg[dst] = imm
        elif code == 0x55:
            if reg[dst] != imm:
                pc += off
        elif code == 0x5D:
            if reg[dst] != reg[src]:
                pc += off
        elif code == 0x95:
            return reg[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("program did not exit")


def reference(rules, dev_type, major, minor, access) -> int:
    """runc's semantics: last matching rule decides (access must be covered)."""
    default, exceptions = effective_device_rules(rules)
    for r in reversed(exceptions):
        if r.type not in ("a", dev_type):
            continue
        if not set(access) <= set(r.access):
            continue
        if r.major is not None and r.major != major:
            continue
        if r.minor is not None and r.minor != minor:
            continue
        return int(r.allow)
    return int(default)


RULESETS = [
    (),
    (DeviceRule(False),),
    (DeviceRule(False), DeviceRule(True, "c", 1, 3, "rwm"), DeviceRule(True, "c", 136, None)),
    (DeviceRule(True), DeviceRule(False, "c", 1, 3, "w")),
    (DeviceRule(False), DeviceRule(True, "c", None, None, "m"), DeviceRule(True, "b", 8, 0, "r"),
     DeviceRule(False, "b", 8, None, "rw"), DeviceRule(True, "b", 8, 1, "rw")),
    (DeviceRule(False), DeviceRule(True, "c", 1, 5), DeviceRule(True)),
]


@pytest.mark.parametrize("rules", RULESETS)
def test_program_matches_reference(rules):
    prog = devices_bpf.program(rules)
    assert len(prog) % 8 == 0
    for dev_type, major, minor, access in itertools.product(
            "bc", (1, 8, 136), (0, 1, 3, 5), ("r", "w", "m", "rw", "rwm")):
        assert run(prog, dev_type, major, minor, access) == \
            reference(rules, dev_type, major, minor, access), (dev_type, major, minor, access)
