"""`tomato build --explain`: the union filesystem of each step, shown as it happens.

For a RUN (or the container a COPY writes into): the overlay mount the step's
container stands on -- its lower directories (the image's layers, the topmost
first, as overlayfs reads ``lowerdir=``), the upper directory that catches every
write, overlayfs' work directory -- and the container made; then the diff found in
the upper directory (A added, C changed, D deleted: a whiteout) that became the
layer, and the layer's digest.  The study note's union-fs chapter, live.
"""

from __future__ import annotations

from tomato.build.running import HIDDEN, StepContainer
from tomato.engine.config import EngineConfig

MAX_CHANGES = 20


def container(box: StepContainer, image: str, network: str, argv: list[str]) -> list[str]:
    short = image.removeprefix("sha256:")[:12]
    what = f"runs {argv!r}" if argv else "is never started: its merged root is only read"
    lines = [f"container {box.id[:12]} on image {short} {what}"
             + (f" (network {network})" if network else "")]
    if not box.upper:
        lines.append(f"root: {box.rootfs} (a bind mount: the image has no layers)")
        return lines
    lines.append(f"mount -t overlay overlay {box.rootfs}")
    for i, lower in enumerate(box.lowers):
        lines.append(f"  lowerdir[{i}] {lower}" + ("  (topmost layer)" if i == 0 else
                                                   "  (base layer)" if i == len(box.lowers)
                                                   - 1 else ""))
    lines.append(f"  upperdir    {box.upper}  (every write lands here)")
    lines.append(f"  workdir     {box.workdir}  (overlayfs' scratch for copy-up)")
    return lines


def staged(path: str) -> list[str]:
    return [f"the new layer is the directory {path}: the copied files are written there",
            "  (with the directories above them as the image has them), then it becomes",
            "  a lowerdir of the next step's overlay"]


def diff(upper: str, lowers: list[str]) -> list[str]:
    from tomato.images.changes import changes

    found = changes(upper, lowers, HIDDEN)
    lines = [f"diff of the upper directory: {len(found)} change(s)"
             + (" -- an empty layer" if not found else "")]
    for ch in found[:MAX_CHANGES]:
        lines.append(f"  {ch.kind} {ch.path}")
    if len(found) > MAX_CHANGES:
        lines.append(f"  ... {len(found) - MAX_CHANGES} more")
    return lines


def layer(cfg: EngineConfig, image_id: str) -> list[str]:
    from tomato.engine.stepimages import manifest_of

    doc = manifest_of(cfg, image_id)
    history = doc.get("history") or [{}]
    if history[-1].get("empty_layer"):
        return ["no layer: nothing changed (empty_layer in the history)"]
    diff_ids = (doc.get("rootfs") or {}).get("diff_ids") or []
    return [f"layer {len(diff_ids)}: {diff_ids[-1] if diff_ids else '?'} "
            f"(the upper directory as a tar, whiteouts as .wh. files)"]


__all__ = ["container", "staged", "diff", "layer"]
