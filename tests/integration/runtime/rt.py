"""Helpers to drive tomato-runtime as containerd would: as a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RUNTIME = str(Path(sys.executable).parent / "tomato-runtime")


def _detaches(args: tuple[str, ...]) -> bool:
    words = [a for a in args if not a.startswith("-")]  # skip global flags (--explain)
    return bool(words) and (words[0] == "create" or (words[0] in ("run", "exec") and
                                                      ("-d" in args or "--detach" in args)))


def runtime(root: Path, *args: str, check: bool = True, timeout: float = 30,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run tomato-runtime; for create and detached run/exec the container inherits
    the stdio, so it goes to files (a pipe would stay open as long as it lives)."""
    if _detaches(args) and "stdout" not in kwargs:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run([RUNTIME, "--root", str(root), *args], stdout=out,
                                  stderr=err, stdin=subprocess.DEVNULL, text=True,
                                  timeout=timeout, **kwargs)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read(), err.read()
    else:
        proc = subprocess.run([RUNTIME, "--root", str(root), *args], capture_output=True,
                              text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"tomato-runtime {' '.join(args)} failed ({proc.returncode}): "
                             f"{proc.stderr}")
    return proc


def config(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "config.json").read_text())


def write_config(bundle: Path, cfg: dict[str, Any]) -> None:
    (bundle / "config.json").write_text(json.dumps(cfg, indent=2))


def set_args(bundle: Path, *args: str) -> dict[str, Any]:
    cfg = config(bundle)
    cfg["process"]["args"] = list(args)
    write_config(bundle, cfg)
    return cfg


def state(root: Path, cid: str) -> dict[str, Any]:
    return json.loads(runtime(root, "state", cid).stdout)


def run_in(root: Path, bundle: Path, cid: str, *args: str, check: bool = True,
           extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Set the process args and `run` the container in the foreground."""
    if args:
        set_args(bundle, *args)
    return runtime(root, "run", "--bundle", str(bundle), *extra, cid, check=check)


def cleanup(root: Path) -> None:
    """Force-delete whatever a failing test left."""
    if not root.exists():
        return
    for cid in os.listdir(root):
        subprocess.run([RUNTIME, "--root", str(root), "delete", "--force", cid],
                       capture_output=True, timeout=30)
