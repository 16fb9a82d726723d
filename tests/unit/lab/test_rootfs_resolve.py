"""The loader's search order, on synthetic ELF files (no real libraries involved)."""

from __future__ import annotations

import os

import pytest
from elfbuild import elf64 as _elf64

from tomato.errors import InvalidArgument, NotFound
from tomato.lab.rootfs import copy_into, ld_so_conf_dirs, ldd_lines, resolve, tree_lines


def _write(path, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o755)
    return str(path)


def test_runpath_origin_then_conf_dirs(tmp_path):
    loader = _write(tmp_path / "lib64/ld.so", _elf64(None, []))
    prog = _write(tmp_path / "app/bin/prog",
                  _elf64(loader.encode(), [b"libone.so.1", b"libtwo.so.2"],
                         runpath=b"$ORIGIN/../lib"))
    one = _write(tmp_path / "app/lib/libone.so.1", _elf64(None, [b"libtwo.so.2"]))
    # A decoy: not ELF, in a directory searched first for libtwo: skipped.
    _write(tmp_path / "conf1/libtwo.so.2", b"not an elf file at all" * 4)
    two = _write(tmp_path / "conf2/libtwo.so.2", _elf64(None, []))
    plan = resolve([prog], conf_dirs=[str(tmp_path / "conf1"), str(tmp_path / "conf2")])
    assert plan.programs == [prog]
    assert [(lib.soname, lib.path) for lib in plan.libraries] == \
        [("libone.so.1", one), ("libtwo.so.2", two)]
    assert plan.interpreters == [loader]
    lines = ldd_lines(plan)
    assert lines[0].startswith("linux-vdso.so.1 (skipped")
    assert f"libone.so.1 => {one}" in lines and f"{loader} (the dynamic loader)" in lines
    # which program needs which library: libtwo under libone, where it first appears
    assert tree_lines(plan) == [
        prog,
        f"├── libone.so.1 => {one}",
        f"│   └── libtwo.so.2 => {two}",
        "├── libtwo.so.2 (above)",
        f"└── {loader} (the dynamic loader: PT_INTERP)",
    ]
    root = tmp_path / "root"
    copy_into(plan, str(root))
    for f in (prog, one, two, loader):
        assert (root / f.lstrip("/")).read_bytes() == open(f, "rb").read()


def test_missing_library_and_loader(tmp_path):
    prog = _write(tmp_path / "p", _elf64(b"/nonexistent/ld.so", []))
    with pytest.raises(NotFound, match="needs the loader /nonexistent/ld.so"):
        resolve([prog], conf_dirs=[])
    prog2 = _write(tmp_path / "q", _elf64(None, [b"libnowhere.so.9"]))
    with pytest.raises(NotFound, match="needs libnowhere.so.9"):
        resolve([prog2], conf_dirs=[str(tmp_path)])


def test_script_is_refused(tmp_path):
    script = _write(tmp_path / "s.sh", b"#!/bin/sh\necho hi\n")
    with pytest.raises(InvalidArgument, match="not an ELF program"):
        resolve([script], conf_dirs=[])


def test_copy_refuses_symlinked_directories(tmp_path):
    lib = _write(tmp_path / "src/lib/libx.so", _elf64(None, []))
    prog = _write(tmp_path / "src/bin/p", _elf64(None, [b"libx.so"]))
    plan = resolve([prog], conf_dirs=[str(tmp_path / "src/lib")])
    root = tmp_path / "root"
    (root / str(tmp_path / "src").lstrip("/")).mkdir(parents=True)
    os.symlink("/tmp", root / str(tmp_path / "src/lib").lstrip("/"))
    with pytest.raises(InvalidArgument, match="symlink inside the rootfs"):
        copy_into(plan, str(root))
    assert lib


def test_ld_so_conf_includes(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d/b.conf").write_text("/b\n# comment\n")
    (tmp_path / "conf.d/a.conf").write_text("/a\n")
    (tmp_path / "ld.so.conf").write_text(f"include {tmp_path}/conf.d/*.conf\n/c\n")
    assert ld_so_conf_dirs(str(tmp_path / "ld.so.conf")) == ["/a", "/b", "/c"]


def test_tree_of_a_static_program_and_of_two_sharing_a_library(tmp_path):
    static = _write(tmp_path / "bin/static", _elf64(None, []))
    lib = _write(tmp_path / "lib/libs.so.1", _elf64(None, []))
    a = _write(tmp_path / "bin/a", _elf64(None, [b"libs.so.1"]))
    b = _write(tmp_path / "bin/b", _elf64(None, [b"libs.so.1"]))
    plan = resolve([static, a, b], conf_dirs=[str(tmp_path / "lib")])
    assert tree_lines(plan) == [static, "└── (statically linked: nothing else to copy)",
                                a, f"└── libs.so.1 => {lib}", b, "└── libs.so.1 (above)"]
