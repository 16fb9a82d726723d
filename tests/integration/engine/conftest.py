"""An engine root on the session tmpfs with a busybox image imported once."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.engine import TOMATO, Engine, until  # noqa: F401 — the test modules import them from here


@pytest.fixture(scope="session")
def engine_root(storage: Path, busybox_rootfs: Path) -> Path:
    root = storage / "engine"
    tarball = storage / "busybox.tar"
    subprocess.run(["tar", "-C", str(busybox_rootfs), "-cf", str(tarball), "."], check=True)
    env = {**os.environ, "TOMATO_ROOT": str(root)}
    subprocess.run([TOMATO, "import", str(tarball), "busybox:latest"], check=True, env=env,
                   capture_output=True)
    return root


@pytest.fixture
def engine(engine_root: Path) -> Iterator[Engine]:
    eng = Engine(engine_root)
    yield eng
    for cid in eng.ids():
        eng.run("rm", "-f", "-v", cid, check=False)
