"""Build cache keys: what makes a step's result the same as last time.

A step is the same step when it runs on the same parent image with the same
instruction as the build reads it -- variables expanded, the build args a RUN
sees, the flags that change its result -- and, for COPY and ADD, the same files
(``CopyJob.describe``: names, modes, sizes, link targets and contents; not times
nor owners, as Docker).  The key is a sha256 over exactly that; nothing else
(not the time, not the Dockerfile's line number) goes in, so an unchanged step
hits whatever line it moved to.
"""

from __future__ import annotations

import hashlib
import json

#: bumped when the meaning of a step changes, so older entries miss
VERSION = 2


def step_key(parent: str | None, kind: str, text: str, extra: object = None) -> str:
    """The key of step ``text`` (its history line) of kind ``kind`` on ``parent``."""
    doc = json.dumps([VERSION, parent or "scratch", kind, text, extra], sort_keys=True,
                     separators=(",", ":"))
    return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()


__all__ = ["step_key", "VERSION"]
