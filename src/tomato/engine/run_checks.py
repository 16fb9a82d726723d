"""The daemon's checks of `docker run`'s less common flags, CLI and API alike: --pull,
--log-driver, and what a Linux dockerd refuses or keeps of --runtime, --isolation,
--gpus, --storage-opt, --volume-driver and the Windows-only resource fields."""

from __future__ import annotations

from tomato.engine.options import LOG_DRIVERS, RunOptions
from tomato.errors import InvalidArgument

#: the runtime names `--runtime` takes: dockerd's default and containerd's shim name
RUNTIMES = ("runc", "io.containerd.runc.v2")


def check_run_extras(opts: RunOptions) -> None:
    """The daemon's checks of --pull, --platform, --log-driver and the rest of `docker
    run`'s flags a Linux dockerd refuses (CLI and API)."""
    if opts.runtime not in RUNTIMES:
        raise InvalidArgument(f"unknown or invalid runtime name: {opts.runtime}")
    if opts.isolation not in ("", "default"):
        raise InvalidArgument(f'Invalid isolation: "{opts.isolation}" - linux only '
                              "supports 'default'")
    if opts.io_max_bandwidth or opts.io_max_iops:
        raise InvalidArgument("Invalid QoS settings: linux does not support Maximum IO "
                              "Bandwidth or Maximum IO IOps")
    if opts.gpus:  # no device driver (nvidia's toolkit, CDI) is registered here
        raise InvalidArgument(f'could not select device driver "{opts.gpus[0]}" with '
                              "capabilities: [[gpu]]")
    if opts.storage_opt:  # a per-container size needs overlay on xfs with project quotas
        raise InvalidArgument("--storage-opt is supported only for overlay over xfs with "
                              "'pquota' mount option")
    if opts.volume_driver not in ("", "local") and _uses_volumes(opts):
        raise InvalidArgument(f"error looking up volume plugin {opts.volume_driver}: plugin "
                              f'"{opts.volume_driver}" not found')
    if opts.pull not in ("always", "missing", "never"):
        raise InvalidArgument(f'invalid pull option: \'{opts.pull}\': must be one of '
                              '"always", "missing" or "never"')
    if opts.log_driver not in LOG_DRIVERS:
        raise InvalidArgument("failed to create task for container: failed to initialize "
                              f"logging driver: logger: no log driver named "
                              f"'{opts.log_driver}' is registered")


def _uses_volumes(opts: RunOptions) -> bool:
    """Whether --volume-driver would make a volume: a named or anonymous -v, or a
    --mount of type volume."""
    for spec in opts.volumes:
        source = spec.split(":", 1)[0] if ":" in spec else ""
        if not source.startswith(("/", ".")):
            return True
    return any("type=volume" in m.split(",") or not any(
        part.startswith("type=") for part in m.split(",")) for m in opts.mounts)
