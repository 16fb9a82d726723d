"""Compiled seccomp filters, cached under the runtime's root.

Turning Docker's default profile into BPF costs libseccomp ~10 ms (rules
~4 ms, generation ~6 ms) on every create and exec, for the same profile
every time.  The BPF depends only on the profile, the architecture and the
libseccomp version, so the first compile is kept in ``<root>/.seccomp/``
and later containers load those bytes directly (``seccomp.Program``).

A cache file holds the profile's canonical JSON, a NUL, the warnings the
compile gave (JSON), a NUL, then the program: a hit compares the whole
profile, so a checksum collision can never hand one profile another's
filter.  The directory is the runtime root's (root-only) and files are
written to a temporary name and renamed, so readers never see half a file.
Flags that only libseccomp can apply fall back to the uncached path.

``save_for_exec`` also leaves each container's loadable program in its state
directory (``ROOT/<id>/seccomp.bpf``), for the front end's `exec` (front/exec.c),
which loads it with one seccomp(2) and never compiles a profile itself.
"""

from __future__ import annotations

import os

from tomato import fastjson as json
from tomato._sys import seccomp as seccomp_mod

TYPE_CHECKING = False  # typing (and json, which imports re) cost ~5 ms: start path
if TYPE_CHECKING:
    from typing import Any

CACHE_DIR = ".seccomp"
EXEC_PROGRAM = "seccomp.bpf"  # ROOT/<id>/seccomp.bpf (docs/runtime.md)
EXEC_MAGIC = b"TSECCOMP"  # then u32 load flags, u32 instructions (native order), the program


def _key_text(raw: dict[str, Any]) -> bytes:
    version = ".".join(map(str, seccomp_mod.version()))
    # "enosys": programs carry the -ENOSYS stub (older cache files do not)
    return json.dumps_canonical([version, os.uname().machine, "enosys", raw]).encode()


def load_filter(root: str, raw: dict[str, Any], warnings: list[str]) -> Any:
    """A loadable filter for the spec's ``linux.seccomp`` (None if it has none)."""
    from tomato.oci import seccomp_spec

    parsed = seccomp_spec.parse(raw)
    if parsed is None:
        return None
    if any(flag not in seccomp_mod.LOAD_FLAGS for flag in parsed.flags):
        return seccomp_mod.compile(parsed, warnings)
    import binascii

    key = _key_text(raw)
    path = os.path.join(root, CACHE_DIR, f"{binascii.crc32(key):08x}-{len(key)}.bpf")
    cached = _read(path, key)
    if cached is not None:
        program, cached_warnings = cached
        warnings.extend(cached_warnings)
        return seccomp_mod.Program(program, parsed.flags)
    found: list[str] = []
    with seccomp_mod.compile(parsed, found) as filt:
        # runc's -ENOSYS stub first: newer syscalls than the profile fall back (clone3)
        program = seccomp_mod.enosys_stub(parsed) + filt.export_bpf()
    warnings.extend(found)
    _write(path, key, program, found)
    return seccomp_mod.Program(program, parsed.flags)


def _read(path: str, key: bytes) -> tuple[bytes, list[str]] | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    head, sep, rest = data.partition(b"\0")
    if not sep or head != key:
        return None
    notes, sep, program = rest.partition(b"\0")
    try:
        found = json.loads(notes) if sep else None
    except ValueError:
        return None
    if not isinstance(found, list) or not program or len(program) % 8:
        return None
    return program, [str(w) for w in found]


def _write(path: str, key: bytes, program: bytes, found: list[str]) -> None:
    """Best effort: a cache that cannot be written only costs the next compile."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    except OSError:
        return
    _replace(path, b"\0".join((key, json.dumps(found).encode(), program)))


def _replace(path: str, data: bytes) -> None:
    """``data`` as ``path`` (0600), whole or not at all (temp + rename); best effort."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as f:
            f.write(data)
        os.rename(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def save_for_exec(state_dir: str, filt: Any, warnings: list[str]) -> None:
    """The container's seccomp program where the front end's exec finds it.

    ``filt`` is what ``load_filter`` gave for the container's profile (None: the
    profile filters nothing, written as a program of no instructions).  Only a
    ``Program`` compiled without warnings is written: a filter only libseccomp can
    load, or warnings Python's exec would log again, leave no file, and exec then
    stays Python's.  Best effort, as the cache: no file only costs exec its speed.
    """
    if warnings or (filt is not None and not isinstance(filt, seccomp_mod.Program)):
        return
    import sys

    bits, program = (filt.bits, filt.program) if filt is not None else (0, b"")
    data = (EXEC_MAGIC + bits.to_bytes(4, sys.byteorder)
            + (len(program) // 8).to_bytes(4, sys.byteorder) + program)
    _replace(os.path.join(state_dir, EXEC_PROGRAM), data)
