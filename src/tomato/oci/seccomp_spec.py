"""OCI ``linux.seccomp``: frozen dataclasses, parsing and validation (no I/O).

What can only be checked against libseccomp (whether a syscall name exists,
whether libseccomp supports an architecture) is checked when the filter is
compiled, by ``tomato._sys.seccomp.compile``.  Everything else is checked
here, so a bad config.json fails at ``create`` with the offending name:

- an unknown action, architecture, operator or flag is an InvalidArgument;
- SCMP_ACT_NOTIFY and ``listenerPath`` are refused as not supported (no
  seccomp agent support yet);
- ``errnoRet`` is allowed only with SCMP_ACT_ERRNO and SCMP_ACT_TRACE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tomato.errors import InvalidArgument
from tomato.records import field, record

TYPE_CHECKING = False  # importing typing costs ~2 ms on the start path
if TYPE_CHECKING:
    from typing import Any

#: Actions the OCI spec names.  NOTIFY is known but refused.
ACTIONS = frozenset({
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
})
UNSUPPORTED_ACTIONS = frozenset({"SCMP_ACT_NOTIFY"})
#: Actions that carry a return value (errnoRet): the errno, or the ptrace message.
ACTIONS_WITH_RET = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})

#: Architectures the OCI runtime spec lists (config-linux.md).
ARCHITECTURES = frozenset({
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
})

OPERATORS = frozenset({
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
})

FLAGS = frozenset({
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
})
#: Only meaningful with SCMP_ACT_NOTIFY, which is refused.
UNSUPPORTED_FLAGS = frozenset({"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"})

#: Syscalls take at most six arguments.
MAX_ARG_INDEX = 5

_U64 = 1 << 64


@record
class SeccompArg:
    index: int
    value: int
    op: str
    value_two: int = 0


@record
class SeccompSyscall:
    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[SeccompArg, ...] = ()


@record
class SeccompSpec:
    default_action: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    syscalls: tuple[SeccompSyscall, ...] = field(default_factory=tuple)


def _u64(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{where} must be an unsigned integer, not {value!r}")
    if not 0 <= value < _U64:
        raise InvalidArgument(f"{where} {value} is out of range for a 64-bit argument")
    return value


def _errno_ret(value: Any, action: str, where: str) -> int | None:
    if value is None:
        return None
    if action not in ACTIONS_WITH_RET:
        raise InvalidArgument(f"{where} is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, "
                              f"not {action}")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise InvalidArgument(f"{where} must be an integer from 0 to 65535, not {value!r}")
    return value


def _action(value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in ACTIONS:
        raise InvalidArgument(f"unknown seccomp action {value!r} in {where}")
    if value in UNSUPPORTED_ACTIONS:
        raise InvalidArgument(f"seccomp action {value} in {where} is not supported")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidArgument(f"{where} must be a list of strings")
    for item in value:
        if not isinstance(item, str):
            raise InvalidArgument(f"{where} must be a list of strings, found {item!r}")
    return list(value)


def _arg(raw: Any, where: str) -> SeccompArg:
    if not isinstance(raw, Mapping):
        raise InvalidArgument(f"{where} must be an object")
    index = raw.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_ARG_INDEX:
        raise InvalidArgument(f"{where}.index must be 0 to {MAX_ARG_INDEX}, not {index!r}")
    op = raw.get("op")
    if op not in OPERATORS:
        raise InvalidArgument(f"unknown seccomp operator {op!r} in {where}")
    return SeccompArg(index=index, value=_u64(raw.get("value", 0), f"{where}.value"),
                      op=op, value_two=_u64(raw.get("valueTwo", 0), f"{where}.valueTwo"))


def _syscall(raw: Any, where: str) -> SeccompSyscall:
    if not isinstance(raw, Mapping):
        raise InvalidArgument(f"{where} must be an object")
    names = _strings(raw.get("names"), f"{where}.names")
    if not names:
        raise InvalidArgument(f"{where}.names must name at least one syscall")
    for name in names:
        if not name:
            raise InvalidArgument(f"{where}.names has an empty syscall name")
    action = _action(raw.get("action"), where)
    args_raw = raw.get("args") or []
    if not isinstance(args_raw, Sequence) or isinstance(args_raw, str):
        raise InvalidArgument(f"{where}.args must be a list")
    args = tuple(_arg(a, f"{where}.args[{i}]") for i, a in enumerate(args_raw))
    return SeccompSyscall(names=tuple(names), action=action,
                          errno_ret=_errno_ret(raw.get("errnoRet"), action, f"{where}.errnoRet"),
                          args=args)


def parse(raw: Mapping[str, Any] | None) -> SeccompSpec | None:
    """Parse and validate OCI ``linux.seccomp``; None (no filter) stays None."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidArgument("linux.seccomp must be an object")
    if raw.get("listenerPath") or raw.get("listenerMetadata"):
        raise InvalidArgument("linux.seccomp.listenerPath is not supported "
                              "(no seccomp notify agents yet)")
    default = _action(raw.get("defaultAction"), "linux.seccomp.defaultAction")
    arches = _strings(raw.get("architectures"), "linux.seccomp.architectures")
    for arch in arches:
        if arch not in ARCHITECTURES:
            raise InvalidArgument(f"unknown seccomp architecture {arch!r}")
    flags = _strings(raw.get("flags"), "linux.seccomp.flags")
    for flag in flags:
        if flag not in FLAGS:
            raise InvalidArgument(f"unknown seccomp flag {flag!r}")
        if flag in UNSUPPORTED_FLAGS:
            raise InvalidArgument(f"seccomp flag {flag} is not supported")
    syscalls_raw = raw.get("syscalls") or []
    if not isinstance(syscalls_raw, Sequence) or isinstance(syscalls_raw, str):
        raise InvalidArgument("linux.seccomp.syscalls must be a list")
    syscalls = tuple(_syscall(s, f"linux.seccomp.syscalls[{i}]")
                     for i, s in enumerate(syscalls_raw))
    return SeccompSpec(
        default_action=default,
        default_errno_ret=_errno_ret(raw.get("defaultErrnoRet"), default,
                                     "linux.seccomp.defaultErrnoRet"),
        architectures=tuple(dict.fromkeys(arches)),
        flags=tuple(dict.fromkeys(flags)),
        syscalls=syscalls,
    )


def to_oci(spec: SeccompSpec) -> dict[str, Any]:
    """Back to the OCI JSON shape (for state files and `spec` output)."""
    out: dict[str, Any] = {"defaultAction": spec.default_action}
    if spec.default_errno_ret is not None:
        out["defaultErrnoRet"] = spec.default_errno_ret
    if spec.architectures:
        out["architectures"] = list(spec.architectures)
    if spec.flags:
        out["flags"] = list(spec.flags)
    calls = []
    for call in spec.syscalls:
        c: dict[str, Any] = {"names": list(call.names), "action": call.action}
        if call.errno_ret is not None:
            c["errnoRet"] = call.errno_ret
        if call.args:
            c["args"] = [{"index": a.index, "value": a.value, "valueTwo": a.value_two,
                          "op": a.op} for a in call.args]
        calls.append(c)
    if calls:
        out["syscalls"] = calls
    return out


__all__ = [
    "ACTIONS",
    "ARCHITECTURES",
    "FLAGS",
    "OPERATORS",
    "SeccompArg",
    "SeccompSpec",
    "SeccompSyscall",
    "parse",
    "to_oci",
]
