"""An engine root on the session tmpfs with a busybox image imported once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TOMATO = str(Path(sys.executable).parent / "tomato")


@dataclass
class Engine:
    root: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "TOMATO_ROOT": str(self.root)}

    def run(self, *args: str, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([TOMATO, *args], capture_output=True, text=True, timeout=timeout,
                              env=self.env(), input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"tomato {' '.join(args)} failed ({proc.returncode}): "
                                 f"{proc.stderr}")
        return proc

    def ids(self) -> list[str]:
        return self.run("ps", "-aq", "--no-trunc").stdout.split()


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
