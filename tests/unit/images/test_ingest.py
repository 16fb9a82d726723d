"""Ingests that outlive their writer: resume, locks, and what the GC may take (issue 13,
item 7).  A live writer is one holding its ingest's flock; in one process a second open
file description of the lock conflicts just as another process's would."""

import os
import threading

import pytest

from tomato.errors import InvalidArgument
from tomato.images.content import ContentStore, DigestMismatch, digest_bytes
from tomato.images.registry import BlobStream, RegistryClient
from tomato.images.snapshots import Snapshotter

DATA = os.urandom(300_000)
DIGEST = digest_bytes(DATA)


def test_a_resumable_writer_keeps_its_bytes_and_the_next_one_continues(tmp_path):
    cs = ContentStore(tmp_path)
    with cs.writer(DIGEST, len(DATA), resume=True) as w:
        w.write(DATA[:100_000])
    (left,) = cs.ingests()
    assert (left.expected, left.live) == (DIGEST, False) and left.size >= 100_000
    with cs.writer(DIGEST, len(DATA), resume=True) as w:
        assert w.offset == w.resumed_from == 100_000
        assert w.read_written().read() == DATA[:100_000]
        w.write(DATA[100_000:])
        assert w.commit() == cs.info(DIGEST)
    assert cs.read(DIGEST) == DATA and cs.ingests() == [] and os.listdir(cs.ingest_dir) == []


def test_resumed_bytes_are_verified_with_the_rest(tmp_path):
    cs = ContentStore(tmp_path)
    with cs.writer(DIGEST, len(DATA), resume=True) as w:
        w.write(b"\0" * 1000)  # not the blob's first bytes (a disk that lost a page)
    with cs.writer(DIGEST, len(DATA), resume=True) as w:
        w.write(DATA[1000:])
        with pytest.raises(DigestMismatch):
            w.commit()
    assert not cs.exists(DIGEST) and os.listdir(cs.ingest_dir) == []


def test_too_many_kept_bytes_and_plain_writers_start_over(tmp_path):
    cs = ContentStore(tmp_path)
    with cs.writer(DIGEST, None, resume=True) as w:
        w.write(DATA + b"extra")
    with cs.writer(DIGEST, len(DATA), resume=True) as w:
        assert w.offset == 0  # more than the blob's size: nothing to resume
        w.write(DATA[:10])
    assert cs.write(DATA, DIGEST).digest == DIGEST  # a whole blob in hand: from zero
    assert os.listdir(cs.ingest_dir) == []


def test_writers_without_resume_leave_nothing(tmp_path):
    cs = ContentStore(tmp_path)
    with cs.writer() as w:  # unnamed (a commit's layer): cannot be resumed
        w.write(b"abc")
    with cs.writer(DIGEST, len(DATA)) as w:
        w.write(DATA[:5])
    assert os.listdir(cs.ingest_dir) == []


def test_the_gc_never_takes_a_live_ingest(tmp_path):
    cs = ContentStore(tmp_path)
    live = cs.writer(DIGEST, len(DATA), resume=True)
    live.write(DATA[:5000])
    scratch = cs.scratch()
    (scratch.path / "x").write_bytes(b"y" * 5000)
    dead = cs.writer(digest_bytes(b"other"), 5, resume=True)
    dead.write(b"oth")
    dead.close()
    (cs.ingest_dir / "blob-abc123").write_bytes(b"z" * 8192)  # an older tomato's temp file
    states = {i.name: i.live for i in cs.ingests()}
    assert states == {DIGEST[7:]: True, scratch.name: True, digest_bytes(b"other")[7:]: False,
                      "blob-abc123": False}
    assert cs.collect_ingests() >= 8192
    assert sorted(os.listdir(cs.ingest_dir)) == sorted([DIGEST[7:], scratch.name])
    live.write(DATA[5000:])
    live.commit()
    scratch.remove()
    assert os.listdir(cs.ingest_dir) == [] and cs.collect_ingests() == 0


def test_writers_collect_only_what_nobody_can_resume(tmp_path):
    cs = ContentStore(tmp_path)
    with cs.writer(DIGEST, len(DATA), resume=True) as w:
        w.write(DATA[:10])  # a dead pull's: resumable
    unnamed = cs.writer()
    unnamed.write(b"a commit's layer")
    unnamed._finish(keep=True)  # as kill -9 leaves it: unlocked, still there
    (cs.ingest_dir / "blob-young").write_bytes(b"x")  # no lock (yet): spared for a while
    assert cs.collect_ingests(resumable=False, grace=60) > 0
    assert sorted(os.listdir(cs.ingest_dir)) == sorted([DIGEST[7:], "blob-young"])
    assert cs.collect_ingests() > 0 and os.listdir(cs.ingest_dir) == []


def test_a_second_writer_of_the_same_blob_waits_for_the_first(tmp_path):
    cs = ContentStore(tmp_path)
    first = cs.writer(DIGEST, len(DATA), resume=True)
    first.write(DATA[:1000])
    got = []

    def second() -> None:
        with cs.writer(DIGEST, len(DATA), resume=True) as w:
            got.append((w.offset, cs.exists(DIGEST)))

    t = threading.Thread(target=second)
    t.start()
    t.join(0.3)
    assert t.is_alive() and got == []  # waiting on the first's lock, not writing beside it
    first.write(DATA[1000:])
    first.commit()
    t.join(10)
    assert not t.is_alive() and got == [(0, True)]  # then finds the blob stored
    assert os.listdir(cs.ingest_dir) == []


def test_writers_that_come_and_go_together_never_fail(tmp_path):
    """Concurrent pulls of one image: one writer removing its ingest while another makes
    it again once failed with "File exists" (pathlib's mkdir(exist_ok) checks again)."""
    from tomato.images.content import Ingest

    cs = ContentStore(tmp_path)
    errors = []

    def churn() -> None:
        try:
            for _ in range(1500):
                Ingest(cs, "sha256-one").remove()
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and os.listdir(cs.ingest_dir) == []


def test_snapshot_orphans_live_and_dead(tmp_path):
    sn = Snapshotter(tmp_path)
    staging = sn.stage()
    (staging.path / "f").write_bytes(b"x" * 4096)
    dead = sn.dirs / "0123456789ab"  # what a killed unpack left: a directory, no record
    (dead / "fs").mkdir(parents=True)
    (dead / "fs" / "g").write_bytes(b"y" * 8192)
    assert {(o.id, o.live) for o in sn.orphans()} == {(staging.id, True), (dead.name, False)}
    assert sn.clean_orphans() >= 8192
    assert os.listdir(sn.dirs) == [staging.id]
    info = sn.commit_staged(staging, "sha256:" + "c" * 64, None)
    assert sn.orphans() == [] and sn.clean_orphans() == 0
    assert os.listdir(sn.fs_path(info)) == ["f"]


def test_a_resumed_range_must_start_where_asked():
    stream = BlobStream(RegistryClient("localhost:5000"), "r", DIGEST, 1000, offset=400)
    assert stream.offset == 400
    assert stream._range_ok("bytes 400-999/1000") and stream._range_ok("bytes 400-999/*")
    assert stream._range_ok(None)  # Content-Length is checked against the size instead
    for bad in ("bytes 0-999/1000", "bytes 400-998/1000", "bytes 400-999/2000",
                "items 400-999/1000", "bytes x-y/z", ""):
        assert not stream._range_ok(bad), bad
    with pytest.raises(InvalidArgument, match="cannot resume"):
        BlobStream(RegistryClient("localhost:5000"), "r", DIGEST, 1000, offset=1001)
