"""Overlay provenance: the layer stack of a mount, and which layer a path comes from.

The study note mounted ``lowerdir=/tmp/lower1:/tmp/lower2``, put a.txt and
b.txt in both, and could not tell why ``cat`` showed one and not the other.
The answer is the order of lowerdir: the leftmost directory is the top.  A
path is looked up from the top (upperdir, then each lowerdir left to right);
the first layer that has it wins and hides the copies below; a whiteout
(a 0/0 character device) in a layer deletes the name for every layer below;
a directory marked ``trusted.overlay.opaque=y`` hides everything below it.

The stack comes from the snapshotter's Mount (an image or a container), or
from /proc/self/mountinfo (any overlay mounted by hand, as in the note).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from tomato.errors import InvalidArgument, NotFound

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


@dataclass(frozen=True)
class Layer:
    role: str    # "upperdir" or "lowerdir"
    index: int   # 0 for the upperdir; 1.. for lowerdirs, 1 being the top one
    path: str
    name: str = ""        # what the layer is, when known (an image layer's diff id ...)
    created_by: str = ""  # the history line that made it (a Dockerfile step, a commit)

    @property
    def label(self) -> str:
        if self.role == "upperdir":
            return "upperdir"
        return f"lowerdir {self.index}"


@dataclass(frozen=True)
class Stack:
    """An overlay (or a single bind-mounted directory) from top to bottom."""

    fstype: str
    layers: tuple[Layer, ...]
    workdir: str | None
    options: tuple[str, ...]

    @property
    def upper(self) -> Layer | None:
        return next((layer for layer in self.layers if layer.role == "upperdir"), None)

    @property
    def lowers(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.role == "lowerdir")

    def mount_command(self, target: str = "MERGED") -> str:
        if self.fstype != "overlay":
            ro = ",ro" if "ro" in self.options else ""
            return f"mount --rbind{' -o ' + ro[1:] if ro else ''} {self.layers[0].path} {target}"
        return f"mount -t overlay overlay -o {','.join(self.options)} {target}"


def with_names(stack: Stack, names: dict[str, str],
               created_by: dict[str, str] | None = None) -> Stack:
    """The same stack with ``names[path]`` (and the history line that made each layer)
    attached to its layers."""
    made = created_by or {}
    layers = tuple(Layer(la.role, la.index, la.path, names.get(la.path, la.name),
                         made.get(la.path, la.created_by)) for la in stack.layers)
    return Stack(stack.fstype, layers, stack.workdir, stack.options)


def stack_from_options(fstype: str, source: str, options: tuple[str, ...] | list[str]) -> Stack:
    """A Stack from mount options (``lowerdir=a:b``, ``upperdir=``, ``workdir=``)."""
    opts = tuple(options)
    if fstype in ("bind", "rbind") or fstype != "overlay":
        return Stack("bind", (Layer("lowerdir", 1, source),), None, opts)
    values = {}
    for o in opts:
        k, sep, v = o.partition("=")
        if sep:
            values[k] = v
    lowers = [p for p in _split_lowerdir(values.get("lowerdir", "")) if p]
    if not lowers:
        raise InvalidArgument("overlay mount without lowerdir")
    layers: list[Layer] = []
    if values.get("upperdir"):
        layers.append(Layer("upperdir", 0, values["upperdir"]))
    layers += [Layer("lowerdir", i, p) for i, p in enumerate(lowers, 1)]
    return Stack("overlay", tuple(layers), values.get("workdir"), opts)


def _split_lowerdir(value: str) -> list[str]:
    # "::" separates data-only lowers (kernel 6.5+); "\:" escapes a colon in a path.
    out, cur, i = [], "", 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            cur += value[i + 1]
            i += 2
            continue
        if c == ":":
            out.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    out.append(cur)
    return out


def _unescape(field: str) -> str:
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def stack_of_mountpoint(directory: str, mountinfo: str = "/proc/self/mountinfo") -> Stack:
    """The overlay mounted on ``directory`` (the last mount there wins, as for lookups)."""
    target = os.path.realpath(directory)
    found = None
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            if "-" not in fields:
                continue
            sep = fields.index("-")
            if _unescape(fields[4]) != target:
                continue
            fstype, source = fields[sep + 1], _unescape(fields[sep + 2])
            supers = _unescape(fields[sep + 3]).split(",") if len(fields) > sep + 3 else []
            found = (fstype, source, supers)
    if found is None:
        raise NotFound(f"{directory} is not a mount point")
    fstype, source, supers = found
    if fstype != "overlay":
        raise InvalidArgument(f"{directory} is a {fstype} mount, not an overlay")
    opts = [o for o in supers if o.split("=", 1)[0] in ("lowerdir", "upperdir", "workdir")]
    return stack_from_options("overlay", source, opts)


# -- which layer a path comes from ---------------------------------------------------------
@dataclass(frozen=True)
class Hit:
    layer: Layer
    kind: str       # "file", "directory", "symlink", "whiteout", "other"
    path: str       # the host path in that layer


@dataclass(frozen=True)
class Provenance:
    path: str
    visible: Hit | None                 # the copy a reader of the merged tree sees
    hidden: tuple[Hit, ...]             # copies in lower layers it hides
    deleted: Hit | None                 # the whiteout that deletes it (visible is None)
    opaque: Layer | None                # a directory above it made opaque in this layer
    merged_dirs: tuple[Hit, ...] = ()   # for a directory: every layer contributing entries
    asked: str = ""                     # the path as given, when symlinks were followed

    @property
    def copied_up(self) -> bool:
        """In the container layer and in an image layer: copied up (or replaced) on write."""
        return (self.visible is not None and self.visible.layer.role == "upperdir"
                and any(h.kind != "whiteout" for h in self.hidden))


def _kind(st: os.stat_result) -> str:
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0):
        return "whiteout"
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    return "other"


def _is_opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def which(stack: Stack, path: str) -> Provenance:
    """Where ``path`` comes from, following symlinks in its directories through the
    merged view as a lookup in the container would (/bin -> usr/bin in merged-/usr
    images); the last component is not followed (as lstat)."""
    resolved = resolve(stack, path)
    prov = _which(stack, resolved)
    asked = "/" + os.path.normpath("/" + path).lstrip("/")
    if asked != prov.path:
        prov = Provenance(prov.path, prov.visible, prov.hidden, prov.deleted, prov.opaque,
                          prov.merged_dirs, asked)
    return prov


def resolve(stack: Stack, path: str) -> str:
    """``path`` with the symlinks of its directories followed inside the merged tree."""
    todo = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            done = done[:-1]
            continue
        candidate = done + [part]
        if not todo:
            done = candidate
            break
        prov = _which(stack, "/" + "/".join(candidate))
        if prov.visible is not None and prov.visible.kind == "symlink":
            hops += 1
            if hops > 40:
                raise InvalidArgument(f"{path}: too many levels of symbolic links")
            target = os.readlink(prov.visible.path)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p and p != "."] + todo
        else:
            done = candidate
    return "/" + "/".join(done)


def _which(stack: Stack, path: str) -> Provenance:
    """Where ``path`` (absolute, inside the merged tree) comes from.

    Walks the layers top to bottom as overlayfs does.  In each layer the parent
    directories are checked first: a whiteout or a non-directory there deletes
    the whole subtree for the layers below; an opaque directory hides the layers
    below it.  Then the name itself: the first layer having it is what readers
    see; copies below are hidden (listed, to show what a copy-up or a whiteout
    covers).
    """
    rel = os.path.normpath("/" + path).lstrip("/")
    parts = [p for p in rel.split("/") if p]
    hits: list[Hit] = []
    deleted: Hit | None = None
    opaque_at: Layer | None = None
    for layer in stack.layers:
        cur, stop_here, present = layer.path, False, True
        for part in parts[:-1]:
            cur = os.path.join(cur, part)
            try:
                k = _kind(os.lstat(cur))
            except (FileNotFoundError, NotADirectoryError):
                present = False
                break
            if k != "directory":
                if not hits and deleted is None:
                    deleted = Hit(layer, k, cur)  # a parent deleted or replaced here
                present, stop_here = False, True
                break
            if _is_opaque(cur):
                stop_here = True
                opaque_at = opaque_at or (layer if layer is not stack.layers[-1] else None)
        if present and parts:
            cur = os.path.join(cur, parts[-1])
            try:
                k = _kind(os.lstat(cur))
            except (FileNotFoundError, NotADirectoryError):
                k = ""
            if k == "whiteout" and not hits and deleted is None:
                deleted = Hit(layer, k, cur)
            elif k:
                hits.append(Hit(layer, k, cur))
                if k == "directory" and _is_opaque(cur) and layer is not stack.layers[-1]:
                    stop_here = True
                    opaque_at = opaque_at or layer
        elif present:
            hits.append(Hit(layer, "directory", layer.path))
        if stop_here:
            break
    if deleted is not None:
        return Provenance("/" + rel, None, tuple(hits), deleted, opaque_at)
    if not hits:
        if opaque_at is not None:
            raise NotFound(f"/{rel} is not visible: a directory above it is opaque in "
                           f"{opaque_at.label}, hiding the layers below")
        raise NotFound(f"/{rel} is in no layer of this stack")
    top = hits[0]
    if top.kind == "directory":
        # Directories merge down to the first thing that is not a directory.
        stop = next((i for i, h in enumerate(hits) if h.kind != "directory"), len(hits))
        return Provenance("/" + rel, top, tuple(hits[stop:]), None, opaque_at,
                          merged_dirs=tuple(hits[:stop]))
    return Provenance("/" + rel, top, tuple(hits[1:]), None, opaque_at)


def describe(stack: Stack, prov: Provenance) -> list[str]:
    """Human lines answering "where does this path come from"."""
    lines = [f"{prov.asked} -> {prov.path}" if prov.asked else prov.path]
    if prov.visible is None:
        assert prov.deleted is not None
        lines.append(f"  deleted in {prov.deleted.layer.label}: whiteout {prov.deleted.path}")
        for h in prov.hidden:
            lines.append(f"  the deleted copy is in {h.layer.label}: {h.path}")
        return lines
    v = prov.visible
    if v.kind == "directory" and len(prov.merged_dirs) > 1:
        lines.append("  a directory merged from: " + ", ".join(
            h.layer.label for h in prov.merged_dirs))
    else:
        note = ""
        if prov.copied_up:
            note = " (copied up: the container changed it, the image's copy is below)"
        elif v.layer.role == "upperdir":
            note = " (created in the container layer)"
        lines.append(f"  from {v.layer.label}: {v.path}{note}")
    for h in prov.hidden:
        if h.kind == "whiteout":
            lines.append(f"  whiteout below in {h.layer.label}: {h.path}")
        else:
            lines.append(f"  hides {h.layer.label}: {h.path}")
    if prov.opaque is not None:
        lines.append(f"  an opaque directory in {prov.opaque.label} (xattr "
                     f"trusted.overlay.opaque=y) hides every lower layer")
    return lines


BOX = 68  # inner width of the drawn stack


def drawing(stack: Stack, merged: str, history_width: int = 60) -> list[str]:
    """``tomato layers``: the stack drawn top to bottom, as the kernel looks names up
    (upperdir, then lowerdir 1, 2, ...: the leftmost lowerdir is the top), with what
    made each layer beside it, each layer's directory, and the mount(8) line."""
    n = len(stack.lowers)
    rows = []
    for layer in stack.layers:
        if layer.role == "upperdir":
            role = "read-write: the container layer"
        elif stack.fstype != "overlay":
            role = "read-only (a bind: one layer)"
        else:
            role = "read-only" + (", top" if layer.index == 1 and n > 1 else
                                  ", bottom" if layer.index == n and n > 1 else "")
        text = f"{layer.label:<12}{role}"
        if layer.name:
            text = f"{text:<42}{layer.name}"
        beside = layer.created_by.replace("\n", " ").strip()
        if len(beside) > history_width:
            beside = beside[:history_width - 1] + "…"
        rows.append((text[:BOX - 2], beside))
    out = [f"merged: {merged}", "  ▲  a name is looked up from the top down: the first layer "
           "that has it wins"]
    out.append("┌" + "─" * BOX + "┐")
    for i, (text, beside) in enumerate(rows):
        if i:
            out.append("├" + "─" * BOX + "┤")
        out.append(f"│ {text:<{BOX - 1}}│" + (f"  {beside}" if beside else ""))
    out.append("└" + "─" * BOX + "┘")
    width = max(len(la.label) for la in stack.layers)
    out += [f"{la.label:<{width}} = {la.path}" for la in stack.layers]
    if stack.workdir:
        out.append(f"{'workdir':<{width}} = {stack.workdir} (overlayfs's scratch space)")
    out.append(stack.mount_command(merged if merged.startswith("/") else "ROOTFS"))
    return out


def stack_lines(stack: Stack, target: str | None = None) -> list[str]:
    """``tomato layers``: the stack from top to bottom and the exact mount."""
    lines = []
    n = len(stack.lowers)
    for layer in stack.layers:
        if layer.role == "upperdir":
            lines.append(f"upperdir    {layer.path}   (read-write: the container layer)")
        else:
            where = ", top" if layer.index == 1 and n > 1 else (
                ", bottom" if layer.index == n and n > 1 else "")
            named = f"; {layer.name}" if layer.name else ""
            lines.append(f"lowerdir {layer.index}  {layer.path}   (read-only{where}{named})")
    if stack.workdir:
        lines.append(f"workdir     {stack.workdir}   (overlayfs's scratch space)")
    lines.append(stack.mount_command(target or "MERGED"))
    return lines


__all__ = ["Hit", "Layer", "Provenance", "Stack", "describe", "drawing", "stack_from_options",
           "resolve", "stack_lines", "stack_of_mountpoint", "which", "with_names"]
