"""Fixtures for image tests: a real registry and images built by umoci/skopeo."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.registry import Registry, build_oci_image, need, skopeo_push, umoci


@pytest.fixture(scope="session")
def registry(storage: Path) -> Iterator[Registry]:
    """A docker-registry on 127.0.0.1:<free port>, storage on the session tmpfs."""
    need("docker-registry", "skopeo", "umoci")
    with Registry(Path(tempfile.mkdtemp(prefix="registry-", dir=storage))) as reg:
        yield reg


@pytest.fixture
def second_registry(workdir: Path) -> Iterator[Registry]:
    need("docker-registry")
    d = workdir / "registry2"
    d.mkdir()
    with Registry(d) as reg:
        yield reg


@dataclass(frozen=True)
class TestImages:
    layout: Path
    rootfs: Path  # what the busybox image's only layer holds
    registry: Registry


@pytest.fixture(scope="session")
def test_images(storage: Path, busybox_rootfs: Path, registry: Registry) -> TestImages:
    """umoci-built images pushed by skopeo:

    busybox:latest   one layer: the busybox rootfs
    layered:latest   busybox's layer + /opt/data/{a,b} + whiteout of /opt/data/a
                     + /etc replaced by an opaque dir holding only hostname
    """
    base = Path(tempfile.mkdtemp(prefix="images-", dir=storage))
    layout = base / "oci"
    build_oci_image(layout, "latest", [busybox_rootfs])
    skopeo_push(f"oci:{layout}:latest", registry, "busybox:latest")

    extra = base / "extra"
    (extra / "data").mkdir(parents=True)
    (extra / "data" / "a").write_text("a")
    (extra / "data" / "b").write_text("b")
    etc = base / "etc"
    etc.mkdir()
    (etc / "hostname").write_text("tomato\n")
    umoci("tag", "--image", f"{layout}:latest", "layered")
    img = f"{layout}:layered"
    umoci("insert", "--image", img, str(extra / "data"), "/opt/data")
    umoci("insert", "--image", img, "--whiteout", "/opt/data/a")
    umoci("insert", "--image", img, "--opaque", str(etc), "/etc")
    skopeo_push(f"oci:{img}", registry, "layered:latest")
    shutil.rmtree(extra)
    return TestImages(layout, busybox_rootfs, registry)
