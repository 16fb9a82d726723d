"""The modules a container's creation, start and removal import, for the processes
that fork per request (the CLI's fork server, the API's zygote) to import once:
every child then has them for free instead of importing them lazily each time."""

from __future__ import annotations

import importlib

ENGINE_MODULES = (
    "tomato.engine.service", "tomato.engine.images", "tomato.engine.containers",
    "tomato.engine.networks", "tomato.engine.monitor", "tomato.engine.attach",
    "tomato.engine.frames", "tomato.engine.logs", "tomato.engine.specgen",
    "tomato.engine.options", "tomato.engine.inspect", "tomato.engine.humanize",
    "tomato.engine.events", "tomato.engine.volumes", "tomato.engine.usage",
    "tomato.runtime.create", "tomato.runtime.init", "tomato.runtime.rootfs",
    "tomato.runtime.process", "tomato.runtime.lifecycle", "tomato.runtime.exec",
    "tomato.runtime.seccomp_cache", "tomato.runtime.statedir", "tomato.runtime.console",
    "tomato.cgroups", "tomato.cgroups.v1", "tomato.cgroups.v2",
    "tomato.network.bridge", "tomato.network.netns", "tomato.network.netlink",
    "tomato.network.nft", "tomato.network.ports", "tomato.network.files",
    "tomato.network.ipam", "tomato.oci.security_defaults", "tomato.oci.seccomp_spec",
    "tomato._sys.seccomp", "tomato._sys.caps", "tomato.images.unpack",
    "ipaddress", "shutil", "subprocess", "threading", "termios", "hashlib",
)


def preload(extra: tuple[str, ...] = ()) -> None:
    for name in (*ENGINE_MODULES, *extra):
        try:
            importlib.import_module(name)
        except ImportError:
            continue  # an optional part missing here: imported (and failing) where used
    freeze()


def freeze() -> None:
    """What is loaded now is shared with every forked child, copy-on-write: keep the
    collector from walking it there (and so writing to, and copying, each page)."""
    import gc

    gc.collect()
    gc.freeze()
