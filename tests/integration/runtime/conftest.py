from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .rt import cleanup


@pytest.fixture
def root(runtime_root: Path) -> Iterator[Path]:
    yield runtime_root
    cleanup(runtime_root)
