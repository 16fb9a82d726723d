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
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False},
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
        "annotations": {"org.opencontainers.runtime-engine": "tomato",
                        **{f"{DIFFERS}{topic}": text for topic, text in RUNC_DIFFERENCES}},
    }


#: Where tomato-runtime follows the spec (or the issue that asked it) and runc 1.1 does
#: not; docs/runtime.md says the same at length.
DIFFERS = "io.tomato.runtime.differs-from-runc."
RUNC_DIFFERENCES = (
    ("seccomp", "the filter is the last step before execve with or without "
                "noNewPrivileges (CAP_SYS_ADMIN is held until it is loaded, then dropped); "
                "runc loads it before the capabilities without noNewPrivileges"),
    ("hooks.startContainer", "a failing startContainer hook fails start (and run) with "
                             "its output; runc's start succeeds and the container dies"),
    ("hooks.poststart", "a failing poststart or poststop hook is a warning and the hooks "
                        "after it still run, as the spec says; runc 1.1 kills the container "
                        "and fails start (poststart) or delete (poststop)"),
    ("rootfsPropagation", "shared and unbindable are the container's / after pivot_root, "
                          "runbindable too, after the masks (runc 1.1 leaves / private; "
                          "runc 1.3 fails runbindable with bind mounts)"),
    ("mount-namespace", "without a mount namespace the mounts are made below a bind of the "
                        "rootfs in the caller's namespace, whose / propagation is left "
                        "alone, and delete removes them; runc changes / and leaves them"),
    ("kill", "kill ID 0 of a stopped container succeeds (it only asks whether it is "
             "there); runc 1.1 says container not running"),
    ("update.devices", "update applies linux.resources.devices (the default devices stay "
                       "allowed), at once; runc 1.1 ignores them"),
    ("systemd-cgroup", "the default unit is tomato-ID.scope; a .slice name, a rootless "
                       "caller and annotations overriding the driver's own properties are "
                       "refused or ignored; pids.limit <= 0 is TasksMax=infinity; delete "
                       "stops only a unit whose Description names the container"),
    ("exec.pid-file", "a --pid-file whose directory does not exist is refused before the "
                      "process starts; runc starts it, then kills it (255 either way)"),
)
