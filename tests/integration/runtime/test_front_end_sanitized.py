"""tomato-runtime-front built with AddressSanitizer and UBSan, fed hostile state files
and a whole lifecycle: any out-of-bounds access or undefined behaviour fails the test.

The sanitized front end runs from a copy of the install (its launcher, python3 and
site-packages linked from the real one) in the test's own directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .rt import RUNTIME
from .rt_extra import edit
from .test_front_end import HOSTILE, C, _valid_state, _write_state

SOURCES = sorted((Path(__file__).resolve().parents[3] / "src/tomato/runtime/front").glob("*.c"))
SANITIZERS = "-fsanitize=address,undefined"
ENV = {"ASAN_OPTIONS": "detect_leaks=0:exitcode=99",  # a short-lived CLI frees nothing
       "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=99"}


@pytest.fixture(scope="module")
def sanitized(storage: Path) -> Iterator[Path]:
    """A tomato-runtime whose interpreter is the sanitized front end."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    prefix = Path(tempfile.mkdtemp(prefix="sanitized-front-", dir=storage))
    (prefix / "bin").mkdir()
    front = prefix / "bin" / "tomato-runtime-front"
    built = subprocess.run(["cc", "-O1", "-g", SANITIZERS, "-o", str(front),
                            *map(str, SOURCES)], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"cannot build with {SANITIZERS}: {built.stderr.strip()[-200:]}")
    real = Path(RUNTIME).parent
    (prefix / "bin" / "python3").symlink_to(real / "python3")
    (prefix / "lib").symlink_to(real.parent / "lib")
    launcher = prefix / "bin" / "tomato-runtime"
    lines = Path(RUNTIME).read_text().splitlines(keepends=True)
    launcher.write_text(f"#!{front}\n" + "".join(lines[1:]))
    launcher.chmod(0o755)
    yield launcher
    shutil.rmtree(prefix, ignore_errors=True)


def _call(launcher: Path, root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    # Files, not pipes: a created container inherits them and would keep a pipe open.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([str(launcher), "--root", str(root), *args], stdout=out,
                              stderr=err, stdin=subprocess.DEVNULL, env={**os.environ, **ENV},
                              timeout=60)
        out.seek(0)
        err.seek(0)
        proc.stdout, proc.stderr = out.read(), err.read()
    assert b"Sanitizer" not in proc.stderr and b"runtime error" not in proc.stderr, \
        proc.stderr.decode(errors="replace")
    assert proc.returncode != 99, proc.stderr
    return proc


def test_a_lifecycle_through_the_sanitized_front_end(sanitized: Path, root: Path,
                                                     bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].update(args=["sh", "-c", "sleep 60 & sleep 60"]))
    assert _call(sanitized, root, "create", "--bundle", str(bundle), C).returncode == 0
    for argv in (["state", C], ["list"], ["list", "-f", "json"], ["start", C],
                 ["exec", C, "sh", "-c", "exit 3"], ["exec", "-e", "A=b", "--cwd", "/tmp", "-u",
                                                     "1000:1000", C, "/nonexistent"],
                 ["exec", "--cap", "CAP_KILL", C, "true"], ["pause", C],
                 ["state", C], ["resume", C], ["kill", C, "0"], ["kill", "--all", C, "TERM"],
                 ["kill", "-a", C, "KILL"], ["delete", "--force", C], ["state", C],
                 ["delete", "-f", C], ["kill", C, "BOGUS"], ["--debug", "--log-format=json",
                                                            "state", "a/b"]):
        _call(sanitized, root, *argv)
    assert not (root / C).exists()


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_state_files_through_the_sanitized_front_end(sanitized: Path, root: Path,
                                                             bundle: Path, name: str) -> None:
    good = _valid_state(root, bundle)
    for argv in (["state", C], ["start", C], ["kill", "--all", C, "9"], ["pause", C],
                 ["list"], ["list", "-f", "json"], ["delete", "--force", C]):
        _write_state(root, HOSTILE[name], good)
        _call(sanitized, root, *argv)


def test_exec_through_the_sanitized_front_end(sanitized: Path, root: Path, bundle: Path,
                                              workdir: Path) -> None:
    """exec (front/exec.c) fed every hostile process file, and its ordinary cases."""
    from .test_front_exec import HOSTILE_PROCESSES

    edit(bundle, lambda cfg: cfg["process"].update(args=["sleep", "60"]))
    assert _call(sanitized, root, "run", "-d", "--bundle", str(bundle), C).returncode == 0
    try:
        spec = workdir / "process.json"
        for content in HOSTILE_PROCESSES.values():
            spec.write_bytes(content)
            _call(sanitized, root, "exec", "--process", str(spec), C)
        for argv in (["exec", "-e", "A=b", "-e", "A=c", C, "sh", "-c", "echo $A"],
                     ["exec", "--cap", "kill", "--no-new-privs", C, "true"],
                     ["exec", C, "/bin"], ["exec", C, "nosuch"]):
            _call(sanitized, root, *argv)
    finally:
        _call(sanitized, root, "delete", "--force", C)


def test_create_checks_through_the_sanitized_front_end(sanitized: Path, root: Path,
                                                       bundle: Path, workdir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """create_check.c over every config of test_front_create (ordinary, Python's and
    hostile), under FRONT_ONLY: each handed over with its reason, nothing made."""
    from .test_front_create import HOSTILE as CONFIGS
    from .test_front_create import ORDINARY_CASES, PYTHONS_CASES, _flags, _write

    monkeypatch.setenv("TOMATO_RUNTIME_FRONT_ONLY", "1")
    cases = [(change, flags) for change, flags in ORDINARY_CASES.values()] + \
        [(change, flags) for change, flags, _member in PYTHONS_CASES.values()]
    for n, (change, flags) in enumerate(cases):
        tmp = workdir / f"spec{n}"
        tmp.mkdir()
        try:
            _write(bundle, change, tmp)
        except pytest.skip.Exception:
            continue
        for verb in (["create"], ["run", "-d"]):
            proc = _call(sanitized, root, *verb, "--bundle", str(bundle),
                         *_flags(flags, workdir), C)
            assert proc.returncode == 3 and b"handed over" in proc.stderr, proc.stderr
    for text in CONFIGS.values():
        (bundle / "config.json").write_bytes(text)
        proc = _call(sanitized, root, "create", "--bundle", str(bundle), C)
        assert proc.returncode == 3 and b"handed over" in proc.stderr, proc.stderr
    assert not any(root.iterdir())
