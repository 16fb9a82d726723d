"""`tomato run` is on the start budget (DESIGN.md): without the fork server, the CLI
imports no typing, no dataclasses and no inspect -- on every network mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TOMATO, Engine

BIN = Path(TOMATO).parent


def _launcher() -> Path:
    for name in ("tomato-launcher", "tomato"):
        path = BIN / name
        if path.exists() and path.read_bytes()[:2] == b"#!":
            return path
    raise AssertionError("no Python launcher beside the tomato binary")


@pytest.mark.parametrize("network", ["none", "bridge"])
def test_run_imports_no_typing_or_dataclasses(engine: Engine, network: str) -> None:
    proc = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", str(_launcher()),
                           "run", "--rm", "--network", network, "busybox", "true"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**engine.env(), "TOMATO_NO_FORKSERVER": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "tomato.engine.create" in imported  # (the measure saw the command's imports)
    assert not imported & {"typing", "dataclasses", "inspect"}, sorted(
        imported & {"typing", "dataclasses", "inspect"})

