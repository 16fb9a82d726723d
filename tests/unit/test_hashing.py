"""tomato.hashing: CPython's own sha256 on every supported Python, hashlib's digests."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from tomato import hashing

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("data", [b"", b"abc", bytes(range(256)) * 1000])
def test_digests_are_hashlibs(data: bytes) -> None:
    assert hashing.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    assert hashing.sha256_hex(data) == hashlib.sha256(data).hexdigest()
    h = hashing.sha256()
    h.update(data[:7])
    h.update(data[7:])
    assert h.digest() == hashlib.sha256(data).digest()


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="CPython's module")
def test_the_fast_path_is_taken_without_openssl() -> None:
    """The module moved in 3.12 (_sha256 -> _sha2): a silent fall back to hashlib would
    load OpenSSL on every `run` again."""
    code = (f"import sys; sys.path.insert(0, {str(SRC)!r}); from tomato import hashing; "
            "h = hashing.sha256(b'x'); "
            "print(type(h).__module__, '_hashlib' in sys.modules, 'hashlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] in ("_sha256", "_sha2"), out
    assert out[1:] == ["False", "False"], out
