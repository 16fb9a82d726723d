"""Test images made locally with no network: a busybox rootfs from Debian's busybox-static."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = Path("/bin/busybox")


def _is_static(binary: Path) -> bool:
    with open(binary, "rb") as f:
        head = f.read(4096)
    # A dynamic ELF carries an interpreter path; a static one does not.
    return b"/lib64/ld-linux" not in head and b"ld-linux" not in head


def build_busybox_rootfs(root: Path) -> Path:
    """Make root/ a minimal busybox system (idempotent)."""
    if (root / "bin" / "busybox").exists():
        return root
    if not BUSYBOX.exists() or not _is_static(BUSYBOX):
        raise RuntimeError("a static /bin/busybox is needed: apt-get install busybox-static")
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp",
              "root", "var", "run", "home"):
        (partial / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, partial / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    for applet in applets:
        if applet == "bin/busybox":
            continue
        link = partial / applet
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink("/bin/busybox", link)
    (partial / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (partial / "etc" / "group").write_text("root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n")
    os.chmod(partial / "tmp", 0o1777)
    partial.rename(root)
    return root
