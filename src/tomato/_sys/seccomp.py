"""Seccomp filters through libseccomp (libseccomp.so.2, Debian's libseccomp2), by ctypes.

The library is loaded on the first call that needs it, so importing this
module costs no dlopen (ctypes itself is imported eagerly: a lazy import
after pivot_root could not find the stdlib).  libseccomp is the library runc and crun use: it knows
every architecture's syscall table, multiplexed calls (socketcall, ipc) and
how to turn rules into BPF.

Use from the runtime's container init::

    filt = seccomp.compile(spec)   # BEFORE pivot_root/chroot: dlopen needs the host's /usr/lib
    ...                            # rootfs, user, capabilities (caps.py's order)
    filt.load()                    # as late as possible: only execve after it
    execve(...)

As runc does, the filter never sets no_new_privs itself (SCMP_FLTATR_CTL_NNP
is turned off): the runtime sets it from ``process.noNewPrivileges``.  Without
no_new_privs, loading a filter needs CAP_SYS_ADMIN, so in that case the
runtime must load it *before* applying the container's capabilities (runc
does exactly this); with no_new_privs it loads it last, just before execve.

``compile`` takes any object shaped like ``tomato.oci.seccomp_spec.SeccompSpec``
(a structural Protocol here, because _sys sits below oci in the layers).
"""

from __future__ import annotations

import ctypes
import errno
import os
from functools import cache

from tomato.errors import InvalidArgument, PermissionDenied, Unavailable

TYPE_CHECKING = False  # typing costs ~3 ms to import: the runtime's start path
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Protocol

LIBRARY = "libseccomp.so.2"

# scmp_compare
_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# Action values (seccomp.h); ERRNO and TRACE carry a 16-bit value in the low bits.
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
_ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
}

# scmp_filter_attr (libseccomp 2.5)
ATTR_ACT_DEFAULT = 1
ATTR_ACT_BADARCH = 2
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7
ATTR_API_SYSRAWRC = 9
_FLAG_ATTRS = {
    "SECCOMP_FILTER_FLAG_TSYNC": ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": ATTR_CTL_SSB,
}

_NR_SCMP_ERROR = -1

#: Syscalls added to Linux after libseccomp 2.5.4's tables (6.5 onwards).  A
#: profile naming one is not wrong, only newer than the library.
NEWER_SYSCALLS = frozenset({
    "cachestat", "fchmodat2", "map_shadow_stack", "futex_wake", "futex_wait",
    "futex_requeue", "statmount", "listmount", "lsm_get_self_attr", "lsm_set_self_attr",
    "lsm_list_modules", "mseal", "setxattrat", "getxattrat", "listxattrat",
    "removexattrat", "open_tree_attr", "file_getattr", "file_setattr", "uretprobe",
})


if TYPE_CHECKING:
    # Structural types only: creating Protocol classes at import costs milliseconds.
    class ArgLike(Protocol):
        @property
        def index(self) -> int: ...
        @property
        def value(self) -> int: ...
        @property
        def value_two(self) -> int: ...
        @property
        def op(self) -> str: ...

    class SyscallLike(Protocol):
        @property
        def names(self) -> Sequence[str]: ...
        @property
        def action(self) -> str: ...
        @property
        def errno_ret(self) -> int | None: ...
        @property
        def args(self) -> Sequence[ArgLike]: ...

    class SpecLike(Protocol):
        @property
        def default_action(self) -> str: ...
        @property
        def default_errno_ret(self) -> int | None: ...
        @property
        def architectures(self) -> Sequence[str]: ...
        @property
        def flags(self) -> Sequence[str]: ...
        @property
        def syscalls(self) -> Sequence[SyscallLike]: ...


@cache
def _structs() -> Any:
    class ArgCmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                    ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]

    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint),
                    ("micro", ctypes.c_uint)]

    return ArgCmp, Version


@cache
def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


@cache
def _lib() -> Any:
    try:
        lib = ctypes.CDLL(LIBRARY, use_errno=True)
    except OSError as err:
        raise Unavailable(f"{LIBRARY} cannot be loaded (install libseccomp2): {err}") from err
    arg_cmp, version = _structs()
    vp, u32, c_int, c_char_p = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_char_p
    sig = {
        "seccomp_init": (vp, [u32]),
        "seccomp_release": (None, [vp]),
        "seccomp_arch_add": (c_int, [vp, u32]),
        "seccomp_arch_remove": (c_int, [vp, u32]),
        "seccomp_arch_exist": (c_int, [vp, u32]),
        "seccomp_arch_native": (u32, []),
        "seccomp_arch_resolve_name": (u32, [c_char_p]),
        "seccomp_syscall_resolve_name": (c_int, [c_char_p]),
        "seccomp_syscall_resolve_name_arch": (c_int, [u32, c_char_p]),
        "seccomp_rule_add_array": (c_int, [vp, u32, c_int, ctypes.c_uint,
                                           ctypes.POINTER(arg_cmp)]),
        "seccomp_attr_set": (c_int, [vp, c_int, u32]),
        "seccomp_load": (c_int, [vp]),
        "seccomp_export_bpf": (c_int, [vp, c_int]),
        "seccomp_version": (ctypes.POINTER(version), []),
    }
    for name, (restype, argtypes) in sig.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def version() -> tuple[int, int, int]:
    """libseccomp's version (loads the library)."""
    v = _lib().seccomp_version().contents
    return (int(v.major), int(v.minor), int(v.micro))


def action_value(action: str, ret: int | None = None) -> int:
    """An OCI action name to libseccomp's value; ERRNO/TRACE default to EPERM (runc)."""
    base = _ACTIONS.get(action)
    if base is None:
        raise InvalidArgument(f"unknown or unsupported seccomp action {action!r}")
    if base in (ACT_ERRNO, ACT_TRACE):
        return base | ((errno.EPERM if ret is None else ret) & 0xFFFF)
    return base


def arch_token(oci_name: str) -> int:
    """SCMP_ARCH_X86_64 -> libseccomp's token; Unavailable if this libseccomp lacks it."""
    if not oci_name.startswith("SCMP_ARCH_"):
        raise InvalidArgument(f"unknown seccomp architecture {oci_name!r}")
    token = int(_lib().seccomp_arch_resolve_name(oci_name[len("SCMP_ARCH_"):].lower().encode()))
    if token == 0:
        major, minor, micro = version()
        raise Unavailable(f"seccomp architecture {oci_name} is not supported by "
                          f"libseccomp {major}.{minor}.{micro}")
    return token


def native_arch() -> int:
    return int(_lib().seccomp_arch_native())


def resolve_syscall(name: str, arch: int | None = None) -> int | None:
    """The syscall number for ``name`` (negative: a libseccomp pseudo-number for a
    syscall the arch lacks); None when libseccomp does not know the name at all."""
    lib = _lib()
    raw = name.encode()
    nr = (lib.seccomp_syscall_resolve_name(raw) if arch is None
          else lib.seccomp_syscall_resolve_name_arch(arch, raw))
    return None if nr == _NR_SCMP_ERROR else int(nr)


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise OSError(-rc, f"{what}: {os.strerror(-rc)}")


class Filter:
    """A compiled, not yet loaded, seccomp filter (a libseccomp context).

    Owns the context: use as a context manager or call ``release``.  ``load``
    does not release it, so a failed load can still be reported and cleaned.
    """

    def __init__(self, ctx: int) -> None:
        self._ctx: int | None = ctx

    def _handle(self) -> int:
        if self._ctx is None:
            raise ValueError("seccomp filter already released")
        return self._ctx

    def load(self) -> None:
        """Install the filter on the calling thread (all threads with TSYNC)."""
        rc = _lib().seccomp_load(self._handle())
        if rc < 0:
            if -rc in (errno.EACCES, errno.EPERM):
                raise PermissionDenied("cannot load the seccomp filter: it needs "
                                       "no_new_privs or CAP_SYS_ADMIN") from OSError(-rc, "")
            _check(rc, "seccomp_load")

    def export_bpf(self) -> bytes:
        """The BPF program as the kernel would get it (8 bytes an instruction)."""
        fd = os.memfd_create("tomato-seccomp-bpf", os.MFD_CLOEXEC)
        try:
            _check(_lib().seccomp_export_bpf(self._handle(), fd), "seccomp_export_bpf")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._ctx is not None:
            _lib().seccomp_release(self._ctx)
            self._ctx = None

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# seccomp(2) by number, for load_bpf with flags (prctl cannot pass flags).
_SECCOMP_SYSCALL = {"x86_64": 317, "aarch64": 277, "riscv64": 277, "s390x": 348,
                    "ppc64le": 358, "i686": 354, "armv7l": 383}
_SECCOMP_SET_MODE_FILTER = 1
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
LOAD_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
               "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}


class Program:
    """A BPF program (``Filter.export_bpf``) ready to load without libseccomp.

    The sock_fprog is built at construction, in the runtime, so ``load`` in
    the container init is a single prctl/seccomp call: no dlopen after
    pivot_root and none of libseccomp's generation cost on the start path.
    Same interface as ``Filter.load``.
    """

    def __init__(self, program: bytes, flags: Sequence[str] = ()) -> None:
        if not program or len(program) % 8 or len(program) // 8 > 0xFFFF:
            raise InvalidArgument(f"not a seccomp BPF program ({len(program)} bytes)")
        self.bits = 0
        for flag in flags:
            if flag not in LOAD_FLAGS:
                raise InvalidArgument(f"seccomp flag {flag} is not supported")
            self.bits |= LOAD_FLAGS[flag]
        self._nr = _SECCOMP_SYSCALL.get(os.uname().machine) if self.bits else None
        if self.bits and self._nr is None:
            raise Unavailable(f"seccomp flags are not supported on {os.uname().machine}")

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        self.program = program  # the bytes, for runtime.seccomp_cache.save_for_exec
        self._buf = ctypes.create_string_buffer(program, len(program))
        self._prog = SockFprog(len(program) // 8, ctypes.cast(self._buf, ctypes.c_void_p))
        self._libc = _libc()

    def load(self) -> None:
        libc, prog = self._libc, ctypes.byref(self._prog)
        if self.bits:
            rc = libc.syscall(ctypes.c_long(self._nr or 0), ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
                              ctypes.c_uint(self.bits), prog)
        else:
            ul = ctypes.c_ulong
            rc = libc.prctl(ctypes.c_int(_PR_SET_SECCOMP), ul(_SECCOMP_MODE_FILTER), prog,
                            ul(0), ul(0))
        if rc != 0:
            err = ctypes.get_errno()
            if err in (errno.EACCES, errno.EPERM):
                raise PermissionDenied("cannot load the seccomp filter: it needs no_new_privs "
                                       "or CAP_SYS_ADMIN") from OSError(err, os.strerror(err))
            raise OSError(err, f"seccomp(SET_MODE_FILTER): {os.strerror(err)}")

    def release(self) -> None:
        """Nothing to free (the interface of Filter)."""


def load_bpf(program: bytes, flags: Sequence[str] = ()) -> None:
    """Install a BPF program from ``Filter.export_bpf`` without libseccomp.

    ``flags`` are the spec's SECCOMP_FILTER_FLAG_* names.
    """
    Program(program, flags).load()


# ---- runc's -ENOSYS stub ---------------------------------------------------------------

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_TOKEN = 0x4000003E  # libseccomp's SCMP_ARCH_X32: x86_64 with __X32_SYSCALL_BIT
_X32_BIT = 0x40000000
_S390_TOKENS = (0x16, 0x80000016)  # AUDIT_ARCH_S390, AUDIT_ARCH_S390X
_ALLOWING = (ACT_ALLOW, ACT_LOG, ACT_TRACE)
# BPF opcodes (linux/filter.h)
_LD_W_ABS, _JA, _JEQ, _JGT, _JSET, _RET = 0x20, 0x05, 0x15, 0x25, 0x45, 0x06


def enosys_stub(spec: SpecLike) -> bytes:
    """BPF to run before the profile's own: a syscall numbered above every syscall the
    profile names (for the calling architecture) gets ENOSYS, not the default action.

    A profile written before clone3 existed denies it with EPERM, and glibc then
    fails instead of falling back to clone; ENOSYS says "not implemented here", which
    every program handles.  This is runc's stub (patchbpf/enosys_linux.go): the
    largest number per architecture over every rule's names, the profile's
    architectures plus the native one, nothing when the default action allows
    (allow, log, trace) or already is ENOSYS.  Returns b"" when there is nothing to add.
    """
    default = action_value(spec.default_action, spec.default_errno_ret)
    if default in _ALLOWING or (default & 0xFFFF0000 == ACT_ERRNO
                                and default & 0xFFFF == errno.ENOSYS):
        return b""
    tokens = [native_arch()]
    for name in spec.architectures:
        token = arch_token(name)
        if token not in tokens:
            tokens.append(token)
    largest: dict[int, dict[str, int]] = {}  # audit arch -> {"": nr} or {"64"/"x32": nr}
    for token in tokens:
        top = 0
        for call in spec.syscalls:
            for name in call.names:
                nr = resolve_syscall(name, token)
                if nr is not None and nr > top:
                    top = nr
        if top == 0:
            continue
        if token == _X32_TOKEN:
            largest.setdefault(_AUDIT_ARCH_X86_64, {})["x32"] = top
        elif token == _AUDIT_ARCH_X86_64:
            largest.setdefault(_AUDIT_ARCH_X86_64, {})["64"] = top
        else:
            largest.setdefault(token, {})[""] = top
    if not largest:
        return b""
    # (code, jt, jf, k); k may be a label for an unconditional jump (resolved below).
    insns: list[tuple[int, int, int, Any]] = [(_LD_W_ABS, 0, 0, 4)]  # the arch
    for audit in largest:
        insns += [(_JEQ, 0, 1, audit), (_JA, 0, 0, ("arch", audit))]
    insns.append((_JA, 0, 0, "filter"))
    labels: dict[Any, int] = {}
    for audit, tops in largest.items():
        labels[("arch", audit)] = len(insns)
        insns.append((_LD_W_ABS, 0, 0, 0))  # the syscall number
        if audit == _AUDIT_ARCH_X86_64:
            insns += [(_JSET, 0, 1, _X32_BIT), (_JA, 0, 0, "x32")]
            if "64" in tops:
                insns += [(_JGT, 0, 1, tops["64"]), (_JA, 0, 0, "enosys")]
            insns.append((_JA, 0, 0, "filter"))
            labels["x32"] = len(insns)
            if "x32" in tops:
                insns += [(_JGT, 0, 1, tops["x32"]), (_JA, 0, 0, "enosys")]
        else:
            if audit in _S390_TOKENS:  # syscall 0 multiplexes the ones the kernel lacks
                insns += [(_JEQ, 0, 1, 0), (_JA, 0, 0, "enosys")]
            insns += [(_JGT, 0, 1, tops[""]), (_JA, 0, 0, "enosys")]
        insns.append((_JA, 0, 0, "filter"))
    labels["enosys"] = len(insns)
    insns.append((_RET, 0, 0, ACT_ERRNO | errno.ENOSYS))
    labels["filter"] = len(insns)
    import struct

    out = []
    for i, (code, jt, jf, k) in enumerate(insns):
        if not isinstance(k, int):
            k = labels[k] - (i + 1)
        out.append(struct.pack("=HBBI", code, jt, jf, k))
    return b"".join(out)


def compile(spec: SpecLike, warnings: list[str] | None = None) -> Filter:  # noqa: A001
    """Build a libseccomp filter from a parsed spec (``tomato.oci.seccomp_spec``).

    Unknown syscall names: a name libseccomp resolves on none of the filter's
    architectures is an InvalidArgument naming it, unless it is a real syscall
    newer than the installed libseccomp (NEWER_SYSCALLS): that rule is skipped
    with a warning, as runc does; a name that exists only on some
    architectures is added for those (libseccomp skips the others).  Rules
    whose action equals the default action are left out, as runc does.
    """
    lib = _lib()
    arg_cmp, _version = _structs()
    default = action_value(spec.default_action, spec.default_errno_ret)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(errno.ENOMEM, "seccomp_init failed")
    filt = Filter(ctx)
    try:
        # The runtime sets no_new_privs itself, from process.noNewPrivileges.
        _check(lib.seccomp_attr_set(ctx, ATTR_CTL_NNP, 0), "seccomp_attr_set(CTL_NNP)")
        # Have seccomp_load report the kernel's errno rather than ECANCELED (>= 2.5.0).
        lib.seccomp_attr_set(ctx, ATTR_API_SYSRAWRC, 1)
        for flag in spec.flags:
            attr = _FLAG_ATTRS.get(flag)
            if attr is None:
                raise InvalidArgument(f"seccomp flag {flag} is not supported")
            rc = lib.seccomp_attr_set(ctx, attr, 1)
            if rc < 0:
                raise Unavailable(f"seccomp flag {flag} is not supported here: "
                                  f"{os.strerror(-rc)}")
        arches = [native_arch()]
        for name in spec.architectures:
            token = arch_token(name)
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and -rc != errno.EEXIST:
                # EDOM: an arch of the other endianness cannot share a filter with native.
                raise InvalidArgument(f"seccomp architecture {name} cannot be used on this "
                                      f"host: {os.strerror(-rc)}")
            if token not in arches:
                arches.append(token)
        for call in spec.syscalls:
            action = action_value(call.action, call.errno_ret)
            if action == default:
                continue
            conds = [(a.index, _OPS[a.op], a.value, a.value_two) for a in call.args]
            # libseccomp ANDs the conditions of one rule and refuses two on the same
            # argument; runc then adds one rule per condition (OR), so do the same.
            indexes = [c[0] for c in conds]
            groups = ([[c] for c in conds] if len(set(indexes)) != len(indexes)
                      else [conds])
            for name in call.names:
                nr = resolve_syscall(name)
                if nr is None:
                    if name in NEWER_SYSCALLS:
                        # Real, but newer than this libseccomp: runc skips these too.
                        if warnings is not None:
                            warnings.append(f"syscall {name} is not known to libseccomp "
                                            f"{'.'.join(map(str, version()))}; rule ignored")
                        continue
                    if not any(resolve_syscall(name, a) is not None for a in arches):
                        raise InvalidArgument(f"unknown syscall {name!r} in seccomp profile")
                    if warnings is not None:
                        warnings.append(f"syscall {name!r} is unknown on the native "
                                        "architecture; ignored there")
                    continue
                for group in groups:
                    array = (arg_cmp * max(len(group), 1))(*[arg_cmp(*c) for c in group])
                    rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), array)
                    if rc < 0:
                        raise InvalidArgument(f"cannot add seccomp rule for syscall {name!r}: "
                                              f"{os.strerror(-rc)}")
        return filt
    except BaseException:
        filt.release()
        raise


__all__ = [
    "NEWER_SYSCALLS",
    "LOAD_FLAGS",
    "Filter",
    "Program",
    "action_value",
    "arch_token",
    "compile",
    "enosys_stub",
    "load_bpf",
    "native_arch",
    "resolve_syscall",
    "version",
]
