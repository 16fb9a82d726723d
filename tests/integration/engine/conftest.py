"""An engine root on the session tmpfs with a busybox image imported once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.engine import TOMATO, Engine, engine_root_with_busybox, until  # noqa: F401


@pytest.fixture(scope="session")
def engine_root(storage: Path, busybox_rootfs: Path) -> Path:
    return engine_root_with_busybox(storage / "engine", busybox_rootfs)


@pytest.fixture
def engine(engine_root: Path) -> Iterator[Engine]:
    eng = Engine(engine_root)
    yield eng
    for cid in eng.ids():
        eng.run("rm", "-f", "-v", cid, check=False)
