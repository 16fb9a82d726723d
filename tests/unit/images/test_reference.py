import pytest

from tomato.errors import InvalidArgument
from tomato.images.reference import is_image_id, parse

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("user/app", "docker.io/user/app:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/ns/app:v1", "localhost:5000/ns/app:v1"),
    ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest"),
    ("quay.io/a/b/c:t", "quay.io/a/b/c:t"),
    (f"host:5000/ns/name@{D}", f"host:5000/ns/name@{D}"),
    (f"busybox:1@{D}", f"docker.io/library/busybox:1@{D}"),
    ("ab_c__d-e--f/x", "docker.io/ab_c__d-e--f/x:latest"),
])
def test_normalise(text, expected):
    assert str(parse(text)) == expected


def test_familiar_and_reference():
    r = parse("busybox")
    assert r.familiar() == "busybox:latest"
    assert r.reference == "latest"
    assert parse("user/app:1").familiar() == "user/app:1"
    assert parse("h:1/x").familiar_repository == "h:1/x"
    r = parse(f"h:1/x:t@{D}")
    assert r.reference == D and r.tag == "t"
    assert parse("busybox", default_tag=False).tag is None


@pytest.mark.parametrize("text", [
    "", "Busybox", "Foo/Bar", "busy box", "a/../b", "x:", "x:-bad", "x@sha256:abc",
    "a" * 64, "/abs", "x/", "UPPER:5000/x/Y", "x:" + "t" * 129, "a__-b",
])
def test_invalid(text):
    with pytest.raises(InvalidArgument):
        parse(text)


def test_with_tag():
    assert str(parse("busybox").with_tag("x")) == "docker.io/library/busybox:x"
    with pytest.raises(InvalidArgument):
        parse("busybox").with_tag("bad tag")


def test_is_image_id():
    assert is_image_id("abcd1234")
    assert is_image_id("sha256:" + "0" * 64)
    assert not is_image_id("busybox")
