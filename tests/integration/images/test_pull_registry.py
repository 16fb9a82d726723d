"""Pull from a real registry into the content store and snapshots (images package level)."""

import os
import stat
import subprocess

import pytest
from helpers.registry import tree_listing

from tomato.images.content import ContentStore
from tomato.images.manifest import host_platform
from tomato.images.pull import Stores, pull
from tomato.images.reference import parse
from tomato.images.registry import RegistryClient
from tomato.images.snapshots import Snapshotter


def stores(root):
    return Stores(ContentStore(root / "content"), Snapshotter(root / "snapshots"))


def do_pull(reg, name, root, **kw):
    ref = parse(f"{reg.addr}/{name}")
    client = RegistryClient(ref.domain)
    try:
        return pull(ref, client, stores(root), platform=host_platform(), **kw)
    finally:
        client.close()


def test_pull_busybox_tree_matches(test_images, workdir):
    events = []
    img = do_pull(test_images.registry, "busybox:latest", workdir, progress=events.append)
    assert len(img.chain_ids) == 1
    s = stores(workdir)
    (m,) = s.snapshots.mounts(img.chain_ids[0])
    assert m.type == "bind"
    got = tree_listing(m.source)
    want = tree_listing(test_images.rootfs)
    assert got == want
    assert {e.status for e in events} >= {"waiting", "downloading", "done"}
    # every blob in the store matches its name
    for info in s.content.list():
        assert s.content.read(info.digest) if info.size < 1 << 20 else True
    assert os.listdir(s.content.ingest_dir) == []


def test_layered_image_whiteouts_and_sharing(test_images, workdir):
    a = do_pull(test_images.registry, "busybox:latest", workdir)
    events = []
    b = do_pull(test_images.registry, "layered:latest", workdir, progress=events.append)
    assert len(b.chain_ids) == 4
    assert b.chain_ids[0] == a.chain_ids[0]
    assert any(e.status == "exists" for e in events)  # the shared layer was not fetched again
    s = stores(workdir)
    assert len(s.snapshots.list()) == 4
    mounts = s.snapshots.prepare("ctr", b.chain_ids[-1])
    target = workdir / "rootfs"
    target.mkdir()
    m = mounts[0]
    subprocess.run(["mount", "-t", "overlay", "-o", ",".join(m.options), "overlay", str(target)],
                   check=True)
    try:
        assert os.listdir(target / "opt/data") == ["b"]
        assert os.listdir(target / "etc") == ["hostname"]
        assert (target / "bin/busybox").exists()
    finally:
        subprocess.run(["umount", str(target)], check=True)
    lower_opt = os.path.join(m.lowerdirs[1], "opt/data/a")
    assert stat.S_ISCHR(os.lstat(lower_opt).st_mode)
    s.snapshots.remove("ctr")


def test_pull_by_digest_and_missing(test_images, workdir):
    from helpers.registry import skopeo_digest

    from tomato.errors import NotFound
    digest = skopeo_digest(test_images.registry, "busybox:latest")
    img = do_pull(test_images.registry, f"busybox@{digest}", workdir)
    assert img.target_digest == digest
    with pytest.raises(NotFound):
        do_pull(test_images.registry, "busybox:nope", workdir)
