"""Fixtures: a private containerd with busybox imported, and the runtimes it drives."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.containerd import Containerd, Runtime, build_busybox_archive, missing_tools

TOMATO_RUNTIME = Path(sys.executable).parent / "tomato-runtime"


@pytest.fixture(scope="session")
def busybox_archive(storage: Path, busybox_rootfs: Path) -> Path:
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install containerd umoci)")
    work = storage / "containerd-image"
    archive = work / "busybox-oci.tar"
    if not archive.exists():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        build_busybox_archive(busybox_rootfs, work)
    return archive


@pytest.fixture(params=["tomato-runtime", "runc"])
def runtime(request: pytest.FixtureRequest, workdir: Path) -> Runtime:
    """Every containerd test runs with tomato-runtime and with runc, so differences show."""
    if request.param == "runc":
        binary = shutil.which("runc")
        if binary is None:
            pytest.skip("runc is not installed: nothing to compare with (apt-get install runc)")
    else:
        binary = str(TOMATO_RUNTIME)
    return Runtime.wrapped(request.param, binary, workdir)


@pytest.fixture
def containerd(storage: Path, busybox_archive: Path) -> Iterator[Containerd]:
    # A short directory: containerd refuses unix socket paths over 104 bytes,
    # and the per-test workdir's name is the test's.
    base = Path(tempfile.mkdtemp(prefix="ctrd-", dir=storage))
    base.chmod(0o755)  # mkdtemp's 0700 would keep a user-namespaced root out of its rootfs
    ctrd = Containerd(base)
    try:
        ctrd.start()
        ctrd.import_image(busybox_archive)
        yield ctrd
    finally:
        ctrd.stop()
        shutil.rmtree(base, ignore_errors=True)
    if ctrd.forced:
        pytest.fail("containerd's teardown had to clean up: " + "; ".join(ctrd.forced[:5]))
