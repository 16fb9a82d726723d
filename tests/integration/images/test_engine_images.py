"""Image use cases end to end against real registries, skopeo and overlayfs."""

import json
import os
import stat
import subprocess
import sys
import tarfile
import threading

import pytest
from helpers.registry import FakeRegistry, f, fake_image, make_tar, skopeo_digest, tree_listing

from tomato.engine import images as im
from tomato.errors import Conflict, NotFound, PermissionDenied
from tomato.images.content import ContentStore
from tomato.images.snapshots import Snapshotter


def cfg(root):
    return im.EngineConfig(root=root / "root", auth_file=root / "auth" / "config.json")


def blobs(c):
    return {b.digest for b in ContentStore(c.root / "content").list()}


def snaps(c):
    return Snapshotter(c.root / "snapshots").list()


def layer_tree(c, img):
    (m,) = Snapshotter(c.root / "snapshots").mounts(img.chain_ids[0])
    return tree_listing(m.source)


def test_round_trip_same_digests(test_images, second_registry, workdir):
    reg = test_images.registry
    a = cfg(workdir / "a")
    img = im.pull(a, f"{reg.addr}/busybox:latest")
    original = skopeo_digest(reg, "busybox:latest")
    assert img.target_digest == original and img.repo_digests
    archive_path = workdir / "busybox.tar"
    im.save(a, [f"{reg.addr}/busybox:latest"], archive_path, "oci-archive")
    b = cfg(workdir / "b")
    (loaded,) = im.load(b, archive_path)
    assert loaded.id == img.id and loaded.chain_ids == img.chain_ids
    assert loaded.repo_tags == (f"{reg.addr}/busybox:latest",)
    target = f"{second_registry.addr}/copy/busybox:v1"
    im.tag(b, loaded.id, target)
    pushed = im.push(b, target)
    assert pushed.digest == original
    assert skopeo_digest(second_registry, "copy/busybox:v1") == original
    c = cfg(workdir / "c")
    again = im.pull(c, target)
    assert (again.id, again.manifest_digest, again.chain_ids) == \
        (img.id, img.manifest_digest, img.chain_ids)
    assert layer_tree(c, again) == tree_listing(test_images.rootfs)


def test_docker_archive_interop_with_skopeo(test_images, workdir):
    reg = test_images.registry
    a = cfg(workdir / "a")
    img = im.pull(a, f"{reg.addr}/layered:latest")
    out = workdir / "docker.tar"
    im.save(a, [f"{reg.addr}/layered:latest"], out, "docker-archive")
    names = {m.name for m in tarfile.open(out)}
    assert {"manifest.json", "repositories"} <= names
    # skopeo reads what we wrote ...
    subprocess.run(["skopeo", "copy", "-q", f"docker-archive:{out}", f"oci:{workdir}/sk:x"],
                   check=True, capture_output=True)
    cfg_out = subprocess.run(["skopeo", "inspect", "--config", f"oci:{workdir}/sk:x"],
                             check=True, capture_output=True, text=True).stdout
    assert json.loads(cfg_out)["rootfs"]["diff_ids"] == \
        list(im.inspect(a, img.id).diff_ids)
    # ... and we read what skopeo writes, as docker-archive and as an OCI layout directory
    skopeo_tar = workdir / "from-skopeo.tar"
    subprocess.run(["skopeo", "copy", "-q", f"oci:{test_images.layout}:latest",
                    f"docker-archive:{skopeo_tar}:example.com/bb:t"], check=True,
                   capture_output=True)
    b = cfg(workdir / "b")
    (loaded,) = im.load(b, skopeo_tar)
    assert loaded.repo_tags == ("example.com/bb:t",)
    assert layer_tree(b, loaded) == tree_listing(test_images.rootfs)
    # skopeo rewrites the config into OCI form, so compare layers, not the image ID
    c = cfg(workdir / "c")
    (from_dir,) = im.load(c, workdir / "sk")
    assert from_dir.repo_tags == () and from_dir.chain_ids == img.chain_ids
    assert im.inspect(c, from_dir.id).diff_ids == im.inspect(a, img.id).diff_ids


def test_rmi_tags_leases_and_gc(test_images, workdir):
    reg = test_images.registry
    c = cfg(workdir)
    bb = im.pull(c, f"{reg.addr}/busybox:latest")
    lay = im.pull(c, f"{reg.addr}/layered:latest")
    assert len(snaps(c)) == 4  # the busybox layer is shared
    im.tag(c, bb.id, "mine:1")
    res = im.remove(c, "mine:1")
    assert res.untagged == ("mine:1",) and res.deleted == ()
    im.tag(c, bb.id, "mine:2")
    with pytest.raises(Conflict, match="must be forced"):
        im.remove(c, bb.id[7:19])
    mounts = im.prepare_rootfs(c, f"{reg.addr}/layered:latest", "ctr-1")
    assert mounts[0].type == "overlay" and len(mounts[0].lowerdirs) == 4
    with pytest.raises(Conflict, match="being used"):
        im.remove(c, f"{reg.addr}/layered:latest")
    im.release_rootfs(c, "ctr-1")
    res = im.remove(c, f"{reg.addr}/layered:latest")
    assert res.deleted == (lay.id,)
    assert len(snaps(c)) == 1 and snaps(c)[0].key == bb.chain_ids[0]
    res = im.remove(c, bb.id, force=True)
    assert res.deleted == (bb.id,)
    assert snaps(c) == [] and blobs(c) == set()
    with pytest.raises(NotFound):
        im.get_image(c, bb.id)


def test_prune_and_df(test_images, workdir):
    reg = test_images.registry
    c = cfg(workdir)
    bb = im.pull(c, f"{reg.addr}/busybox:latest")
    im.pull(c, f"{reg.addr}/layered:latest")
    row, cache = im.disk_usage(c)
    assert row.total == 2 and row.size > 1_000_000 and row.reclaimable == row.size
    assert (cache.type, cache.total, cache.size) == ("Pull Cache", 0, 0)  # nothing left over
    im.prepare_rootfs(c, bb.id, "ctr-x")
    assert im.disk_usage(c)[0].active == 1
    assert im.prune(c).deleted == ()  # nothing dangling
    res = im.prune(c, all_images=True)
    assert len(res.deleted) == 1 and im.list_images(c)[0].id == bb.id
    im.release_rootfs(c, "ctr-x")
    im.prune(c, all_images=True)
    assert im.list_images(c) == [] and snaps(c) == [] and blobs(c) == set()


def test_import_rootfs_tarball(test_images, workdir):
    tar_path = workdir / "rootfs.tar"
    with tarfile.open(tar_path, "w:gz") as tf:
        tf.add(test_images.rootfs, arcname=".")
    c = cfg(workdir)
    img = im.import_image(c, tar_path, reference="imported:v1",
                          config={"Cmd": ["/bin/sh"]}, message="from a test")
    assert img.repo_tags == ("imported:v1",)
    detail = im.inspect(c, "imported:v1")
    assert detail.config == {"Cmd": ["/bin/sh"]}
    got = layer_tree(c, img)
    want = tree_listing(test_images.rootfs)
    assert got == want
    assert im.history(c, "imported:v1")[0].comment == "from a test"


def test_concurrent_pulls_of_one_image(test_images, workdir):
    reg = test_images.registry
    c = cfg(workdir)
    errors = []

    def go():
        try:
            im.pull(c, f"{reg.addr}/layered:latest")
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=go) for _ in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "tomato.cli.engine", "--root", str(c.root),
                               "pull", "-q", f"{reg.addr}/layered:latest"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert errors == []
    assert len(im.list_images(c)) == 1 and len(snaps(c)) == 4
    assert os.listdir(ContentStore(c.root / "content").ingest_dir) == []
    assert len(os.listdir(Snapshotter(c.root / "snapshots").dirs)) == 4


def test_login_logout_and_authenticated_pull(workdir):
    manifests, blob_map, md = fake_image([make_tar([f("x", b"1")])])
    c = cfg(workdir)
    with FakeRegistry(manifests, blob_map, token="tk", basic=("alice", "s3cret")) as reg:
        with pytest.raises(PermissionDenied):
            im.login(c, reg.addr, "alice", "wrong")
        assert not c.auth_file.exists()
        im.login(c, reg.addr, "alice", "s3cret")
        assert stat.S_IMODE(os.stat(c.auth_file).st_mode) == 0o600
        doc = json.loads(c.auth_file.read_text())
        assert doc["auths"][reg.addr]["auth"] == "YWxpY2U6czNjcmV0"
        img = im.pull(c, f"{reg.addr}/x:latest")
        assert img.manifest_digest == md
        assert im.logout(c, reg.addr)
        assert json.loads(c.auth_file.read_text())["auths"] == {}
        with pytest.raises(PermissionDenied):
            im.pull(c, f"{reg.addr}/x:latest")


def test_oci_layout_save_is_read_by_skopeo(test_images, second_registry, workdir):
    reg = test_images.registry
    a = cfg(workdir / "a")
    img = im.pull(a, f"{reg.addr}/layered:latest")
    out = workdir / "layout"
    im.save(a, [f"{reg.addr}/layered:latest"], out, "oci")
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{out}:latest",
                    f"docker://{second_registry.addr}/via-skopeo:latest"], check=True,
                   capture_output=True)
    assert skopeo_digest(second_registry, "via-skopeo:latest") == img.manifest_digest
