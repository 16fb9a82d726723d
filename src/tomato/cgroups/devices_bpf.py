"""cgroup v2 device control: a BPF_PROG_TYPE_CGROUP_DEVICE program made from
the device rules and attached to the container's cgroup with bpf(2).

This module is the one ctypes user outside ``tomato._sys`` (the bpf() syscall
only; it is imported lazily, by the v2 backend, when device rules are set).
The program is the one runc generates (libcontainer/cgroups/devices/ebpf and
devicefilter): rules are matched last-first, the first match decides, and the
default (allow or deny) ends the program.
"""

from __future__ import annotations

import ctypes
import os
import struct

from tomato.errors import PermissionDenied, Unavailable

from .resources import DeviceRule, effective_device_rules

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH = 5, 8, 9
BPF_PROG_GET_FD_BY_ID, BPF_PROG_QUERY = 13, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
# access_type = (access << 16) | type
DEVCG_TYPE = {"b": 1, "c": 2}
DEVCG_ACC = {"m": 1, "r": 2, "w": 4}

# eBPF opcodes (linux/bpf_common.h, linux/bpf.h)
_LDX_W = 0x61           # dst = *(u32 *)(src + off)
_ALU32_AND_K = 0x54
_ALU32_RSH_K = 0x74
_ALU32_MOV_X = 0xBC
_ALU64_MOV_K = 0xB7
_JNE_K = 0x55
_JNE_X = 0x5D
_EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(rules: tuple[DeviceRule, ...]) -> bytes:
    """The instructions for ``rules`` (ordered OCI semantics, later wins)."""
    default_allow, exceptions = effective_device_rules(rules)
    out = [
        _insn(_LDX_W, 2, 1, 0),          # r2 = ctx->access_type
        _insn(_ALU32_AND_K, 2, imm=0xFFFF),   # r2 = type
        _insn(_LDX_W, 3, 1, 0),
        _insn(_ALU32_RSH_K, 3, imm=16),  # r3 = access
        _insn(_LDX_W, 4, 1, 4),          # r4 = major
        _insn(_LDX_W, 5, 1, 8),          # r5 = minor
    ]
    for r in reversed(exceptions):
        block: list[tuple] = []
        if r.type != "a":
            block.append((_JNE_K, 2, 0, DEVCG_TYPE[r.type]))
        if set(r.access) != set("rwm"):
            bits = sum(DEVCG_ACC[c] for c in r.access)
            # if (access & bits) != access: the request wants more than the rule covers
            block += [(_ALU32_MOV_X, 1, 3, None), (_ALU32_AND_K, 1, 0, bits),
                      (_JNE_X, 1, 3, None)]
        if r.major is not None:
            block.append((_JNE_K, 4, 0, r.major))
        if r.minor is not None:
            block.append((_JNE_K, 5, 0, r.minor))
        n = len(block) + 2  # + "r0 = verdict; exit"
        for i, (code, dst, src, imm) in enumerate(block):
            if code in (_JNE_K, _JNE_X):
                # jump past the rest of this block to the next rule
                out.append(_insn(code, dst, src, off=n - i - 1, imm=imm or 0))
            else:
                out.append(_insn(code, dst, src, imm=imm or 0))
        out += [_insn(_ALU64_MOV_K, 0, imm=1 if r.allow else 0), _insn(_EXIT)]
    out += [_insn(_ALU64_MOV_K, 0, imm=1 if default_allow else 0), _insn(_EXIT)]
    return b"".join(out)


class _Bpf:
    def __init__(self) -> None:
        nr = _SYS_BPF.get(os.uname().machine)
        if nr is None:
            raise Unavailable(f"bpf(2) syscall number unknown on {os.uname().machine}")
        self.nr = nr
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long

    def __call__(self, cmd: int, attr: bytes) -> tuple[int, bytes]:
        buf = ctypes.create_string_buffer(attr, len(attr))
        ret = self.libc.syscall(ctypes.c_long(self.nr), ctypes.c_int(cmd), buf,
                                ctypes.c_uint(len(attr)))
        if ret < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return ret, buf.raw


def load(insns: bytes) -> int:
    """BPF_PROG_LOAD → a program fd (the caller closes it)."""
    bpf = _Bpf()
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"Apache-2.0")
    logbuf = ctypes.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8,
                       ctypes.addressof(code), ctypes.addressof(lic), 1, len(logbuf),
                       ctypes.addressof(logbuf), 0, 0, b"tomato_devices", 0, 0)
    try:
        fd, _ = bpf(BPF_PROG_LOAD, attr)
    except OSError as err:
        log = logbuf.value.decode(errors="replace").strip().splitlines()
        raise Unavailable("cannot load the device bpf program: "
                          f"{os.strerror(err.errno or 0).lower()}"
                          + (f" ({log[-1]})" if log else "")) from err
    return fd


def _query(bpf: _Bpf, cgroup_fd: int) -> list[int]:
    ids = (ctypes.c_uint32 * 64)()
    attr = struct.pack("<IIIIQII", cgroup_fd, BPF_CGROUP_DEVICE, 0, 0,
                       ctypes.addressof(ids), 64, 0)
    _, raw = bpf(BPF_PROG_QUERY, attr)
    count = struct.unpack_from("<I", raw, 24)[0]
    return list(ids[:count])


def attached(cgroup_dir: str) -> list[int]:
    """Ids of the device programs attached to ``cgroup_dir``."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _query(_Bpf(), fd)
    finally:
        os.close(fd)


def install(cgroup_dir: str, rules: tuple[DeviceRule, ...]) -> None:
    """Attach a program for ``rules`` to ``cgroup_dir``, replacing earlier ones.

    The new program is attached before the old ones are detached (all programs
    of a cgroup must allow an access), so there is no permissive window.
    """
    bpf = _Bpf()
    prog = load(program(rules))
    cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            old = _query(bpf, cg)
        except OSError:
            old = []
        try:
            bpf(BPF_PROG_ATTACH, struct.pack("<IIIII", cg, prog, BPF_CGROUP_DEVICE,
                                             BPF_F_ALLOW_MULTI, 0))
        except OSError as err:
            raise PermissionDenied(f"cannot attach the device bpf program to {cgroup_dir}: "
                                   f"{os.strerror(err.errno or 0).lower()}") from err
        for prog_id in old:
            try:
                old_fd = bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("<III", prog_id, 0, 0))[0]
            except OSError:
                continue  # detached meanwhile
            try:
                bpf(BPF_PROG_DETACH, struct.pack("<IIIII", cg, old_fd, BPF_CGROUP_DEVICE, 0, 0))
            except OSError:
                pass
            finally:
                os.close(old_fd)
    finally:
        os.close(cg)
        os.close(prog)
