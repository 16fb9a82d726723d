"""What this host's cgroups can do, and docker's answer when a container asks for more.

moby's ``verifyPlatformContainerResources`` with its sysinfo: a limit the kernel lacks is
either discarded with a warning (blkio weight without CFQ/BFQ, swappiness or the OOM
killer's switch on cgroup v2) or refused (real-time CPU without CONFIG_RT_GROUP_SCHED,
memory nodes the host does not have).  ``adapt`` returns the warnings (the CLI prints
them as ``WARNING: ...``, the API's create answers them in ``Warnings``) and clears what
it discards, so the record and ``inspect`` say what the container really got.
"""

from __future__ import annotations

import os

from tomato.engine.options import RunOptions, parse_uint_list
from tomato.errors import InvalidArgument


def _controller_dir(controller: str) -> str:
    """The mount point of the hierarchy that carries ``controller`` ("" if none)."""
    from tomato.cgroups import detect

    found = detect.hierarchies()
    for h in found:  # v1 first: on a hybrid host the unified mount carries little
        if h.version == 1 and controller in h.controllers:
            return h.mountpoint
    for h in found:
        if h.version == 2 and controller in h.controllers:
            return h.mountpoint
    return ""


def _has(controller: str, *files: str) -> bool:
    where = _controller_dir(controller)
    return bool(where) and any(os.path.exists(os.path.join(where, f)) for f in files)


def _read(controller: str, *files: str) -> str:
    where = _controller_dir(controller)
    for name in files:
        try:
            with open(os.path.join(where, name)) as f:
                return f.read().strip()
        except OSError:
            continue
    return ""


def adapt(opts: RunOptions) -> list[str]:
    """Docker's warnings for ``opts`` on this host; what the host cannot do is cleared
    (blkio weight, swappiness, oom-kill-disable) or refused (real-time CPU, memory
    nodes) in docker's words."""
    warnings: list[str] = []
    if opts.cpu_percent > 0:  # a Windows-only flag
        warnings.append("linux does not support CPU percent. Percent discarded.")
        opts.cpu_percent = 0
    if opts.memory_swappiness != -1 and not _has("memory", "memory.swappiness"):
        warnings.append("Your kernel does not support memory swappiness capabilities or the "
                        "cgroup is not mounted. Memory swappiness discarded.")
        opts.memory_swappiness = -1
    if opts.oom_kill_disable and not _has("memory", "memory.oom_control"):
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable "
                        "discarded.")
        opts.oom_kill_disable = False
    if opts.oom_kill_disable and not opts.memory:
        warnings.append("OOM killer is disabled for the container, but no memory limit is "
                        "set, this can result in the system running out of resources.")
    if -1000 <= opts.oom_score_adj < 0 and not _may_lower_oom_score():  # range: options
        # runc's write would fail the start (dockerd runs with CAP_SYS_RESOURCE); the
        # runtime itself only warns, so the engine says it here, before anything is made
        raise InvalidArgument(f"cannot set oom_score_adj to {opts.oom_score_adj}: a negative "
                              "value needs CAP_SYS_RESOURCE, which this engine does not have")
    if (opts.cpu_rt_period or opts.cpu_rt_runtime) and \
            not _has("cpu", "cpu.rt_runtime_us"):
        raise InvalidArgument("Your kernel does not support CPU real-time scheduler")
    if opts.blkio_weight and not _has("blkio", "blkio.weight", "blkio.bfq.weight") and \
            not _has("io", "io.weight", "io.bfq.weight"):
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not "
                        "mounted. Weight discarded.")
        opts.blkio_weight = 0
    if opts.blkio_weight_device and not _has("blkio", "blkio.weight_device",
                                             "blkio.bfq.weight_device") \
            and not _has("io", "io.weight", "io.bfq.weight"):
        warnings.append("Your kernel does not support Block I/O weight_device or the cgroup "
                        "is not mounted. Weight-device discarded.")
        opts.blkio_weight_device = []
    for attr, file, what in (("device_read_iops", "read_iops_device", "IOPS Block read"),
                             ("device_write_iops", "write_iops_device", "IOPS Block write")):
        if getattr(opts, attr) and not _has("blkio", f"blkio.throttle.{file}") \
                and not _has("io", "io.max"):
            warnings.append(f"Your kernel does not support {what} limit or the cgroup is not "
                            f"mounted. Block I/O {what.split()[0]} "
                            f"{what.split()[-1]} limit discarded.")
            setattr(opts, attr, [])
    if opts.cpuset_mems:
        wanted = parse_uint_list(opts.cpuset_mems, f"Invalid value {opts.cpuset_mems} for "
                                 "cpuset mems")
        have_text = _read("cpuset", "cpuset.mems", "cpuset.mems.effective")
        have = set(parse_uint_list(have_text, "the host's cpuset.mems")) if have_text else set()
        if not set(wanted) <= have:
            raise InvalidArgument(f"Requested memory nodes are not available - requested "
                                  f"{opts.cpuset_mems}, available: {have_text}")
    return warnings


CAP_SYS_RESOURCE = 24


def _may_lower_oom_score() -> bool:
    """The kernel lets a process go below its oom_score_adj_min (0 unless a privileged
    writer set it) only with CAP_SYS_RESOURCE (this machine's root lacks it)."""
    from tomato._sys import caps

    effective, _permitted, _inheritable = caps.capget()
    return CAP_SYS_RESOURCE in effective
