"""Synthetic ELF files for the lab's unit tests."""

from __future__ import annotations

import struct


def elf64(interp: bytes | None, needed: list[bytes], runpath: bytes | None = None) -> bytes:
    """A minimal little-endian ELF64 with PT_INTERP, PT_LOAD and PT_DYNAMIC."""
    strtab = b"\0"
    offsets = []
    for n in needed + ([runpath] if runpath else []):
        offsets.append(len(strtab))
        strtab += n + b"\0"
    ehdr_size, ph_size = 64, 56
    phnum = 3 if interp else 2
    data_off = ehdr_size + ph_size * phnum
    interp_b = (interp + b"\0") if interp else b""
    str_off = data_off + len(interp_b)
    dyn_off = str_off + len(strtab)
    dyn = b""
    for off in offsets[:len(needed)]:
        dyn += struct.pack("<qQ", 1, off)
    if runpath:
        dyn += struct.pack("<qQ", 29, offsets[-1])
    dyn += struct.pack("<qQ", 5, 0x400000 + str_off) + struct.pack("<qQ", 0, 0)
    total = dyn_off + len(dyn)
    ident = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, ehdr_size, 0, 0, ehdr_size,
                               ph_size, phnum, 0, 0, 0)
    phs = b""
    if interp:
        phs += struct.pack("<IIQQQQQQ", 3, 4, data_off, 0, 0, len(interp_b), len(interp_b), 1)
    phs += struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, total, total, 0x1000)
    phs += struct.pack("<IIQQQQQQ", 2, 6, dyn_off, 0x400000 + dyn_off, 0, len(dyn), len(dyn), 8)
    return ehdr + phs + interp_b + strtab + dyn
