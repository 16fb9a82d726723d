"""Issue 13, item 3: a container's config and environment are not readable by other
users -- not the records (tomato.db and its -wal), not the bundle's config.json, not
the runtime's state, and the engine root itself is closed to them (0710, as Docker's)."""

from __future__ import annotations

import os
import stat
import subprocess
import uuid
from pathlib import Path

from .conftest import Engine


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # containers' own filesystems are theirs, not the engine's state
        dirnames[:] = [d for d in dirnames if not os.path.ismount(os.path.join(dirpath, d))
                       and d not in ("rootfs", "fs")]
        for name in filenames:
            path = Path(dirpath, name)
            try:
                if path.is_file() and needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


def test_secrets_in_the_state_are_private(engine: Engine) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    cid = engine.run("run", "-d", "--network", "none", "-e", f"DB_PASSWORD={secret}",
                     "busybox", "sleep", "60").stdout.strip()
    try:
        assert stat.S_IMODE(engine.root.stat().st_mode) == 0o710
        holding = _files_holding(engine.root, secret.encode())
        names = {p.name for p in holding}
        assert "config.json" in names and "tomato.db" in names, holding
        for path in holding:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
        # ...and another user cannot get at any of it
        for path in holding:
            seen = subprocess.run(
                ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c",
                 "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read())",
                 str(path)], capture_output=True, timeout=30)
            assert seen.returncode != 0 and secret.encode() not in seen.stdout, path
    finally:
        engine.run("rm", "-f", cid)


def test_an_older_roots_open_modes_are_closed(engine: Engine) -> None:
    """A root left 0755 with 0644 files (as earlier versions made them, at schema 3) is
    closed by the next command's migration."""
    import sqlite3

    cid = engine.run("create", "--network", "none", "-e", "K=v", "busybox",
                     "true").stdout.strip()
    config = engine.root / "containers" / cid / "bundle" / "config.json"
    os.chmod(engine.root, 0o755)
    os.chmod(config, 0o644)
    db = sqlite3.connect(engine.root / "tomato.db")
    # a schema-3 root: the version, and none of the columns later steps add
    for table, column in (("networks", "subnet6"), ("networks", "gateway6"),
                          ("endpoints", "ip6"), ("ports", "container_ip6")):
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    os.chmod(engine.root / "tomato.db", 0o644)
    try:
        engine.run("ps")
        assert stat.S_IMODE(engine.root.stat().st_mode) == 0o710
        assert stat.S_IMODE((engine.root / "tomato.db").stat().st_mode) == 0o600
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
    finally:
        engine.run("rm", cid)


def test_a_directory_of_the_users_is_never_chmoded(tmp_path: Path) -> None:
    """Only a tomato root is closed to others: `--root` naming an existing directory of
    the user's (or `/`, which an empty TOMATO_ROOT with a cwd of / once reached) keeps
    its mode; a new root is made 0710."""
    from .conftest import TOMATO

    mine = tmp_path / "shared"
    mine.mkdir(mode=0o755)
    os.chmod(mine, 0o755)
    done = subprocess.run([TOMATO, "--root", str(mine), "ps"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "TOMATO_NO_FORKSERVER": "1"})
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(mine.stat().st_mode) == 0o755
    new = tmp_path / "new-root"
    subprocess.run([TOMATO, "--root", str(new), "ps"], check=True, capture_output=True,
                   timeout=60, env={**os.environ, "TOMATO_NO_FORKSERVER": "1"})
    assert stat.S_IMODE(new.stat().st_mode) == 0o710
    before = stat.S_IMODE(os.stat("/").st_mode)
    refused = subprocess.run([TOMATO, "--root", "/", "ps"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "TOMATO_NO_FORKSERVER": "1"})
    assert refused.returncode != 0 and "cannot be /" in refused.stderr, refused.stderr
    assert stat.S_IMODE(os.stat("/").st_mode) == before
    assert not os.path.exists("/tomato.db")
