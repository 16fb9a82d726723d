"""`tomato layers` and `tomato layers which`: the note's a.txt/b.txt question answered."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def note_overlay(workdir: Path):
    """The note's mount: lowerdir=lower1:lower2 (both with a.txt and b.txt), plus an
    upperdir where a file is changed (copied up) and one is deleted (whiteout)."""
    for d in ("lower1", "lower2", "upper", "work", "merged"):
        (workdir / d).mkdir()
    for name in ("a.txt", "b.txt"):
        (workdir / "lower1" / name).write_text(f"{name} from lower1\n")
        (workdir / "lower2" / name).write_text(f"{name} from lower2\n")
    (workdir / "lower2" / "c.txt").write_text("c.txt from lower2\n")
    m = workdir / "merged"
    opts = (f"lowerdir={workdir}/lower1:{workdir}/lower2,upperdir={workdir}/upper,"
            f"workdir={workdir}/work")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(m)], check=True)
    try:
        with open(m / "b.txt", "a") as f:
            f.write("changed in the merged view\n")
        os.unlink(m / "c.txt")
        yield workdir
    finally:
        subprocess.run(["umount", str(m)], check=True)


def test_layers_of_a_mount_point(tomato, note_overlay):
    w = note_overlay
    out = tomato("layers", str(w / "merged")).stdout.splitlines()
    box = "─" * 68
    assert out == [
        f"merged: {w}/merged",
        "  ▲  a name is looked up from the top down: the first layer that has it wins",
        f"┌{box}┐",
        f"│ {'upperdir    read-write: the container layer':<67}│",
        f"├{box}┤",
        f"│ {'lowerdir 1  read-only, top':<67}│",
        f"├{box}┤",
        f"│ {'lowerdir 2  read-only, bottom':<67}│",
        f"└{box}┘",
        f"upperdir   = {w}/upper",
        f"lowerdir 1 = {w}/lower1",
        f"lowerdir 2 = {w}/lower2",
        f"workdir    = {w}/work (overlayfs's scratch space)",
        f"mount -t overlay overlay -o lowerdir={w}/lower1:{w}/lower2,upperdir={w}/upper,"
        f"workdir={w}/work {w}/merged"]


def _paths(drawing: list[str]) -> dict[str, str]:
    """"lowerdir 1 = PATH" lines of a drawing, by layer."""
    return {k.strip(): v.split(" (")[0] for k, _s, v in
            (line.partition(" = ") for line in drawing) if _s}


def test_which_answers_the_note(tomato, note_overlay):
    w = note_overlay
    m = str(w / "merged")
    assert (w / "merged" / "a.txt").read_text() == "a.txt from lower1\n"
    assert tomato("layers", "which", m, "/a.txt").stdout.splitlines() == [
        "/a.txt", f"  from lowerdir 1: {w}/lower1/a.txt",
        f"  hides lowerdir 2: {w}/lower2/a.txt"]
    assert tomato("layers", "which", m, "/b.txt").stdout.splitlines() == [
        "/b.txt", f"  from upperdir: {w}/upper/b.txt (copied up: the container changed it, "
                  "the image's copy is below)",
        f"  hides lowerdir 1: {w}/lower1/b.txt", f"  hides lowerdir 2: {w}/lower2/b.txt"]
    assert tomato("layers", "which", m, "/c.txt").stdout.splitlines() == [
        "/c.txt", f"  deleted in upperdir: whiteout {w}/upper/c.txt",
        f"  the deleted copy is in lowerdir 2: {w}/lower2/c.txt"]
    r = tomato("layers", "which", m, "/nothing", check=False)
    assert r.returncode == 1 and r.stderr == "tomato: /nothing is in no layer of this stack\n"


def test_layers_errors(tomato, workdir):
    r = tomato("layers", str(workdir), check=False)
    assert r.returncode == 1 and "is not a mount point" in r.stderr
    r = tomato("layers", "no-such-image-or-container", check=False)
    assert r.returncode == 1 and "no-such-image-or-container" in r.stderr
    assert "Traceback" not in r.stderr


def test_image_and_container_layers(tomato, workdir):
    rootfs = workdir / "rootfs"
    tomato("rootfs", "from-host", "/bin/busybox", "--into", str(rootfs))
    (rootfs / "etc").mkdir()
    for name in ("a.txt", "b.txt"):
        (rootfs / "etc" / name).write_text(f"{name} from the image\n")
    tomato("rootfs", "from-host", "/bin/busybox", "--into", str(rootfs), "--image", "lab-t")
    try:
        tomato("run", "--name", "lab-c", "--network", "none", "lab-t", "/bin/busybox", "sh",
               "-c", "echo changed >> /etc/a.txt; rm /etc/b.txt; echo n > /etc/new.txt",
               timeout=120)
        stack = tomato("layers", "lab-c").stdout.splitlines()
        assert stack[0] == "merged: the root of container lab-c"
        assert stack[3].startswith("│ upperdir    read-write: the container layer")
        # the image's one layer, named by its diff id, with the history line beside it
        assert stack[5].startswith("│ lowerdir 1  read-only ") and " layer 1/1 " in stack[5]
        assert stack[5].endswith("│  tomato import rootfs from-host busybox")
        assert stack[-1].startswith("mount -t overlay overlay -o lowerdir=")
        upper, lower = _paths(stack)["upperdir"], _paths(stack)["lowerdir 1"]
        assert tomato("layers", "which", "lab-c", "/etc/a.txt").stdout.splitlines() == [
            "/etc/a.txt", f"  from upperdir: {upper}/etc/a.txt (copied up: the container "
                          "changed it, the image's copy is below)",
            f"  hides lowerdir 1: {lower}/etc/a.txt"]
        assert tomato("layers", "which", "lab-c", "/etc/b.txt").stdout.splitlines() == [
            "/etc/b.txt", f"  deleted in upperdir: whiteout {upper}/etc/b.txt",
            f"  the deleted copy is in lowerdir 1: {lower}/etc/b.txt"]
        assert tomato("layers", "which", "lab-c", "/etc/new.txt").stdout.splitlines()[1] == \
            f"  from upperdir: {upper}/etc/new.txt (created in the container layer)"
        # Committed, the container layer becomes the image's top lowerdir.
        tomato("commit", "lab-c", "lab-t:2")
        stack2 = tomato("layers", "lab-t:2").stdout.splitlines()
        # Named after the image's layers (diff ids, bottom first as in `inspect`), each
        # with the history line that made it: the commit's command on top.
        assert stack2[3].startswith("│ lowerdir 1  read-only, top ") and " layer 2/2 " in \
            stack2[3]
        assert stack2[3].endswith("│  /bin/busybox sh -c echo changed >> /etc/a.txt; rm "
                                  "/etc/b.tx…")  # cut at 60 characters
        assert stack2[5].startswith("│ lowerdir 2  read-only, bottom ") and " layer 1/2 " in \
            stack2[5]
        assert stack2[5].endswith("│  tomato import rootfs from-host busybox")
        top, bottom = _paths(stack2)["lowerdir 1"], _paths(stack2)["lowerdir 2"]
        assert bottom == lower
        assert tomato("layers", "which", "lab-t:2", "/etc/a.txt").stdout.splitlines() == [
            "/etc/a.txt", f"  from lowerdir 1: {top}/etc/a.txt",
            f"  hides lowerdir 2: {bottom}/etc/a.txt"]
        assert tomato("layers", "which", "lab-t:2", "/etc/b.txt").stdout.splitlines()[1] == \
            f"  deleted in lowerdir 1: whiteout {top}/etc/b.txt"
    finally:
        tomato("rm", "-f", "lab-c", check=False)
        tomato("rmi", "lab-t:2", "lab-t", check=False)


def test_which_follows_directory_symlinks(tomato, workdir):
    """A merged-/usr image: /bin is a symlink to usr/bin in the bottom layer, and a
    file of /usr/bin is replaced in the top one."""
    low, top, m = workdir / "low", workdir / "top", workdir / "m"
    for d in (low / "usr/bin", top / "usr/bin", m):
        d.mkdir(parents=True)
    os.symlink("usr/bin", low / "bin")
    (low / "usr/bin/tool").write_text("old\n")
    (top / "usr/bin/tool").write_text("new\n")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={top}:{low}", str(m)],
                   check=True)
    try:
        assert (m / "bin/tool").read_text() == "new\n"
        assert tomato("layers", "which", str(m), "/bin/tool").stdout.splitlines() == [
            "/bin/tool -> /usr/bin/tool", f"  from lowerdir 1: {top}/usr/bin/tool",
            f"  hides lowerdir 2: {low}/usr/bin/tool"]
        assert tomato("layers", "which", str(m), "/bin").stdout.splitlines() == [
            "/bin", f"  from lowerdir 2: {low}/bin"]
    finally:
        subprocess.run(["umount", str(m)], check=True)
