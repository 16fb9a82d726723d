"""JSON for the runtime's start path, straight from CPython's C accelerator.

``import json`` pulls in ``re`` (and ``enum``...) and costs ~5 ms, a fifth of
what runc takes to run a whole container.  The C scanner and encoder in
``_json`` do the real work behind ``json`` anyway; this module calls them
directly with the settings ``json`` uses by default.

It is ``json.loads`` / ``json.dumps`` (no keyword arguments) for everything it
takes, held to that by tests/unit/test_fastjson.py on every supported Python:
the same text out, the same values in, and the same errors -- a document the
fast path cannot read (a syntax error, a byte order mark, UTF-16 bytes) is
handed to ``json`` itself, which raises (or answers) exactly as it would.  An
interpreter without ``_json``'s scanner and encoder gets ``json``'s functions.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"

try:
    from _json import encode_basestring_ascii as _ascii
    from _json import make_encoder as _make_encoder
    from _json import make_scanner as _make_scanner
    _FAST = True
except ImportError:  # not CPython: the standard library, whatever it costs
    _FAST = False


class _Context:
    """The attributes c_make_scanner reads from a JSONDecoder (json's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


def _json_loads(data: Any) -> Any:
    """json.loads itself: its value, or its very error."""
    import json

    return json.loads(data)


def _default(obj: Any) -> Any:
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


if _FAST:
    _scan = _make_scanner(_Context())  # type: ignore[arg-type]

    def loads(data: str | bytes | bytearray) -> Any:
        if type(data) is str:
            text = data
        elif isinstance(data, (bytes, bytearray)) and data[:1] not in (b"\xef", b"\xfe",
                                                                          b"\xff", b"\0") \
                and data[1:2] != b"\0":  # json.detect_encoding would not say UTF-8
            try:
                text = data.decode()
            except UnicodeDecodeError:
                return _json_loads(data)
        else:
            return _json_loads(data)
        n = len(text)
        i = 0
        while i < n and text[i] in _WS:
            i += 1
        try:
            value, end = _scan(text, i)
        except StopIteration:
            return _json_loads(text)  # "Expecting value: line 1 column 1 (char 0)"...
        except SystemError:
            # _json raises its errors through json.decoder's JSONDecodeError, found only
            # if json.decoder is already imported; else "returned NULL without setting an
            # exception".  json itself then raises the very error.
            return _json_loads(text)
        finally:
            _Context.memo.clear()
        while end < n and text[end] in _WS:
            end += 1
        if end != n:
            return _json_loads(text)  # "Extra data: ..."
        return value

    # An encoder per call, as json makes one: its first argument is check_circular's
    # record of the containers being encoded (a shared one would be another thread's).
    def dumps(obj: Any) -> str:
        return "".join(_make_encoder({}, _default, _ascii, None, ": ", ", ", False, False,
                                     True)(obj, 0))

    def dumps_canonical(obj: Any) -> str:
        """json.dumps(obj, sort_keys=True, separators=(",", ":")): one text per value."""
        return "".join(_make_encoder({}, _default, _ascii, None, ":", ",", True, False,
                                     True)(obj, 0))
else:
    def loads(data: str | bytes | bytearray) -> Any:
        return _json_loads(data)

    def dumps(obj: Any) -> str:
        import json

        return json.dumps(obj)

    def dumps_canonical(obj: Any) -> str:
        """json.dumps(obj, sort_keys=True, separators=(",", ":")): one text per value."""
        import json

        return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _key(key: Any) -> str:
    """A dict key as json writes it."""
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return dumps(key)
    if isinstance(key, int | float):
        return dumps(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {key.__class__.__name__}")


def dumps_pretty(obj: Any, indent: str = "  ", level: int = 0) -> str:
    """json.dumps(obj, indent=2) for dicts, lists and scalars."""
    pad = indent * (level + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{pad}{dumps(_key(k))}: {dumps_pretty(v, indent, level + 1)}"
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent * level + "}"
    if isinstance(obj, list | tuple) and obj:
        items = [pad + dumps_pretty(v, indent, level + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + indent * level + "]"
    return dumps(obj)
