"""Docker's default security settings: its 14 capabilities and its seccomp profile.

Provenance: ``tomato/data/seccomp-default.json`` is the Docker Engine's
default seccomp profile (moby/moby ``profiles/seccomp/default.json``,
Apache-2.0, the version with ``minKernel`` conditions, ``defaultErrnoRet: 1``
and the clone3 ENOSYS rule), kept in its own format: the OCI ``linux.seccomp``
fields plus Docker's ``archMap`` and per-rule ``includes``/``excludes``
conditions.  ``docker_default_seccomp`` resolves those conditions the way the
engine's ``setupSeccomp`` does and returns a plain OCI ``linux.seccomp``
object:

- ``archMap``: the entry whose architecture is the host's seccomp arch
  contributes it and its sub-architectures (x86_64 -> x86_64, x86, x32);
- a rule is dropped when the arch is in ``excludes.arches``, when any of
  ``excludes.caps`` is in the bounding set, or when the kernel is at least
  ``excludes.minKernel``;
- a rule is kept only when the arch is in ``includes.arches`` (if given),
  every one of ``includes.caps`` is in the bounding set (if given), and the
  kernel is at least ``includes.minKernel`` (if given).

Arch names are Docker's (Go's): amd64, arm64, x86, arm, ppc64le, s390x,
riscv64 ...; uname's machine names (x86_64, aarch64, i686 ...) are accepted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from tomato.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

#: Docker's default capability set (moby's oci/caps/defaults.go), 14 names.
DOCKER_DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

PROFILE_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data",
                            "seccomp-default.json")

#: Docker arch name -> the seccomp arch that keys ``archMap``.
_NATIVE_TO_SECCOMP = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "mips": "SCMP_ARCH_MIPS",
    "mipsel": "SCMP_ARCH_MIPSEL",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mipsel64n32": "SCMP_ARCH_MIPSEL64N32",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
    "loongarch64": "SCMP_ARCH_LOONGARCH64",
}

#: Other spellings (uname -m, Go's GOARCH) -> Docker's name.
_ALIASES = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "i386": "x86",
    "i486": "x86",
    "i586": "x86",
    "i686": "x86",
    "386": "x86",
    "armv6l": "arm",
    "armv7l": "arm",
    "armhf": "arm",
    "mips64le": "mipsel64",
    "mipsle": "mipsel",
    "mips64p32": "mips64n32",
    "mips64p32le": "mipsel64n32",
}


def normalize_arch(arch: str) -> str:
    """Any common spelling of a CPU architecture -> Docker's name; unknown -> InvalidArgument."""
    name = _ALIASES.get(arch.lower(), arch.lower())
    if name not in _NATIVE_TO_SECCOMP:
        raise InvalidArgument(f"unknown architecture {arch!r}")
    return name


def host_arch() -> str:
    return normalize_arch(os.uname().machine)


def _kernel_version(release: str) -> tuple[int, ...]:
    parts = []
    for piece in release.split("-")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece else ""
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        raise InvalidArgument(f"cannot parse kernel version {release!r}")
    return tuple(parts)


def _cap_name(name: str) -> str:
    upper = name.strip().upper()
    return upper if upper.startswith("CAP_") else "CAP_" + upper


def docker_default_profile() -> dict[str, Any]:
    """The shipped profile, unresolved (archMap, includes/excludes kept)."""
    with open(PROFILE_PATH, encoding="utf-8") as f:
        profile: dict[str, Any] = json.load(f)
    return profile


def resolve_profile(profile: dict[str, Any], caps: Iterable[str], arch: str,
                    kernel: str | tuple[int, ...] | None = None) -> dict[str, Any]:
    """Resolve a Docker-format seccomp profile to an OCI ``linux.seccomp`` object.

    ``caps`` is the container's bounding set (names), ``arch`` the target CPU
    architecture, ``kernel`` the kernel release (default: the running one).
    """
    arch = normalize_arch(arch)
    bounding = {_cap_name(c) for c in caps}
    if kernel is None:
        kernel = os.uname().release
    kver = _kernel_version(kernel) if isinstance(kernel, str) else tuple(kernel)

    def at_least(minimum: str) -> bool:
        return kver >= _kernel_version(minimum)

    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument("seccomp profile has both 'architectures' and 'archMap'")
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "")}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches: list[str] = list(profile.get("architectures") or [])
    seccomp_arch = _NATIVE_TO_SECCOMP[arch]
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == seccomp_arch:
            arches.append(seccomp_arch)
            arches.extend(entry.get("subArchitectures") or [])
            break
    if arches:
        out["architectures"] = arches
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])

    syscalls = []
    for rule in profile.get("syscalls") or []:
        inc = rule.get("includes") or {}
        exc = rule.get("excludes") or {}
        if arch in (exc.get("arches") or []):
            continue
        if any(_cap_name(c) in bounding for c in exc.get("caps") or []):
            continue
        if exc.get("minKernel") and at_least(exc["minKernel"]):
            continue
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if not all(_cap_name(c) in bounding for c in inc.get("caps") or []):
            continue
        if inc.get("minKernel") and not at_least(inc["minKernel"]):
            continue
        if rule.get("name") and rule.get("names"):
            raise InvalidArgument("seccomp profile rule has both 'name' and 'names'")
        call: dict[str, Any] = {
            "names": [rule["name"]] if rule.get("name") else list(rule.get("names") or []),
            "action": rule.get("action", ""),
        }
        if rule.get("errnoRet") is not None:
            call["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            call["args"] = [{"index": a["index"], "value": a.get("value", 0),
                             "valueTwo": a.get("valueTwo", 0), "op": a["op"]}
                            for a in rule["args"]]
        syscalls.append(call)
    out["syscalls"] = syscalls
    return out


def docker_default_seccomp(caps: Iterable[str] | None = None, arch: str | None = None,
                           kernel: str | tuple[int, ...] | None = None) -> dict[str, Any]:
    """Docker's default seccomp profile for a container with bounding set ``caps``.

    ``caps`` defaults to DOCKER_DEFAULT_CAPS, ``arch`` to the host's.
    """
    return resolve_profile(docker_default_profile(),
                           DOCKER_DEFAULT_CAPS if caps is None else caps,
                           host_arch() if arch is None else arch, kernel)


def docker_default_capabilities() -> dict[str, list[str]]:
    """``process.capabilities`` as Docker sets it (no inheritable or ambient)."""
    caps = list(DOCKER_DEFAULT_CAPS)
    return {"bounding": caps, "effective": list(caps), "permitted": list(caps)}


__all__ = [
    "DOCKER_DEFAULT_CAPS",
    "PROFILE_PATH",
    "docker_default_capabilities",
    "docker_default_profile",
    "docker_default_seccomp",
    "host_arch",
    "normalize_arch",
    "resolve_profile",
]
