"""CVE-2019-5736 itself: a container program that is "#!/proc/self/exe" (or
/proc/self/exe) has the kernel run, inside the container, whatever binary the process
was just before its execve -- with the container's loader and LD_PRELOAD.  Were that
the runtime's own binary (the front end, or Python), the container's code would hold
an fd of a host file it can write once the runtime is gone.  The runtime's last step
is tomato-dmz run from a sealed memfd (runtime/dmz/tomato-dmz.c), static: what the
kernel runs is the sealed copy, and nothing of the container's runs inside it.

The container gets the host's glibc loader and an LD_PRELOAD library whose constructor
reports the binary it woke up in (/proc/self/exe) and whether a child of it could still
write that file after the runtime exits; it never writes.  Through exec (the front
end's C path and Python's), run (create's init) and /proc/self/exe exec'd directly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.exe_probe import EVIL

from .rt import runtime
from .rt_extra import cid, delete_reaping, edit, run_detached

C1 = cid("dmz")
PATHS = {"front": {"TOMATO_RUNTIME_FRONT_ONLY": "1"}, "python": {"TOMATO_RUNTIME_PYTHON": "1"}}



@pytest.fixture
def glibc_bundle(bundle: Path, workdir: Path) -> Path:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build the LD_PRELOAD library")
    rootfs = bundle / "rootfs"
    # the loader and libc, and what the runtime's interpreter needs: without the dmz it
    # is that interpreter (or the front end) the kernel would wake inside the container
    from .rt import RUNTIME

    ldd = subprocess.run(["ldd", os.path.realpath(Path(RUNTIME).parent / "python3")],
                         capture_output=True, text=True, check=True).stdout
    libs = {w for line in ldd.splitlines() for w in line.split() if w.startswith("/")}
    for lib in sorted(libs | {"/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"}):
        if not os.path.exists(lib):
            pytest.skip(f"{lib} is not on this host: the loader the attack needs")
        dest = rootfs / lib.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dest)
    source = workdir / "evil.c"
    source.write_text(EVIL)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(rootfs / "evil.so"), str(source)],
                   check=True)
    script = rootfs / "evil"
    script.write_text("#!/proc/self/exe\n")
    script.chmod(0o755)

    def writable_root(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = False
    edit(bundle, writable_root)
    return bundle


def _report(bundle: Path) -> str:
    """What the library said, once its child had its second to look (or nothing)."""
    report = bundle / "rootfs" / "report"
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        text = report.read_text() if report.exists() else ""
        if "WRITABLE" in text or "not writable" in text:
            return text
        time.sleep(0.1)
    return report.read_text() if report.exists() else ""


def _no_host_binary(text: str) -> None:
    assert "WRITABLE" not in text, text
    for line in text.splitlines():  # if it ran at all, only inside a sealed copy
        if line.startswith("exe "):
            assert line.startswith("exe /memfd:"), text


@pytest.mark.parametrize("program", ["/evil", "/proc/self/exe"])
@pytest.mark.parametrize("path", ["front", "python"])
def test_exec_never_runs_container_code_in_a_host_binary(root: Path, glibc_bundle: Path,
                                                          path: str, program: str) -> None:
    run_detached(root, glibc_bundle, C1, "sleep", "60")
    try:
        env = {**os.environ, **PATHS[path]}
        proc = runtime(root, "exec", "-e", "LD_PRELOAD=/evil.so", C1, program, check=False,
                       env=env)
        assert proc.returncode != 3, proc.stderr  # the front end's own case, not handed over
        _no_host_binary(_report(glibc_bundle))
    finally:
        delete_reaping(root, C1, [])


@pytest.mark.parametrize("program", ["/evil", "/proc/self/exe"])
def test_run_never_runs_container_code_in_a_host_binary(root: Path, glibc_bundle: Path,
                                                         program: str) -> None:
    def attack(cfg: dict[str, Any]) -> None:
        cfg["process"]["args"] = [program]
        cfg["process"]["env"].append("LD_PRELOAD=/evil.so")
    edit(glibc_bundle, attack)
    try:
        runtime(root, "run", "--bundle", str(glibc_bundle), C1, check=False)
        _no_host_binary(_report(glibc_bundle))
    finally:
        delete_reaping(root, C1, [])


def test_the_attack_works_without_the_dmz(root: Path, glibc_bundle: Path,
                                          tmp_path: Path) -> None:
    """The test's own proof: through a runtime that execs the program itself (a copy of
    the install without tomato-dmz), the library wakes up in the host's binary."""
    import tomato

    from .rt import RUNTIME

    bin_dir = Path(RUNTIME).parent
    bare = tmp_path / "prefix"  # bin/ (the launcher, the interpreter), no tomato-dmz
    (bare / "bin").mkdir(parents=True)
    shutil.copy2(bin_dir / "tomato-runtime", bare / "bin" / "tomato-runtime")
    (bare / "bin" / "python3").symlink_to(os.path.realpath(bin_dir / "python3"))
    site = bare / "lib" / "python{}.{}".format(*sys.version_info[:2]) / "site-packages"
    site.mkdir(parents=True)
    src = tmp_path / "src"  # the sources without the copy install.sh leaves beside dmz/'s
    shutil.copytree(Path(tomato.__file__).parent, src / "tomato",
                    ignore=shutil.ignore_patterns("__pycache__", "tomato-dmz"))
    (site / "tomato.pth").write_text(f"{src}\n")
    run_detached(root, glibc_bundle, C1, "sleep", "60")
    try:
        env = {**os.environ, **PATHS["python"]}
        proc = subprocess.run([str(bare / "bin" / "python3"), "-I", "-S",
                               str(bare / "bin" / "tomato-runtime"),
                               "--root", str(root), "exec", "-e", "LD_PRELOAD=/evil.so", C1,
                               "/evil"], env=env, capture_output=True, text=True, timeout=30)
        assert "tomato-dmz is not installed" in proc.stderr, proc.stderr
        text = _report(glibc_bundle)
        assert "exe /" in text and "exe /memfd:" not in text, (text, proc.stderr)
        assert "WRITABLE" in text, text  # the host's interpreter, from inside
    finally:
        delete_reaping(root, C1, [])
