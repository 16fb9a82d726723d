"""runc (Debian's runc 1.1) beside tomato-runtime: the reference for runc's observable
behaviours.  Always with a private --root, never the shared /run/runc."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

RUNC = shutil.which("runc")

needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt-get install runc)")


def runc(root: Path, *args: str, check: bool = True, timeout: float = 30,
         **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run runc as rt.runtime runs tomato-runtime (stdio to files for create and -d)."""
    assert RUNC is not None
    words = [a for a in args if not a.startswith("-")]
    detaches = bool(words) and (words[0] == "create" or (
        words[0] in ("run", "exec") and ("-d" in args or "--detach" in args)))
    if detaches and "stdout" not in kwargs:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run([RUNC, "--root", str(root), *args], stdout=out, stderr=err,
                                  stdin=subprocess.DEVNULL, text=True, timeout=timeout,
                                  **kwargs)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read(), err.read()
    else:
        proc = subprocess.run([RUNC, "--root", str(root), *args], capture_output=True,
                              text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"runc {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def runc_cleanup(root: Path) -> None:
    if not root.exists():
        return
    for cid in [p.name for p in root.iterdir() if p.is_dir()]:
        subprocess.run([RUNC or "runc", "--root", str(root), "delete", "--force", cid],
                       capture_output=True, timeout=30)


@pytest.fixture
def runc_root(workdir: Path) -> Iterator[Path]:
    path = workdir / "runc-state"
    path.mkdir()
    yield path
    runc_cleanup(path)


__all__ = ["RUNC", "needs_runc", "runc", "runc_cleanup", "runc_root"]
