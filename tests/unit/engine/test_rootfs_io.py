"""The fd-only tree I/O under cp and export (engine.rootfs_io, _sys.fdtree, _sys.paths),
on a temporary directory: names cleaned as Docker does, hostile archives refused
without a trace, Docker's copy rules, and a kernel-resolved root that symlinks and
``..`` never leave."""

from __future__ import annotations

import errno
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tomato._sys.fdtree import Node, walk
from tomato._sys.paths import lexists_beneath, open_in_root, read_in_root
from tomato.engine.filesystem import _plan
from tomato.engine.rootfs_io import ExtractOptions, Extractor, clean_name, items, tar_items
from tomato.errors import InvalidArgument, NotFound


@pytest.mark.parametrize(("name", "clean"), [
    ("a", "a"), ("./a/b/", "a/b"), ("/etc/passwd", "etc/passwd"), ("//x", "x"),
    ("a/../b", "b"), (".", ""), ("./", ""), ("/", ""), ("/../x", "x"),
])
def test_clean_name(name: str, clean: str) -> None:
    assert clean_name(name) == clean


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "a\0b"])
def test_clean_name_refuses_escapes(name: str) -> None:
    with pytest.raises(InvalidArgument):
        clean_name(name)


def _tar(*members: tuple[str, bytes, object]) -> bytes:
    """(name, type, data-or-linkname) entries as a tar stream."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o755 if kind == tarfile.DIRTYPE else 0o644
            if kind == tarfile.REGTYPE:
                data = extra if isinstance(extra, bytes) else b""
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                info.linkname = str(extra or "")
                tf.addfile(info)
    return buf.getvalue()


def _extract(dest: Path, data: bytes, **opts: object) -> None:
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        Extractor(fd, ExtractOptions(**opts)).extract(tar_items(io.BytesIO(data)))  # type: ignore[arg-type]
    finally:
        os.close(fd)


def _leftovers(top: Path) -> list[str]:
    return [p.name for p in top.rglob("*") if p.name.startswith(".tomato-cp-")]


def test_extract_writes_links_as_links(tmp_path: Path) -> None:
    _extract(tmp_path, _tar(("d", tarfile.DIRTYPE, None), ("d/f", tarfile.REGTYPE, b"x\n"),
                            ("d/abs", tarfile.SYMTYPE, "/etc/passwd"),
                            ("d/up", tarfile.SYMTYPE, "../../../etc"),
                            ("d/h", tarfile.LNKTYPE, "d/f")))
    assert os.readlink(tmp_path / "d" / "abs") == "/etc/passwd"
    assert os.readlink(tmp_path / "d" / "up") == "../../../etc"
    assert (tmp_path / "d" / "h").stat().st_ino == (tmp_path / "d" / "f").stat().st_ino
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("members", [
    [("l", tarfile.SYMTYPE, "/"), ("l/etc/owned", tarfile.REGTYPE, b"x")],  # through a link
    [("../owned", tarfile.REGTYPE, b"x")],
    [("h", tarfile.LNKTYPE, "/etc/passwd")],  # not an earlier entry
    [("h", tarfile.LNKTYPE, "../outside")],
])
def test_extract_refuses_escapes(tmp_path: Path, members: list[tuple[str, bytes, object]]
                                 ) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (tmp_path / "outside").write_text("outside\n")
    with pytest.raises(InvalidArgument):
        _extract(dest, _tar(*members))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "outside"]
    assert not (dest / "l").exists() or (dest / "l").is_symlink()
    assert _leftovers(tmp_path) == []


def test_extract_replaces_atomically_and_keeps_directories(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("old\n")
    (tmp_path / "dir").mkdir()
    os.symlink("/etc/passwd", tmp_path / "link")
    _extract(tmp_path, _tar(("file", tarfile.REGTYPE, b"new\n"),
                            ("link", tarfile.REGTYPE, b"not through the link\n")))
    assert (tmp_path / "file").read_text() == "new\n"
    assert not (tmp_path / "link").is_symlink()  # replaced, never written through
    with pytest.raises(InvalidArgument, match="cannot overwrite directory"):
        _extract(tmp_path, _tar(("dir", tarfile.REGTYPE, b"x")))
    with pytest.raises(InvalidArgument, match="cannot overwrite non-directory"):
        _extract(tmp_path, _tar(("file", tarfile.DIRTYPE, None)))
    with pytest.raises(InvalidArgument, match="cannot overwrite directory"):
        _extract(tmp_path, _tar(("a", tarfile.REGTYPE, b"a"), ("dir", tarfile.LNKTYPE, "a")))
    assert _leftovers(tmp_path) == []
    _extract(tmp_path, _tar(("dir", tarfile.REGTYPE, b"x")), no_overwrite_dir_nondir=False)
    assert (tmp_path / "dir").read_text() == "x"
    assert _leftovers(tmp_path) == []


def test_a_truncated_file_leaves_nothing(tmp_path: Path) -> None:
    data = _tar(("big", tarfile.REGTYPE, b"y" * 100_000))
    with pytest.raises(InvalidArgument):
        _extract(tmp_path, data[:20_000])
    assert list(tmp_path.iterdir()) == []


def test_devices_refused_where_asked(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="device node"):
        _extract(tmp_path, _tar(("null", tarfile.CHRTYPE, None)), devices=False)
    assert list(tmp_path.iterdir()) == []


def _tree(top: Path) -> Iterator[tuple[str, str]]:
    for p in sorted(top.rglob("*")):
        if p.is_fifo():
            continue  # (reading one would block)
        kind = "l" if p.is_symlink() else "d" if p.is_dir() else "f"
        yield str(p.relative_to(top)), kind + (os.readlink(p) if kind == "l" else
                                               p.read_text() if kind == "f" else "")


def test_items_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("f\n")
    os.link(src / "sub" / "f", src / "hard")
    os.symlink("/", src / "root")
    os.mkfifo(src / "fifo")
    dest = tmp_path / "dest"
    dest.mkdir()
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Node(os.open(src, os.O_PATH)) as top:
            Extractor(fd, ExtractOptions()).extract(items(top, "copy"))
    finally:
        os.close(fd)
    assert dict(_tree(dest / "copy")) == dict(_tree(src))
    assert (dest / "copy" / "hard").stat().st_nlink == 2
    assert (dest / "copy" / "fifo").is_fifo()


def test_walk_never_follows_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.symlink("/", tmp_path / "d" / "root")
    with Node(os.open(tmp_path, os.O_PATH)) as top:
        seen = [(rel, node.is_link()) for rel, node in walk(top)]
    assert seen == [("d", False), ("d/root", True)]


def test_open_in_root_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("inside\n")
    os.symlink("/", tmp_path / "up")
    os.symlink("../../../../etc", tmp_path / "climb")
    root = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        for path in ("/up/etc/passwd", "climb/passwd", "/../../etc/passwd", "up/up/etc/passwd"):
            fd = open_in_root(root, path, os.O_RDONLY)
            with os.fdopen(fd) as f:
                assert f.read() == "inside\n", path
        with pytest.raises(OSError) as err:
            open_in_root(root, "/nope/x", os.O_RDONLY)
        assert err.value.errno == errno.ENOENT and err.value.filename == "/nope/x"
        assert lexists_beneath(root, "etc/passwd")
        assert not lexists_beneath(root, "up/etc")  # a symlink on the way: not there
        assert lexists_beneath(root, "up")
    finally:
        os.close(root)
    os.mkfifo(tmp_path / "etc" / "group")
    with pytest.raises(OSError) as err:
        read_in_root(str(tmp_path), "/etc/group")  # never opened: it would block
    assert err.value.errno == errno.EINVAL
    assert read_in_root(str(tmp_path), "/up/etc/passwd") == b"inside\n"


@pytest.mark.parametrize(("src_dir", "src_name", "dest", "exists", "is_dir", "asserts", "want"), [
    (False, "f", "/d/new", False, False, False, ("/d", "new")),
    (False, "f", "/d/old", True, False, False, ("/d", "old")),
    (False, "f", "/d/dir", True, True, False, ("/d/dir", "f")),
    (True, "s", "/d/new", False, False, False, ("/d", "new")),
    (True, "s", "/d/dir", True, True, False, ("/d/dir", "s")),
    (True, ".", "/d/dir", True, True, False, ("/d/dir", ".")),
    (True, ".", "/d/new", False, False, False, ("/d", "new")),
])
def test_docker_copy_rules(src_dir: bool, src_name: str, dest: str, exists: bool,
                           is_dir: bool, asserts: bool, want: tuple[str, str]) -> None:
    assert _plan(src_dir, src_name, dest, exists, is_dir, asserts) == want


def test_docker_copy_rule_errors() -> None:
    with pytest.raises(InvalidArgument, match="cannot copy directory"):
        _plan(True, "s", "/d/file", True, False, False)
    with pytest.raises(NotFound, match="no such directory"):
        _plan(False, "f", "/d/new/", False, False, True)


def test_disk_usage_counts_each_inode_once_and_follows_nothing(tmp_path: Path) -> None:
    from tomato._sys.fdtree import disk_usage

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 100_000)
    os.link(tmp_path / "d" / "f", tmp_path / "hard")
    os.symlink("/usr", tmp_path / "usr")
    blocks = sum(os.lstat(p).st_blocks for p in (tmp_path, tmp_path / "d", tmp_path / "d" / "f",
                                                 tmp_path / "usr"))
    assert disk_usage(tmp_path) == blocks * 512
    assert disk_usage(tmp_path / "usr") == os.lstat(tmp_path / "usr").st_blocks * 512
    assert disk_usage(tmp_path / "missing") == 0
