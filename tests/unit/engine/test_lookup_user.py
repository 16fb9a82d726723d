"""USER resolved from an image's /etc/passwd and /etc/group as docker's user library does,
hostile files included: an id field that is not a number is 0 (Go's Atoi with its error
ignored), never a traceback."""

import pytest

from tomato.engine.specgen import lookup_user
from tomato.errors import NotFound


@pytest.fixture
def rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "app:x:1000:1000::/home/app:/bin/sh\n"
        "bad:x:abc:x12::/:/bin/sh\n"
        "neg:x:-5:+7::/:/bin/sh\n")
    (tmp_path / "etc/group").write_text("app:x:1000:\nstaff:x:50:app\nodd:x:zz:app\n")
    return tmp_path


def test_names_and_numbers(rootfs):
    assert lookup_user(rootfs, "app") == (1000, 1000, [0, 50])
    assert lookup_user(rootfs, "1000") == (1000, 1000, [0, 50])
    assert lookup_user(rootfs, "app:staff") == (1000, 50, [0])
    assert lookup_user(rootfs, "4242") == (4242, 0, [])


def test_id_fields_that_are_not_numbers_are_zero_as_docker(rootfs):
    assert lookup_user(rootfs, "bad") == (0, 0, [])
    assert lookup_user(rootfs, "neg") == (-5, 7, [])
    assert lookup_user(rootfs, "app:odd")[1] == 0


def test_digits_that_are_not_ascii_name_a_user(rootfs):
    with pytest.raises(NotFound, match="unable to find user"):
        lookup_user(rootfs, "\u0661\u0662")
    with pytest.raises(NotFound, match="unable to find group"):
        lookup_user(rootfs, "app:\u0661")
