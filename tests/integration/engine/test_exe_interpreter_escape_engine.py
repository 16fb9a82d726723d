"""CVE-2019-5736 through the engine: `tomato run` and `tomato exec` of a program that is
"#!/proc/self/exe" never wake the container's LD_PRELOAD library inside a host binary
(the engine runs the runtime in its own processes, so its children's last execve goes
through tomato-dmz too; see tests/integration/runtime/test_exe_interpreter_escape.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.exe_probe import EVIL

from .conftest import Engine


@pytest.fixture(scope="module")
def glibc_image(engine_root: Path, busybox_rootfs: Path, storage: Path) -> Iterator[str]:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build the LD_PRELOAD library")
    rootfs = storage / f"dmz-{uuid.uuid4().hex[:8]}"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    # the loader and libc, and what the engine's own interpreter needs: without the dmz it
    # is that interpreter the kernel would wake inside the container (the test's proof)
    ldd = subprocess.run(["ldd", os.path.realpath(sys.executable)], capture_output=True,
                         text=True, check=True).stdout
    libs = {w for line in ldd.splitlines() for w in line.split() if w.startswith("/")}
    for lib in sorted(libs | {"/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"}):
        dest = rootfs / lib.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dest)
    source = rootfs.with_suffix(".c")
    source.write_text(EVIL)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(rootfs / "evil.so"), str(source)],
                   check=True)
    (rootfs / "evil").write_text("#!/proc/self/exe\n")
    os.chmod(rootfs / "evil", 0o755)
    tarball = rootfs.with_suffix(".tar")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    name = "dmz-probe:latest"
    Engine(engine_root).run("import", str(tarball), name)
    yield name
    Engine(engine_root).run("rmi", "-f", name, check=False)
    shutil.rmtree(rootfs)


def _report(engine: Engine, container: str) -> str:
    deadline = time.monotonic() + 3
    text = ""
    while time.monotonic() < deadline:
        proc = engine.run("exec", container, "cat", "/report", check=False)
        text = proc.stdout if proc.returncode == 0 else ""
        if "WRITABLE" in text or "not writable" in text:
            break
        time.sleep(0.1)
    return text


def _no_host_binary(text: str) -> None:
    assert "WRITABLE" not in text, text
    for line in text.splitlines():
        if line.startswith("exe "):
            assert line.startswith("exe /memfd:"), text


def test_engine_exec(engine: Engine, glibc_image: str) -> None:
    engine.run("run", "-d", "--name", "dmz-exec", glibc_image, "sleep", "60")
    engine.run("exec", "-e", "LD_PRELOAD=/evil.so", "dmz-exec", "/evil", check=False)
    _no_host_binary(_report(engine, "dmz-exec"))
    engine.run("rm", "-f", "dmz-exec")


def test_engine_run(engine: Engine, glibc_image: str, tmp_path: Path) -> None:
    engine.run("run", "--name", "dmz-run", "-e", "LD_PRELOAD=/evil.so", glibc_image, "/evil",
               check=False)
    got = tmp_path / "report"
    copied = engine.run("cp", "dmz-run:/report", str(got), check=False)
    _no_host_binary(got.read_text() if copied.returncode == 0 else "")
    engine.run("rm", "-f", "dmz-run")
