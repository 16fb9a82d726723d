"""Issue 13, item 13: `-v /host/file:/dest` binds a file (it failed with "File exists"
while `--mount type=bind` worked); a missing source is made as a directory, as
Docker's -v does."""

from __future__ import annotations

from pathlib import Path

from .conftest import Engine


def test_a_file_bind_mount(engine: Engine, tmp_path: Path) -> None:
    host = tmp_path / "greeting"
    host.write_text("hello\n")
    out = engine.run("run", "--rm", "--network", "none", "-v", f"{host}:/etc/greeting",
                     "busybox", "sh", "-c", "cat /etc/greeting; echo bye >> /etc/greeting")
    assert out.stdout == "hello\n"
    assert host.read_text() == "hello\nbye\n"  # the same file, not a copy
    ro = engine.run("run", "--rm", "--network", "none", "-v",
                    f"{host}:/new/dir/greeting:ro", "busybox", "sh", "-c",
                    "cat /new/dir/greeting; echo x > /new/dir/greeting", check=False)
    assert ro.stdout == "hello\nbye\n" and ro.returncode != 0
    assert "Read-only file system" in ro.stderr
    assert host.read_text() == "hello\nbye\n"


def test_a_missing_source_is_made_a_directory(engine: Engine, tmp_path: Path) -> None:
    missing = tmp_path / "made" / "here"
    engine.run("run", "--rm", "--network", "none", "-v", f"{missing}:/data", "busybox",
               "sh", "-c", "echo in > /data/f")
    assert missing.is_dir() and (missing / "f").read_text() == "in\n"
