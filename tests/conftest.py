"""Shared fixtures: tmpfs storage, a busybox rootfs, OCI bundles, and a leak check.

Every test runs as root against the real kernel.  Storage lives on a tmpfs the
session mounts (file creation on this machine's ext4 costs ~0.5 ms a file).
The autouse ``no_leaks`` fixture fails any test that leaves a mount, a cgroup,
a containerised process or a runtime state directory behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import leaks  # noqa: E402
from helpers.rootfs import build_busybox_rootfs  # noqa: E402

VENV_BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="tomato's tests run as root against the real kernel")
        for item in items:
            if "integration" in str(item.fspath):
                item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    # Containers whose creator exits (create, run -d) are orphaned as they would
    # be under containerd's shim; make pytest their subreaper, as the shim is,
    # so they are reaped here and never left as zombies of the machine's init.
    if os.geteuid() == 0:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def reap_orphans() -> None:
    """Collect exited orphans; only called between tests, when no subprocess runs."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@pytest.fixture(scope="session")
def storage() -> Iterator[Path]:
    """A tmpfs mounted for the whole session; everything tests write goes here."""
    path = Path(tempfile.mkdtemp(prefix="tomato-test-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=755", "tomato-test", str(path)],
                   check=True)
    leaks.OWN_STORAGE = str(path)
    try:
        yield path
    finally:
        _remove_default_bridges(path)
        subprocess.run(["umount", "-l", str(path)], check=False)
        os.rmdir(path)


def _remove_default_bridges(storage: Path) -> None:
    """The engine roots' default bridges and nft tables stay after their containers,
    as Docker's docker0 does: the session removes its own (named after each root)."""
    from tomato.engine.networks import Networks

    for db in [*storage.glob("*/tomato.db"), *storage.glob("*/*/tomato.db")]:
        try:
            nets = Networks(db.parent)
        except Exception:  # noqa: BLE001 — best effort, at the very end
            continue
        subprocess.run(["ip", "link", "delete", nets.default_bridge], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", nets.table], capture_output=True)


@pytest.fixture(scope="session")
def busybox_rootfs(storage: Path) -> Path:
    """A pristine busybox rootfs (static busybox + applet links); copy it before writing."""
    return build_busybox_rootfs(storage / "busybox-rootfs")


@pytest.fixture
def workdir(storage: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh directory on the tmpfs for one test."""
    path = Path(tempfile.mkdtemp(prefix=request.node.name[:40] + "-", dir=storage))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def runtime_root(workdir: Path) -> Path:
    """A private --root for tomato-runtime (and runc), never the shared /run one."""
    root = workdir / "state"
    root.mkdir()
    return root


@pytest.fixture
def bundle(workdir: Path, busybox_rootfs: Path) -> Path:
    """An OCI bundle: a writable copy of busybox + the default config.json (args: sh)."""
    from tomato.oci.defaults import default_spec

    path = workdir / "bundle"
    path.mkdir()
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(path / "rootfs")], check=True)
    spec = default_spec()
    spec["process"]["terminal"] = False
    (path / "config.json").write_text(json.dumps(spec, indent=2))
    return path


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    if os.geteuid() != 0 or "integration" not in str(request.node.fspath):
        yield
        return
    # Session resources (the storage tmpfs) must exist before the first snapshot.
    request.getfixturevalue("storage")
    reap_orphans()
    before = leaks.snapshot()
    yield
    reap_orphans()
    left = leaks.difference(before, leaks.snapshot())
    for _ in range(200):  # bounded: up to ~10 s
        # A netns the engine let go of, and the veths in it, are destroyed by a
        # kernel worker a moment later (seconds on a loaded machine with IPv6
        # addresses to tear down): links alone are waited for.
        if not left.links or any((left.mounts, left.cgroups, left.processes, left.netns)):
            break
        time.sleep(0.05)
        left = leaks.difference(before, leaks.snapshot())
    if left:
        leaks.cleanup(left)
        pytest.fail("test left behind: " + "; ".join(left.describe()))
