"""Read what an ELF file needs to run: its interpreter and its DT_NEEDED libraries.

This is what ``ldd`` reports, read from the file instead of by running the
dynamic loader (``ldd`` executes the program's loader, which is unsafe on an
untrusted binary and impossible for a foreign one).  Only the headers are read:
the ELF header, the program headers (PT_INTERP, PT_DYNAMIC, PT_LOAD) and the
dynamic section's string table.  Stdlib only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tomato.errors import InvalidArgument, NotFound

ELF_MAGIC = b"\x7fELF"

PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3

DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
DT_SONAME = 14
DT_RPATH = 15
DT_RUNPATH = 29

ET_EXEC = 2
ET_DYN = 3


@dataclass(frozen=True)
class ElfInfo:
    """The run-time needs of one ELF file."""

    path: str
    elf_class: int           # 1 = 32-bit, 2 = 64-bit
    machine: int             # e_machine (62 = x86-64)
    kind: int                # e_type (ET_EXEC, ET_DYN ...)
    interpreter: str | None  # PT_INTERP: the dynamic loader, None for a static binary
    needed: tuple[str, ...]  # DT_NEEDED sonames, in order
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    soname: str | None

    @property
    def is_static(self) -> bool:
        return self.interpreter is None and not self.needed


def is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


def read_elf(path: str) -> ElfInfo:
    """Parse ``path``'s headers; InvalidArgument if it is not ELF, NotFound if missing."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as err:
        raise NotFound(f"no such file: {path}") from err
    except IsADirectoryError as err:
        raise InvalidArgument(f"{path} is a directory, not an ELF file") from err
    return parse_elf(data, path)


def parse_elf(data: bytes, path: str = "<bytes>") -> ElfInfo:
    """The pure parser behind :func:`read_elf`."""
    if len(data) < 52 or data[:4] != ELF_MAGIC:
        raise InvalidArgument(f"{path} is not an ELF file")
    elf_class, endian = data[4], data[5]
    if elf_class not in (1, 2) or endian not in (1, 2):
        raise InvalidArgument(f"{path}: unknown ELF class {elf_class} or byte order {endian}")
    e = "<" if endian == 1 else ">"
    try:
        if elf_class == 2:
            kind, machine = struct.unpack_from(e + "HH", data, 16)
            phoff, = struct.unpack_from(e + "Q", data, 32)
            phentsize, phnum = struct.unpack_from(e + "HH", data, 54)
            ph_fmt, dyn_fmt = e + "IIQQQQQQ", e + "qQ"
        else:
            kind, machine = struct.unpack_from(e + "HH", data, 16)
            phoff, = struct.unpack_from(e + "I", data, 28)
            phentsize, phnum = struct.unpack_from(e + "HH", data, 42)
            ph_fmt, dyn_fmt = e + "IIIIIIII", e + "iI"
        segments = [_phdr(struct.unpack_from(ph_fmt, data, phoff + i * phentsize), elf_class)
                    for i in range(phnum)]
    except struct.error as err:
        raise InvalidArgument(f"{path}: truncated ELF header") from err

    interp = None
    dynamic = None
    loads = []
    for ptype, offset, vaddr, filesz in segments:
        if ptype == PT_INTERP:
            interp = data[offset:offset + filesz].split(b"\0", 1)[0].decode()
        elif ptype == PT_DYNAMIC:
            dynamic = (offset, filesz)
        elif ptype == PT_LOAD:
            loads.append((vaddr, offset, filesz))

    needed: list[int] = []
    rpath: list[int] = []
    runpath: list[int] = []
    soname = None
    strtab = None
    if dynamic is not None:
        size = struct.calcsize(dyn_fmt)
        off, end = dynamic[0], min(dynamic[0] + dynamic[1], len(data))
        while off + size <= end:
            tag, val = struct.unpack_from(dyn_fmt, data, off)
            off += size
            if tag == DT_NULL:
                break
            if tag == DT_NEEDED:
                needed.append(val)
            elif tag == DT_STRTAB:
                strtab = val
            elif tag == DT_RPATH:
                rpath.append(val)
            elif tag == DT_RUNPATH:
                runpath.append(val)
            elif tag == DT_SONAME:
                soname = val
    strings_at = _vaddr_to_offset(strtab, loads) if strtab is not None else None
    if (needed or rpath or runpath or soname is not None) and strings_at is None:
        raise InvalidArgument(f"{path}: dynamic section has no string table")

    def s(index: int) -> str:
        assert strings_at is not None
        start = strings_at + index
        stop = data.find(b"\0", start)
        if start >= len(data) or stop < 0:
            raise InvalidArgument(f"{path}: dynamic string out of bounds")
        return data[start:stop].decode(errors="surrogateescape")

    def paths(indices: list[int]) -> tuple[str, ...]:
        return tuple(p for i in indices for p in s(i).split(":") if p)

    return ElfInfo(path=path, elf_class=elf_class, machine=machine, kind=kind,
                   interpreter=interp, needed=tuple(s(i) for i in needed),
                   rpath=paths(rpath), runpath=paths(runpath),
                   soname=s(soname) if soname is not None else None)


def _phdr(fields: tuple[int, ...], elf_class: int) -> tuple[int, int, int, int]:
    """(p_type, p_offset, p_vaddr, p_filesz) of either class's program header."""
    if elf_class == 2:  # type, flags, offset, vaddr, paddr, filesz, memsz, align
        return fields[0], fields[2], fields[3], fields[5]
    return fields[0], fields[1], fields[2], fields[4]  # type, offset, vaddr, paddr, filesz


def _vaddr_to_offset(vaddr: int, loads: list[tuple[int, int, int]]) -> int | None:
    # DT_STRTAB holds a virtual address; the PT_LOAD segment covering it maps it to the file.
    for start, offset, filesz in loads:
        if start <= vaddr < start + filesz:
            return vaddr - start + offset
    return None


__all__ = ["ElfInfo", "is_elf", "parse_elf", "read_elf"]
