"""`pip install .` gives what scripts/install.sh gives: the C programs built by the
package's own build step (setup.py), `tomato` the client itself with the Python
launcher beside it, byte-compiled sources -- and a `tomato run --rm` that takes
the fast path (the fork server) from the second command on.

Offline: the source tree is copied (pip builds in the tree it is given) and
installed with --no-index --no-build-isolation into a venv that sees this venv's
packages (setuptools, isal, zstandard) through a .pth line.  The dev extra brings
a setuptools new enough to build wheels itself (>= 70.1); with an older one the
test is skipped saying so (scripts/install.sh brings it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers.engine import engine_root_with_busybox

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def _copy_tree(dest: Path) -> None:
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file() and not name.startswith(("tests/", "docs/", "bench/")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _setuptools_builds_wheels() -> bool:
    from importlib.metadata import version

    major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    return (major, minor) >= (70, 1)


def test_pip_install_gives_the_fast_paths(workdir: Path, busybox_rootfs: Path) -> None:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler: the build step leaves the fast paths off")
    if not _setuptools_builds_wheels():
        pytest.skip("this venv's setuptools is older than 70.1 (scripts/install.sh: dev extra)")
    tree = workdir / "src-tree"
    _copy_tree(tree)
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    ours = sysconfig.get_paths()["purelib"]  # this venv's setuptools, isal, zstandard
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "zz-test-deps.pth").write_text(ours + "\n")
    # ensurepip's own setuptools (3.11: 65.5, no bdist_wheel) would shadow ours
    subprocess.run([str(venv / "bin" / "pip"), "uninstall", "-y", "-q", "setuptools"],
                   capture_output=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index",
                          "--no-build-isolation", str(tree)], capture_output=True, text=True,
                         timeout=300)
    assert pip.returncode == 0, pip.stderr[-2000:]
    bin_dir = venv / "bin"
    for name in ("tomato-shim", "tomato-client", "tomato-runtime-front", "tomato"):
        assert (bin_dir / name).read_bytes()[:4] == b"\x7fELF", name
    assert (bin_dir / "tomato-launcher").read_text().startswith("#!/bin/sh")
    compiled = list(site.glob("tomato/engine/__pycache__/service.*.pyc"))
    assert compiled, "pip byte-compiles the sources"

    root = engine_root_with_busybox(workdir / "root", busybox_rootfs)
    env = {**os.environ, "TOMATO_ROOT": str(root)}
    tomato = str(bin_dir / "tomato")
    try:
        version = subprocess.run([tomato, "version"], capture_output=True, text=True, env=env,
                                 check=True).stdout
        assert f"Launcher:      {tomato} (the C client itself)" in version
        assert f"Monitor shim:  {bin_dir}/tomato-shim" in version
        for _ in range(2):  # the first leaves a fork server, the second is served by it
            run = subprocess.run([tomato, "run", "--rm", "--network", "none", "busybox",
                                  "echo", "installed"], capture_output=True, text=True,
                                 env=env, timeout=60, stdin=subprocess.DEVNULL)
            assert (run.returncode, run.stdout) == (0, "installed\n"), run.stderr
        served = subprocess.run([tomato, "version"], capture_output=True, text=True, env=env,
                                check=True).stdout
        assert "this command was served by it" in served
    finally:
        from tomato.cli import forkserver

        pid = forkserver.server_pid(str(root))
        if pid:
            os.kill(pid, 15)
