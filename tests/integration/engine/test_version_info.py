"""`tomato --version`, `tomato version` and `tomato info` say which fast paths are
active: the C client and the CLI's fork server, the monitors' shim, the runtime's
C front, byte-compiled sources."""

from __future__ import annotations

import subprocess

from .conftest import TOMATO, Engine


def _run(engine: Engine, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([TOMATO, *args], capture_output=True, text=True, timeout=60,
                          env={**engine.env(), **env})
    assert proc.returncode == 0, proc.stderr
    return proc


def test_version_flag_is_one_line_with_the_fast_paths(engine: Engine) -> None:
    for flag in ("--version", "-v"):
        out = _run(engine, flag).stdout
        assert out.startswith("Tomato version ") and out.count("\n") == 1
        assert "fork server" in out and "shim" in out and "runtime front" in out
    assert "fork server off" in _run(engine, "--version", TOMATO_NO_FORKSERVER="1").stdout


def test_version_and_info_name_each_path(engine: Engine) -> None:
    version = _run(engine, "version").stdout
    for key in ("Launcher:", "Fork server:", "Monitor shim:", "Runtime front:", "Bytecode:"):
        assert key in version, version
    assert f"Root:          {engine.root}" in version
    off = _run(engine, "version", TOMATO_NO_SHIM="1", TOMATO_NO_FORKSERVER="1").stdout
    assert "off (TOMATO_NO_FORKSERVER is set)" in off
    assert "tomato-shim (off: TOMATO_NO_SHIM is set)" in off or "Monitor shim:  none" in off
    info = _run(engine, "info").stdout
    assert " Fast paths:\n" in info and "  Fork server: " in info and "Images: " in info
