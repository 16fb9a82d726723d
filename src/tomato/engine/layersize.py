"""What a container's writable layer weighs: Docker's ``SizeRw`` (what the container
wrote: the regular files it added or changed, each inode once) and ``SizeRootFs`` (that
and its image's files).  `ps -s`, `inspect -s`, `system df`, prunes and the API's
``size=1``."""

from __future__ import annotations

from tomato.engine.images import get_image, rootfs_mounts
from tomato.errors import TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from tomato.engine.config import EngineConfig
    from tomato.engine.containers import Container

#: Files the engine bind-mounts over; their empty placeholders are not the container's.
ENGINE_FILES = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"})


def sizes(cfg: EngineConfig, c: Container) -> tuple[int, int]:
    """(SizeRw, SizeRootFs); a container whose layer is gone (being removed) wrote 0."""
    from tomato.images.changes import changes_size

    written = 0
    try:
        mounts = rootfs_mounts(cfg, c.id)
        if mounts and mounts[0].type == "overlay":
            upper = mounts[0].option("upperdir")
            if upper is not None:
                written = changes_size(upper, mounts[0].lowerdirs, ENGINE_FILES)
    except (TomatoError, OSError):
        written = 0
    try:
        image = get_image(cfg, c.image_id).size
    except TomatoError:
        image = 0
    return written, written + image
