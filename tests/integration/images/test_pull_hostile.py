"""Hostile or broken registries and layers: each refused clearly, nothing half-committed."""

import gzip
import hashlib
import json
import os

import pytest
from helpers.registry import (
    FakeRegistry,
    chr_dev,
    d,
    f,
    fake_image,
    hard,
    make_tar,
    raw_push,
    sym,
)

from tomato.errors import InvalidArgument, PermissionDenied, Unavailable
from tomato.images.auth import Credentials
from tomato.images.compression import CompressionError
from tomato.images.content import ContentStore, DigestMismatch
from tomato.images.manifest import Platform, host_platform
from tomato.images.pull import Stores, pull
from tomato.images.reference import parse
from tomato.images.registry import RegistryClient
from tomato.images.snapshots import Snapshotter
from tomato.images.unpack import HostileLayer

LAYER = make_tar([d("etc"), f("etc/hello", b"hi" * 50000), f("big", os.urandom(400_000))])


def stores(root):
    return Stores(ContentStore(root / "content"), Snapshotter(root / "snapshots"))


def do_pull(addr, name, root, creds=None, platform=None):
    ref = parse(f"{addr}/{name}")
    client = RegistryClient(ref.domain, credentials=creds)
    client.retry_delay = 0.01
    try:
        return pull(ref, client, stores(root), platform=platform or host_platform())
    finally:
        client.close()


def assert_nothing_committed(root):
    s = stores(root)
    assert s.snapshots.list() == []
    assert os.listdir(s.snapshots.dirs) == []
    assert os.listdir(s.content.ingest_dir) == []
    for info in s.content.list():  # only small verified metadata blobs may remain
        assert info.size < 4096


def test_manifest_digest_mismatch(workdir):
    manifests, blobs, md = fake_image([LAYER])
    body, mt, _ = manifests["latest"]
    manifests["latest"] = (body, mt, "sha256:" + "0" * 64)
    other = "sha256:" + "1" * 64
    manifests[other] = (body, mt, None)
    with FakeRegistry(manifests, blobs) as reg:
        with pytest.raises(DigestMismatch, match="manifest"):
            do_pull(reg.addr, "x:latest", workdir)
        with pytest.raises(DigestMismatch, match="manifest"):
            do_pull(reg.addr, f"x@{other}", workdir)
    assert_nothing_committed(workdir)


@pytest.mark.parametrize("delta", [-10, +10])
def test_blob_size_lies(workdir, delta):
    size = len(gzip.compress(LAYER, 1)) + delta
    manifests, blobs, md = fake_image([LAYER], sizes=[size])
    with FakeRegistry(manifests, blobs) as reg:
        with pytest.raises(DigestMismatch, match="size"):
            do_pull(reg.addr, "x:latest", workdir)
    assert_nothing_committed(workdir)


def test_truncated_gzip(workdir, registry):
    blob = gzip.compress(LAYER)[:-200]
    # a self-consistent registry entry: the digest and size are of the truncated bytes
    raw = {"manifest": None}
    digest = registry.put_blob("trunc", blob)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(LAYER).hexdigest()]}}).encode()
    cd = registry.put_blob("trunc", cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": cd, "size": len(cfg)},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                  "digest": digest, "size": len(blob)}]}).encode()
    registry.put_manifest("trunc", "latest", man, "application/vnd.oci.image.manifest.v1+json")
    del raw
    with pytest.raises((CompressionError, HostileLayer, InvalidArgument), match="truncated"):
        do_pull(registry.addr, "trunc:latest", workdir)
    assert_nothing_committed(workdir)


def test_diffid_mismatch(workdir, registry):
    raw_push(registry, "baddiff", "latest", [LAYER], diff_ids=["sha256:" + "2" * 64])
    with pytest.raises(DigestMismatch, match="diffID"):
        do_pull(registry.addr, "baddiff:latest", workdir)
    assert_nothing_committed(workdir)


@pytest.mark.parametrize("ranges", [True, False])
def test_dropped_connection_resumes(workdir, ranges):
    manifests, blobs, md = fake_image([LAYER])
    layer = [k for k, v in blobs.items() if len(v) > 10000][0]
    with FakeRegistry(manifests, blobs, drop={layer: (60000, 2)}, ranges=ranges) as reg:
        img = do_pull(reg.addr, "x:latest", workdir)
        ranged = [h.get("Range") for m, p, h in reg.requests if layer in p]
    # without Range support the server restarts at 0 and the client skips what it has
    second = "bytes=120000-" if ranges else "bytes=60000-"
    assert ranged == [None, "bytes=60000-", second]
    s = stores(workdir)
    (m,) = s.snapshots.mounts(img.chain_ids[0])
    assert open(os.path.join(m.source, "etc/hello"), "rb").read() == b"hi" * 50000
    assert s.content.exists(layer)


def test_dropped_connection_fails_cleanly(workdir):
    manifests, blobs, md = fake_image([LAYER])
    layer = [k for k, v in blobs.items() if len(v) > 10000][0]
    with FakeRegistry(manifests, blobs, drop={layer: (30000, 6)}) as reg:
        with pytest.raises(Unavailable, match="retries"):
            do_pull(reg.addr, "x:latest", workdir)
        # nothing committed; what was downloaded is kept, unlocked, for the next pull
        s = stores(workdir)
        assert s.snapshots.list() == [] and os.listdir(s.snapshots.dirs) == []
        (kept,) = s.content.ingests()
        offset = os.path.getsize(s.content.ingest_dir / kept.name / "data")
        assert kept.expected == layer and not kept.live and offset >= 30000
        reg.requests.clear()
        do_pull(reg.addr, "x:latest", workdir)  # the registry has stopped dropping it
        ranged = [h.get("Range") for m, p, h in reg.requests if layer in p]
    assert ranged == [f"bytes={offset}-"]  # resumed where the failed pull stopped
    assert s.content.exists(layer) and s.content.ingests() == []


@pytest.mark.parametrize("entries,match", [
    ([f("../../../escape", b"x")], "'..'"),
    ([f("/abs-escape", b"x")], "absolute"),
    ([sym("out", "/tmp"), f("out/escape-through-link", b"x")], "not a directory"),
    ([hard("h", "../../../../etc/passwd")], "'..'"),
    ([chr_dev("etc/mem", 1, 1)], "device"),
])
def test_hostile_layers_from_registry(workdir, registry, entries, match):
    name = "hostile" + hashlib.sha256(repr(entries).encode()).hexdigest()[:8]
    raw_push(registry, name, "latest", [make_tar([d("etc")] + entries)])
    before = set(os.listdir("/tmp"))
    with pytest.raises(HostileLayer, match=match):
        do_pull(registry.addr, f"{name}:latest", workdir)
    assert set(os.listdir("/tmp")) - before <= {p for p in os.listdir("/tmp") if "tomato" in p}
    assert not os.path.exists("/abs-escape")
    assert sorted(os.listdir(workdir)) == ["content", "snapshots"]
    assert_nothing_committed(workdir)


def test_schema1_refused(workdir):
    body = json.dumps({"schemaVersion": 1, "name": "x", "tag": "latest", "fsLayers": []}).encode()
    mt = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    with FakeRegistry({"latest": (body, mt, None)}, {}) as reg:
        with pytest.raises(InvalidArgument, match="schema 1"):
            do_pull(reg.addr, "x:latest", workdir)


def test_bearer_token_auth(workdir):
    manifests, blobs, md = fake_image([LAYER])
    with FakeRegistry(manifests, blobs, token="t0k") as reg:
        img = do_pull(reg.addr, "x:latest", workdir)
        assert img.manifest_digest == md
        assert any("/token" in p for _, p, _ in reg.requests)
    with FakeRegistry(manifests, blobs, token="t0k", basic=("u", "pw")) as reg:
        with pytest.raises(PermissionDenied):
            do_pull(reg.addr, "x:latest", workdir / "b", creds=Credentials("u", "wrong"))
        img = do_pull(reg.addr, "x:latest", workdir / "c", creds=Credentials("u", "pw"))
        assert img.manifest_digest == md


def test_index_platform_selection(workdir):
    manifests, blobs, md = fake_image([LAYER])
    man = manifests[md][0]
    other_m, other_b, other_md = fake_image([make_tar([f("arm", b"1")])])
    blobs.update(other_b)
    manifests[other_md] = other_m[other_md]
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [
                            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "digest": other_md, "size": len(other_m[other_md][0]),
                             "platform": {"os": "linux", "architecture": "arm64",
                                          "variant": "v8"}},
                            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "digest": md, "size": len(man),
                             "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    idig = "sha256:" + hashlib.sha256(index).hexdigest()
    manifests["multi"] = (index, "application/vnd.oci.image.index.v1+json", idig)
    with FakeRegistry(manifests, blobs) as reg:
        a = do_pull(reg.addr, "x:multi", workdir, platform=Platform("linux", "amd64"))
        assert a.manifest_digest == md and a.target_digest == idig
        b = do_pull(reg.addr, "x:multi", workdir, platform=Platform("linux", "arm64"))
        assert b.manifest_digest == other_md
        with pytest.raises(InvalidArgument, match="platform"):
            do_pull(reg.addr, "x:multi", workdir, platform=Platform("linux", "s390x"))


def test_blob_redirect_drops_authorization(workdir):
    manifests, blobs, md = fake_image([LAYER])
    with FakeRegistry(manifests, blobs, token="tk", redirect=True) as reg:
        img = do_pull(reg.addr, "x:latest", workdir)
        storage = [h for _, p, h in reg.requests if p.startswith("/storage/")]
    assert img.manifest_digest == md and len(storage) == 2  # config + layer
    assert all("Authorization" not in h for h in storage)


def test_zstd_layer(workdir, registry):
    zstandard = pytest.importorskip("zstandard", reason="zstd layers need 'zstandard'")
    blob = zstandard.ZstdCompressor().compress(LAYER)
    digest = registry.put_blob("zstd", blob)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(LAYER).hexdigest()]}}).encode()
    cd = registry.put_blob("zstd", cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": cd, "size": len(cfg)},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                                  "digest": digest, "size": len(blob)}]}).encode()
    registry.put_manifest("zstd", "latest", man, "application/vnd.oci.image.manifest.v1+json")
    img = do_pull(registry.addr, "zstd:latest", workdir)
    (m,) = stores(workdir).snapshots.mounts(img.chain_ids[0])
    assert open(os.path.join(m.source, "etc/hello"), "rb").read() == b"hi" * 50000


def test_unknown_layer_media_type_refused(workdir):
    manifests, blobs, md = fake_image([LAYER])
    body, mt, _ = manifests["latest"]
    doc = json.loads(body)
    doc["layers"][0]["mediaType"] = "application/vnd.example.helm.chart"
    body = json.dumps(doc).encode()
    manifests["latest"] = (body, mt, None)
    with FakeRegistry(manifests, blobs) as reg:
        with pytest.raises(InvalidArgument, match="media type"):
            do_pull(reg.addr, "x:latest", workdir)
    assert_nothing_committed(workdir)
