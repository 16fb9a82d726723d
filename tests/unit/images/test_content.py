import hashlib
import io
import os

import pytest

from tomato.errors import InvalidArgument, NotFound
from tomato.images.content import ContentStore, DigestMismatch, digest_bytes


def test_write_and_read(tmp_path):
    cs = ContentStore(tmp_path)
    data = b"hello" * 1000
    info = cs.ingest(io.BytesIO(data), digest_bytes(data), len(data))
    assert info.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert cs.read(info.digest) == data
    assert cs.exists(info.digest)
    assert list(cs.list()) == [info]
    assert os.listdir(cs.ingest_dir) == []


def test_mismatch_refused_and_removed(tmp_path):
    cs = ContentStore(tmp_path)
    wrong = digest_bytes(b"other")
    with pytest.raises(DigestMismatch, match="expected"):
        cs.ingest(io.BytesIO(b"data"), wrong, 4)
    assert not cs.exists(wrong)
    assert os.listdir(cs.ingest_dir) == []
    assert list(cs.list()) == []


def test_size_lies(tmp_path):
    cs = ContentStore(tmp_path)
    data = b"x" * 100
    with pytest.raises(DigestMismatch, match="size"):
        cs.ingest(io.BytesIO(data), digest_bytes(data), 50)
    with pytest.raises(DigestMismatch, match="size"):
        cs.ingest(io.BytesIO(data), digest_bytes(data), 500)
    assert list(cs.list()) == [] and os.listdir(cs.ingest_dir) == []


def test_corrupt_blob_detected(tmp_path):
    cs = ContentStore(tmp_path)
    info = cs.write(b"abc")
    cs.path(info.digest).write_bytes(b"abd")
    with pytest.raises(DigestMismatch):
        cs.read(info.digest)


def test_bad_digest_and_missing(tmp_path):
    cs = ContentStore(tmp_path)
    with pytest.raises(InvalidArgument):
        cs.path("md5:abc")
    with pytest.raises(InvalidArgument):
        cs.path("sha256:../../etc/passwd")
    with pytest.raises(NotFound):
        cs.info("sha256:" + "0" * 64)
