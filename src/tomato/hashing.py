"""sha256 for small data without hashlib's OpenSSL.

``hashlib`` loads OpenSSL (~3 ms) the first time it is imported; CPython's own
sha256 module loads in well under one, and for the small blobs every `run`
reads (a manifest, an image config, an id) it is as fast.  The module moved:
``_sha256`` up to Python 3.11, ``_sha2`` from 3.12.  Big data goes to
hashlib's, which is faster there (content.digest_bytes decides).
tests/unit/test_hashing.py checks that the fast path is taken on every
supported Python and gives hashlib's digests.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    from _sha2 import sha256 as _sha256  # Python >= 3.12
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # Python <= 3.11
    except ImportError:  # not CPython
        from hashlib import sha256 as _sha256


def sha256(data: bytes = b"") -> Any:
    """A sha256 hash object (``update``, ``digest``, ``hexdigest``) over ``data``."""
    return _sha256(data)


def sha256_hex(data: bytes) -> str:
    return str(_sha256(data).hexdigest())
