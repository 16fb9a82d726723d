"""monitor.json is a typed record both sides agree on (engine/monitor_config.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tomato.engine.monitor_config import MonitorConfig, exit_code, read, start_failure_code, write


def test_round_trip_and_refusals(tmp_path: Path) -> None:
    config = MonitorConfig(bundle="/b", runtime_root="/r", tty=True, restart="on-failure",
                           restart_max=3, event_attributes={"name": "x"})
    write(tmp_path, config)
    assert (tmp_path / "monitor.json").stat().st_mode & 0o777 == 0o600
    assert read(tmp_path) == config
    raw = json.loads((tmp_path / "monitor.json").read_text())
    (tmp_path / "monitor.json").write_text(json.dumps({**raw, "restrat": "always"}))
    with pytest.raises(ValueError, match="unknown settings \\['restrat'\\]"):
        read(tmp_path)
    (tmp_path / "monitor.json").write_text(json.dumps({"bundle": "/b"}))
    with pytest.raises(TypeError):
        read(tmp_path)  # runtime_root missing


def test_dockers_codes() -> None:
    assert start_failure_code('exec: "nope": executable file not found in $PATH') == 127
    assert start_failure_code("exec /x: permission denied") == 126
    assert start_failure_code("something else") == 128
    assert exit_code(3 << 8) == 3 and exit_code(9) == 137
