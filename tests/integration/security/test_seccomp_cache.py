"""The runtime's cache of compiled seccomp programs (tomato.runtime.seccomp_cache):
the second container with a profile loads the first one's BPF, and that BPF is
enforced by the kernel exactly like a fresh compile."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from _security_child import run_in_child

from tomato._sys import seccomp
from tomato.oci.security_defaults import docker_default_seccomp
from tomato.runtime.seccomp_cache import CACHE_DIR, load_filter

GETCWD_ENOSYS = {"defaultAction": "SCMP_ACT_ALLOW",
                 "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}


def _cached(root: Path) -> list[Path]:
    return sorted((root / CACHE_DIR).glob("*.bpf"))


def test_the_first_compile_is_kept_and_the_second_loads_it(tmp_path: Path) -> None:
    first = load_filter(str(tmp_path), GETCWD_ENOSYS, [])
    files = _cached(tmp_path)
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert isinstance(first, seccomp.Program)
    stamp = files[0].stat().st_mtime_ns
    second = load_filter(str(tmp_path), GETCWD_ENOSYS, [])
    assert isinstance(second, seccomp.Program)
    assert files[0].stat().st_mtime_ns == stamp  # read, not written again

    def child() -> list[int]:
        before = 0 if os.getcwd() else -1
        import ctypes

        ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        second.load()
        try:
            os.getcwd()
        except OSError as err:
            return [before, err.errno or 0]
        return [before, 0]

    assert run_in_child(child).ok() == [0, errno.ENOSYS]


def test_a_different_profile_gets_its_own_program(tmp_path: Path) -> None:
    load_filter(str(tmp_path), GETCWD_ENOSYS, [])
    other: dict[str, Any] = {**GETCWD_ENOSYS, "syscalls": [
        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    load_filter(str(tmp_path), other, [])
    files = _cached(tmp_path)
    assert len(files) == 2
    assert files[0].read_bytes() != files[1].read_bytes()


def test_a_corrupt_cache_file_is_compiled_again(tmp_path: Path) -> None:
    load_filter(str(tmp_path), GETCWD_ENOSYS, [])
    (path,) = _cached(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    load_filter(str(tmp_path), GETCWD_ENOSYS, [])
    assert path.read_bytes() == good


def test_warnings_of_the_compile_are_given_again_on_a_hit(tmp_path: Path) -> None:
    unknown = [n for n in sorted(seccomp.NEWER_SYSCALLS) if seccomp.resolve_syscall(n) is None]
    if not unknown:
        pytest.skip("this libseccomp knows every syscall in NEWER_SYSCALLS: nothing warns")
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": unknown[:1], "action": "SCMP_ACT_ERRNO"}]}
    fresh: list[str] = []
    load_filter(str(tmp_path), profile, fresh)
    again: list[str] = []
    load_filter(str(tmp_path), profile, again)
    assert fresh and again == fresh


def test_an_unwritable_root_still_gives_a_filter(tmp_path: Path) -> None:
    blocker = tmp_path / "root"
    blocker.write_text("a file where the root directory should be")
    filt = load_filter(str(blocker), docker_default_seccomp(), [])
    assert isinstance(filt, seccomp.Program)
    assert not list(tmp_path.glob("**/*.tmp"))
