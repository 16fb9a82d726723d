"""The snapshotter's shape and its mounts, checked by really mounting overlayfs."""

import io
import os
import subprocess
from contextlib import contextmanager

import pytest
from helpers.registry import d, f, make_tar

from tomato.errors import AlreadyExists, Conflict, NotFound
from tomato.images.manifest import chain_ids
from tomato.images.snapshots import Snapshotter
from tomato.images.unpack import apply_layer


@contextmanager
def mounted(mounts, target):
    (m,) = mounts
    target.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", m.type, "-o", ",".join(m.options), m.source, str(target)],
                   check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def committed_layer(sn, tar, name, parent):
    st = sn.stage()
    apply_layer(io.BytesIO(tar), st.path)
    return sn.commit_staged(st, name, parent)


@pytest.fixture
def two_layers(workdir):
    sn = Snapshotter(workdir / "snap")
    lower = make_tar([d("a"), f("a/gone", b"g"), f("a/kept", b"k"), d("b"), f("b/old", b"o"),
                      f("top", b"1")])
    upper = make_tar([d("a"), f("a/.wh.gone"), d("b"), f("b/.wh..wh..opq"), f("b/new", b"n"),
                      f("top", b"2")])
    c1, c2 = chain_ids(["sha256:" + "1" * 64, "sha256:" + "2" * 64])
    committed_layer(sn, lower, c1, None)
    committed_layer(sn, upper, c2, c1)
    return sn, c1, c2


def test_whiteouts_and_opaque_under_overlay(two_layers, workdir):
    sn, c1, c2 = two_layers
    mounts = sn.prepare("ctr1", c2)
    m = mounts[0]
    assert m.type == "overlay" and len(m.lowerdirs) == 2
    assert m.option("upperdir") and m.option("workdir")
    with mounted(mounts, workdir / "rootfs") as root:
        assert sorted(os.listdir(root / "a")) == ["kept"]
        assert not (root / "a/gone").exists()
        assert os.listdir(root / "b") == ["new"]
        assert (root / "top").read_text() == "2"
        (root / "a/kept").write_text("changed")
        (root / "a/kept2").write_text("x")
    upper = m.option("upperdir")
    assert open(os.path.join(upper, "a/kept")).read() == "changed"
    # the committed layers were not touched by the container's writes
    lower_kept = os.path.join(m.lowerdirs[1], "a/kept")
    assert open(lower_kept).read() == "k"
    sn.remove("ctr1")
    assert not os.path.exists(upper)


def test_view_is_read_only(two_layers, workdir):
    sn, c1, c2 = two_layers
    mounts = sn.view("v", c2)
    assert "upperdir" not in ",".join(mounts[0].options)
    with mounted(mounts, workdir / "v") as root:
        assert (root / "top").read_text() == "2"
        with pytest.raises(OSError):
            (root / "x").write_text("no")
    sn.remove("v")
    (one,) = sn.view("v1", c1)
    assert one.type == "bind" and "ro" in one.options
    sn.remove("v1")


def test_commit_active_and_rules(two_layers):
    sn, c1, c2 = two_layers
    mounts = sn.prepare("work", c2)
    with open(os.path.join(mounts[0].option("upperdir"), "f"), "w") as fh:
        fh.write("layer3")
    info = sn.commit("layer3", "work")
    assert info.kind == "committed" and info.parent == c2
    assert len(sn.mounts("layer3")[0].lowerdirs) == 3
    with pytest.raises(Conflict):
        sn.remove(c2)
    with pytest.raises(AlreadyExists):
        sn.prepare("layer3", c1)
    with pytest.raises(NotFound):
        sn.prepare("x", "nope")
    base = sn.prepare("base")
    assert base[0].type == "bind"
    sn.remove("base")
    for k in ("layer3", c2, c1):
        sn.remove(k)
    assert sn.list() == [] and os.listdir(sn.dirs) == []


def test_shared_layer_is_stored_once(workdir):
    sn = Snapshotter(workdir / "snap")
    tar = make_tar([f("x", b"1")])
    a = committed_layer(sn, tar, "sha256:" + "a" * 64, None)
    b = committed_layer(sn, tar, "sha256:" + "a" * 64, None)
    assert a.id == b.id and len(os.listdir(sn.dirs)) == 1
