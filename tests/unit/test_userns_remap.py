"""engine/userns_remap.py's pure parts: USER[:GROUP] against a passwd/subuid of the
test's own (module paths pointed at tmp files), the spec's mappings, dockerd's
refusals, and images.changes.unshift."""

from __future__ import annotations

import os
import pwd
import tarfile
from pathlib import Path

import pytest

from tomato.engine import userns_remap
from tomato.engine.options import RunOptions
from tomato.errors import InvalidArgument
from tomato.images.changes import NOBODY, unshift

ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def subids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "subuid").write_text(f"other:1:2\n{ME}:200000:65536\n{ME}:900000:10\n")
    (tmp_path / "subgid").write_text(f"{ME}:300000:1000\n")
    monkeypatch.setattr(userns_remap, "SUBUID", str(tmp_path / "subuid"))
    monkeypatch.setattr(userns_remap, "SUBGID", str(tmp_path / "subgid"))
    return tmp_path


def test_user_takes_its_first_ranges(subids: Path) -> None:
    r = userns_remap.parse(ME)
    assert (r.uid_start, r.uid_count, r.gid_start, r.gid_count) == (200000, 65536, 300000,
                                                                    1000)
    assert r.dirname == "200000.300000"
    assert userns_remap.parse(str(os.getuid())).uid_start == 200000  # a uid names it too
    spec = {"linux": {"namespaces": [{"type": "mount"}]}}
    userns_remap.apply_to_spec(spec, r, RunOptions(image="x"))
    assert spec["linux"]["namespaces"][0] == {"type": "user"}
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 200000,
                                             "size": 65536}]
    host = {"linux": {"namespaces": []}}
    userns_remap.apply_to_spec(host, r, RunOptions(image="x", userns_mode="host"))
    assert host == {"linux": {"namespaces": []}}


@pytest.mark.parametrize("value", ["", " x", "a:b:c", "a:", ":g"])
def test_bad_values_are_one_line(subids: Path, value: str) -> None:
    with pytest.raises(InvalidArgument, match="--userns-remap"):
        userns_remap.parse(value)


def test_missing_ranges_and_users(subids: Path) -> None:
    (subids / "subgid").write_text("")
    with pytest.raises(InvalidArgument, match=f"no subordinate gid range for {ME}"):
        userns_remap.parse(ME)
    with pytest.raises(InvalidArgument, match="no such user: nobody-here-zz"):
        userns_remap.parse("nobody-here-zz")


def test_dockerds_refusals_unless_userns_host(subids: Path) -> None:
    r = userns_remap.parse(ME)
    for opts, words in ((RunOptions(image="x", privileged=True), "privileged mode"),
                        (RunOptions(image="x", network="host"), "network namespace"),
                        (RunOptions(image="x", pid_mode="host"), "PID namespace")):
        with pytest.raises(InvalidArgument, match=words):
            userns_remap.check(r, opts)
    userns_remap.check(r, RunOptions(image="x", privileged=True, userns_mode="host"))
    userns_remap.check(None, RunOptions(image="x", privileged=True))


def test_unshift_gives_back_the_containers_ids() -> None:
    shift = (200000, 65536, 300000, 1000)
    info = tarfile.TarInfo("f")
    info.uid, info.gid = 200033, 300033
    assert (unshift(info, shift).uid, info.gid) == (33, 33)
    info.uid, info.gid = 5, 301000  # outside the maps: the kernel's overflow id
    assert (unshift(info, shift).uid, info.gid) == (NOBODY, NOBODY)
