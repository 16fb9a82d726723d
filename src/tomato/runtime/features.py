"""`tomato-runtime features`: what this runtime implements (runtime-spec features.md)."""

from __future__ import annotations

from typing import Any

from tomato.oci.spec import HOOK_KINDS, NAMESPACE_TYPES
from tomato.runtime.mountopts import _FLAGS, _IGNORED, _PROPAGATION


def features() -> dict[str, Any]:
    from tomato._sys import caps

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted(set(_FLAGS) | set(_PROPAGATION) | _IGNORED),
        "linux": {
            "namespaces": list(NAMESPACE_TYPES),
            "capabilities": list(caps.CAP_NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {
                "enabled": True,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                            "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                            "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                              "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
            },
            "apparmor": {"enabled": True},
            "selinux": {"enabled": True},
        },
        "annotations": {"org.opencontainers.runtime-engine": "tomato"},
    }
