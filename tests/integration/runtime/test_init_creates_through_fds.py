"""What the init makes inside the rootfs, made through fds resolved inside it (issue 13/14,
review 14 #3), proved without a race: an LD_PRELOAD swaps a volume's directory for a link
to a host directory right before the creating call itself, the worst moment a racing
container could pick.  (test_front_create_review.py races for it; this one cannot miss.)

Both inits: Python's (TOMATO_RUNTIME_PYTHON=1) and the front end's in C
(TOMATO_RUNTIME_FRONT_ONLY=1: front/inroot.c open_dirs_in, init_devices.c)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .rt import RUNTIME
from .rt_extra import cid, edit

C = cid("fds")

#: Before a creating call (mknod, open with O_CREAT, mkdir, and their *at forms) whose
#: last component is $SWAP_ON: RENAME_EXCHANGE of $SWAP_A and $SWAP_B (once).
SWAP_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

static int swapped;

static void swap_if(const char *path) {
    const char *on = getenv("SWAP_ON"), *a = getenv("SWAP_A"), *b = getenv("SWAP_B");
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    if (swapped || !on || !a || !b || !base || strcmp(base, on) != 0)
        return;
    swapped = 1;
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

int mknod(const char *path, mode_t mode, dev_t dev) {
    swap_if(path);
    return ((int (*)(const char *, mode_t, dev_t))dlsym(RTLD_NEXT, "mknod"))(path, mode, dev);
}
int mknodat(int fd, const char *path, mode_t mode, dev_t dev) {
    swap_if(path);
    return ((int (*)(int, const char *, mode_t, dev_t))dlsym(RTLD_NEXT, "mknodat"))(
        fd, path, mode, dev);
}
int mkdir(const char *path, mode_t mode) {
    swap_if(path);
    return ((int (*)(const char *, mode_t))dlsym(RTLD_NEXT, "mkdir"))(path, mode);
}
int mkdirat(int fd, const char *path, mode_t mode) {
    swap_if(path);
    return ((int (*)(int, const char *, mode_t))dlsym(RTLD_NEXT, "mkdirat"))(fd, path, mode);
}
#define OPEN(name)                                                               \
    int name(const char *path, int flags, ...) {                                 \
        va_list ap;                                                              \
        va_start(ap, flags);                                                     \
        mode_t mode = flags & O_CREAT ? va_arg(ap, mode_t) : 0;                  \
        va_end(ap);                                                              \
        if (flags & O_CREAT)                                                     \
            swap_if(path);                                                       \
        return ((int (*)(const char *, int, ...))dlsym(RTLD_NEXT, #name))(       \
            path, flags, mode);                                                  \
    }
#define OPENAT(name)                                                             \
    int name(int fd, const char *path, int flags, ...) {                         \
        va_list ap;                                                              \
        va_start(ap, flags);                                                     \
        mode_t mode = flags & O_CREAT ? va_arg(ap, mode_t) : 0;                  \
        va_end(ap);                                                              \
        if (flags & O_CREAT)                                                     \
            swap_if(path);                                                       \
        return ((int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, #name))(  \
            fd, path, flags, mode);                                              \
    }
OPEN(open)
OPEN(open64)
OPENAT(openat)
OPENAT(openat64)
"""


@pytest.fixture
def swap_so(workdir: Path) -> Path:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler for the test's LD_PRELOAD")
    (workdir / "swap.c").write_text(SWAP_C)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(workdir / "swap.so"),
                    str(workdir / "swap.c"), "-ldl"], check=True)
    return workdir / "swap.so"


WAYS = {"python": {"TOMATO_RUNTIME_PYTHON": "1"}, "front": {"TOMATO_RUNTIME_FRONT_ONLY": "1"}}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("what", ["device", "file-bind", "mount-dir", "cwd"])
def test_a_swap_right_before_the_creation_makes_nothing_on_the_host(
        root: Path, bundle: Path, workdir: Path, swap_so: Path, what: str, way: str) -> None:
    volume, host = workdir / "vol", workdir / "host-target"
    (volume / "d").mkdir(parents=True)
    host.mkdir()
    os.symlink(str(host), volume / "lnk")
    name = {"device": "fdsnode", "file-bind": "fdsfile", "mount-dir": "fdsdir",
            "cwd": "fdscwd"}[what]

    def setup(cfg: dict[str, Any]) -> None:
        cfg["process"]["args"] = ["true"]
        cfg["mounts"].append({"destination": "/data", "type": "bind", "source": str(volume),
                              "options": ["rbind"]})
        if what == "device":
            cfg["linux"]["devices"] = [{"path": f"/data/d/{name}", "type": "p"}]
        elif what == "file-bind":
            (workdir / "hostfile").write_text("x\n")
            cfg["mounts"].append({"destination": f"/data/d/{name}", "type": "bind",
                                  "source": str(workdir / "hostfile"), "options": ["bind"]})
        elif what == "mount-dir":
            cfg["mounts"].append({"destination": f"/data/d/{name}", "type": "tmpfs",
                                  "source": "tmpfs"})
        else:
            cfg["process"]["cwd"] = f"/data/d/{name}"

    edit(bundle, setup)
    env = {**os.environ, **WAYS[way], "LD_PRELOAD": str(swap_so),
           "SWAP_ON": name, "SWAP_A": str(volume / "d"), "SWAP_B": str(volume / "lnk")}
    try:
        proc = subprocess.run([RUNTIME, "--root", str(root), "run", "--bundle", str(bundle), C],
                              env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=60)
    finally:
        subprocess.run([RUNTIME, "--root", str(root), "delete", "--force", C],
                       capture_output=True, timeout=60)
    assert b"Traceback" not in proc.stderr, proc.stderr
    assert os.listdir(host) == [], f"made on the host: {os.listdir(host)} ({proc.stderr!r})"
    assert os.path.islink(volume / "d"), "the swap never happened: the test proves nothing"
