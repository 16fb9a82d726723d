"""An LD_PRELOAD library that holds a runtime at the container's /etc/passwd.

The CVE-2019-5736 tests attack an exec'd runtime while it is still the runtime's own
interpreter inside the container; they held it there with a FIFO at the image's
/etc/passwd, which the HOME lookup opened blocking.  That hang is a bug of its own
(a FIFO passwd hung create and exec for ever, issue 13/14 #4: the lookup now opens it
O_NONBLOCK and reads a regular file only), so the hold is given back to the tests
alone: this library clears O_NONBLOCK from an open of "/etc/passwd", and the runtime
blocks on the FIFO, as before, until the test writes to it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PASSWD_HOLD_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/types.h>

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

static int held(const char *path, int flags) {
    return path && strcmp(path, "/etc/passwd") == 0 ? flags & ~O_NONBLOCK : flags;
}

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

#define OPEN(name)                                                            \
    int name(const char *path, int flags, ...) {                              \
        va_list ap;                                                           \
        va_start(ap, flags);                                                  \
        mode_t mode = mode_arg(flags, ap);                                    \
        va_end(ap);                                                           \
        open_fn real = (open_fn)dlsym(RTLD_NEXT, #name);                      \
        return real(path, held(path, flags), mode);                           \
    }
#define OPENAT(name)                                                          \
    int name(int dirfd, const char *path, int flags, ...) {                   \
        va_list ap;                                                           \
        va_start(ap, flags);                                                  \
        mode_t mode = mode_arg(flags, ap);                                    \
        va_end(ap);                                                           \
        openat_fn real = (openat_fn)dlsym(RTLD_NEXT, #name);                  \
        return real(dirfd, path, held(path, flags), mode);                    \
    }
OPEN(open)
OPEN(open64)
OPENAT(openat)
OPENAT(openat64)
"""


def build_passwd_hold(workdir: Path) -> Path:
    """The library, compiled into ``workdir`` (skips the test without a C compiler)."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler for the test's LD_PRELOAD hold")
    source, lib = workdir / "passwd_hold.c", workdir / "passwd_hold.so"
    source.write_text(PASSWD_HOLD_C)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(source), "-ldl"], check=True)
    return lib
