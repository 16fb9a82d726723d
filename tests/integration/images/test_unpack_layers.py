"""Layer tars applied into snapshot dirs: metadata, whiteouts, hostile input refused."""

import gzip
import io
import os
import stat

import pytest
from helpers.registry import Entry, chr_dev, d, f, hard, make_tar, sym

from tomato.errors import InvalidArgument
from tomato.images.compression import CompressionError, DecompressReader
from tomato.images.unpack import HostileLayer, UnpackOptions, apply_layer


def apply(tar: bytes, target, **kw):
    target.mkdir(exist_ok=True)
    return apply_layer(io.BytesIO(tar), target, UnpackOptions(**kw))


def test_metadata_kept(workdir):
    tar = make_tar([
        d("etc", 0o755, mtime=1000),
        f("etc/passwd", b"root\n", 0o640, uid=12, gid=34, mtime=2000),
        f("bin/su", b"x", 0o4755),
        sym("bin/sh", "/bin/busybox"),
        hard("bin/su2", "bin/su"),
        chr_dev("dev/null", 1, 3),
        Entry("run/fifo", b"6", mode=0o600),
        f("cap", b"c", xattrs={"user.test": "v1", "trusted.overlay.redirect": "/etc"}),
    ])
    root = workdir / "l"
    stats = apply(tar, root)
    assert stats.entries == 8
    st = os.lstat(root / "etc/passwd")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime) == (12, 34, 0o640, 2000)
    assert os.lstat(root / "etc").st_mtime == 1000
    assert stat.S_IMODE(os.lstat(root / "bin/su").st_mode) == 0o4755
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert os.lstat(root / "bin/su2").st_ino == os.lstat(root / "bin/su").st_ino
    dev = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(dev.st_mode) and os.major(dev.st_rdev) == 1 and os.minor(dev.st_rdev) == 3
    assert stat.S_ISFIFO(os.lstat(root / "run/fifo").st_mode)
    assert os.getxattr(root / "cap", "user.test") == b"v1"
    # overlayfs' own xattrs from a tar are dropped: they would redirect lookups
    assert "trusted.overlay.redirect" not in os.listxattr(root / "cap")


def test_whiteouts_converted(workdir):
    tar = make_tar([d("a"), f("a/.wh.gone"), d("b"), f("b/.wh..wh..opq"), f("b/new", b"n"),
                    f(".wh..wh.plnk")])
    root = workdir / "l"
    apply(tar, root)
    wo = os.lstat(root / "a/gone")
    assert stat.S_ISCHR(wo.st_mode) and wo.st_rdev == 0
    assert os.getxattr(root / "b", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(root)) == ["a", "b"]
    assert os.listdir(root / "b") == ["new"]


def test_later_entry_replaces_earlier(workdir):
    root = workdir / "l"
    apply(make_tar([f("x", b"1"), f("x", b"2"), d("y"), f("y/z"), f("y", b"file")]), root)
    assert (root / "x").read_bytes() == b"2"
    assert (root / "y").read_bytes() == b"file"


@pytest.mark.parametrize("entries,match", [
    ([f("../evil", b"x")], "'..'"),
    ([f("a/../../evil", b"x")], "'..'"),
    ([f("/evil", b"x")], "absolute"),
    ([sym("link", "/outside"), f("link/evil", b"x")], "not a directory"),
    ([sym("link", "../../.."), f("link/evil", b"x")], "not a directory"),
    ([hard("h", "../outside/target")], "'..'"),
    ([hard("h", "/etc/passwd")], "absolute"),
    ([sym("s", "/etc"), hard("h", "s/passwd")], "not a directory"),
    ([hard("h", "missing")], "not in the layer"),
    ([chr_dev("evil-null", 1, 3)], "device"),
    ([chr_dev("dev", 1, 3)], "device"),
    ([f(".wh..")], "names nothing"),
])
def test_hostile_refused(workdir, entries, match):
    outside = workdir / "outside"
    outside.mkdir()
    (outside / "target").write_text("keep")
    root = workdir / "snap" / "l"
    root.parent.mkdir()
    before = sorted(os.listdir(workdir))
    with pytest.raises(HostileLayer, match=match):
        apply(make_tar(entries), root)
    assert sorted(os.listdir(workdir)) == before
    assert os.listdir(outside) == ["target"] and (outside / "target").read_text() == "keep"
    assert os.listdir(workdir / "snap") == ["l"]


def test_devices_policy(workdir):
    with pytest.raises(HostileLayer):
        apply(make_tar([chr_dev("dev/null", 1, 3)]), workdir / "a", devices="none")
    apply(make_tar([chr_dev("x/null", 1, 3)]), workdir / "b", devices="all")
    assert stat.S_ISCHR(os.lstat(workdir / "b/x/null").st_mode)


def test_symlink_in_root_is_only_data(workdir):
    # A symlink may point anywhere; it is only refused when something is written through it.
    root = workdir / "l"
    apply(make_tar([sym("etc", "/etc"), sym("up", "../../../..")]), root)
    assert os.readlink(root / "etc") == "/etc"


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_decompress_and_diffid(kind):
    zstandard = pytest.importorskip("zstandard", reason="zstd layers need 'zstandard'")
    tar = make_tar([f("a", os.urandom(300_000)), f("b", b"x" * 1000)])
    blob = {"gzip": lambda t: gzip.compress(t), "zstd": zstandard.ZstdCompressor().compress,
            "none": lambda t: t}[kind](tar)
    r = DecompressReader(io.BytesIO(blob), chunk=4096)
    assert r.kind == kind
    assert r.read() == tar
    import hashlib
    assert r.digest == "sha256:" + hashlib.sha256(tar).hexdigest()


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_truncated_stream_refused(kind):
    zstandard = pytest.importorskip("zstandard", reason="zstd layers need 'zstandard'")
    tar = make_tar([f("a", os.urandom(200_000))])
    blob = gzip.compress(tar) if kind == "gzip" else zstandard.ZstdCompressor().compress(tar)
    r = DecompressReader(io.BytesIO(blob[: len(blob) // 2]), chunk=4096)
    with pytest.raises(CompressionError, match="truncated"):
        r.drain()


def test_corrupt_gzip_refused():
    blob = bytearray(gzip.compress(make_tar([f("a", os.urandom(50_000))])))
    blob[100:120] = b"\0" * 20
    with pytest.raises(CompressionError):
        DecompressReader(io.BytesIO(bytes(blob))).drain()


def test_unpadded_tar_accepted_but_short_data_refused(workdir):
    # umoci 0.4.7 writes tars without the last block's padding and the end marker.
    tar = make_tar([d("a"), f("a/x", b"abc")])
    import tarfile as t
    headers = [m for m in t.open(fileobj=io.BytesIO(tar))]
    assert headers[-1].name == "a/x"
    end = headers[-1].offset_data + 3
    apply(tar[:end], workdir / "ok")
    assert (workdir / "ok/a/x").read_bytes() == b"abc"
    with pytest.raises(Exception, match="truncated"):
        apply(tar[: end - 1], workdir / "short")


def test_empty_layers(workdir):
    apply(b"\0" * 1024, workdir / "e1")
    apply(b"", workdir / "e2")
    assert os.listdir(workdir / "e1") == [] and os.listdir(workdir / "e2") == []


def test_os_errors_name_the_entry(workdir):
    with pytest.raises(InvalidArgument, match="cannot unpack layer entry"):
        apply(make_tar([f("x" * 300, b"1")]), workdir / "l")
