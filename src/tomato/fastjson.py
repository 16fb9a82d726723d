"""JSON for the runtime's start path, straight from CPython's C accelerator.

``import json`` pulls in ``re`` (and ``enum``...) and costs ~5 ms, a fifth of
what runc takes to run a whole container.  The C scanner and encoder in
``_json`` do the real work behind ``json`` anyway; this module calls them
directly with the same settings ``json`` uses by default.  Output and
errors match ``json.loads``/``json.dumps`` (no indent) for the documents the
runtime reads and writes.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


class JSONDecodeError(ValueError):
    pass


class _Context:
    """The attributes c_make_scanner reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]


def loads(data: str | bytes) -> Any:
    text = data.decode() if isinstance(data, bytes | bytearray) else data
    n = len(text)
    i = 0
    while i < n and text[i] in _WS:
        i += 1
    try:
        value, end = _scan(text, i)
    except StopIteration as err:
        raise JSONDecodeError(f"expecting value at char {err.value}") from None
    finally:
        _Context.memo.clear()
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        raise JSONDecodeError(f"extra data at char {end}")
    return value


def _default(obj: Any) -> Any:
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ": ", ", ",
                             False, False, True)


def dumps(obj: Any) -> str:
    return "".join(_encode(obj, 0))


_canonical = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ":", ",",
                                True, False, True)


def dumps_canonical(obj: Any) -> str:
    """json.dumps(obj, sort_keys=True, separators=(",", ":")): one text per value."""
    return "".join(_canonical(obj, 0))


def dumps_pretty(obj: Any, indent: str = "  ", level: int = 0) -> str:
    """json.dumps(obj, indent=2) for dicts, lists and scalars."""
    pad = indent * (level + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{pad}{dumps(str(k))}: {dumps_pretty(v, indent, level + 1)}"
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent * level + "}"
    if isinstance(obj, list | tuple) and obj:
        items = [pad + dumps_pretty(v, indent, level + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + indent * level + "]"
    return dumps(obj)
