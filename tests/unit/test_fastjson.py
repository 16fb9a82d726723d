"""tomato.fastjson is json.loads / json.dumps for what it takes: the same text out,
the same values in, the same errors (on every Python scripts/test.sh runs)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tomato import fastjson

SRC = Path(__file__).resolve().parents[2] / "src"

DOCUMENTS: list[Any] = [
    {}, [], "", 0, -1, 1.5, 1e300, -0.0, True, False, None,
    {"ociVersion": "1.0.2", "process": {"args": ["sh", "-c", "echo hi"], "env": ["A=1"],
                                        "user": {"uid": 0, "gid": 0}},
     "annotations": {"é": "ü\u2028\x00\x1f", "emoji": "\U0001f345"}},
    [1, [2, [3, [4]]], {"a": {"b": {}}}],
    {"z": 1, "a": 2, "m": [None, True]},
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    ("a", "tuple"),
    10 ** 30,
]


def _outcome(call: Any) -> tuple[str, str]:
    try:
        return "value", call()
    except Exception as err:  # noqa: BLE001 — compared
        return type(err).__name__, str(err)


@pytest.mark.parametrize("doc", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_dumps_writes_what_json_writes(doc: Any) -> None:
    assert fastjson.dumps(doc) == json.dumps(doc)
    assert _outcome(lambda: fastjson.dumps_canonical(doc)) == _outcome(
        lambda: json.dumps(doc, sort_keys=True, separators=(",", ":")))
    assert fastjson.dumps_pretty(doc) == json.dumps(doc, indent=2)


@pytest.mark.parametrize("doc", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_loads_reads_what_json_reads(doc: Any) -> None:
    for text in (json.dumps(doc), json.dumps(doc, indent=4), f" \n\t{json.dumps(doc)}\r\n "):
        assert fastjson.loads(text) == json.loads(text)
        assert fastjson.loads(text.encode()) == json.loads(text.encode())


def test_special_numbers_as_json() -> None:
    assert fastjson.dumps([math.inf, -math.inf, math.nan]) == "[Infinity, -Infinity, NaN]"
    got = fastjson.loads("[NaN, Infinity, -Infinity, 1E400]")
    assert math.isnan(got[0]) and got[1:] == [math.inf, -math.inf, math.inf]


BAD = ["", "  ", "[1,", '{"a" 1}', "[1] x", '"\\x"', "{'a': 1}", "[1,]", "nul", '"\x01"',
       "\ufeff[]", "0123"]


@pytest.mark.parametrize("text", BAD, ids=range(len(BAD)))
def test_errors_are_jsons(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(text)
    with pytest.raises(ValueError) as got:
        fastjson.loads(text)
    assert type(got.value) is type(want.value)
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize("data", ['{"a": 1}'.encode("utf-16"), '[1]'.encode("utf-32-le"),
                                  b"\xef\xbb\xbf[2]", bytearray(b"[3]"), b"\xff\xfe"],
                         ids=["utf-16", "utf-32", "utf-8-bom", "bytearray", "bad-bytes"])
def test_bytes_as_json_takes_them(data: bytes) -> None:
    try:
        want: Any = json.loads(data)
    except ValueError as err:
        with pytest.raises(type(err)) as got:
            fastjson.loads(data)
        assert str(got.value) == str(err)
    else:
        assert fastjson.loads(data) == want


def test_what_json_refuses_it_refuses() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        fastjson.dumps({"a": object()})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        fastjson.dumps(loop)
    assert fastjson.dumps([[], []]) == "[[], []]"  # (after the error: nothing left marked)
    with pytest.raises(TypeError):
        fastjson.loads(12)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fastjson.dumps({(1, 2): "tuple key"})


def test_the_fast_path_imports_no_json_or_re() -> None:
    code = (f"import sys; sys.path.insert(0, {str(SRC)!r}); from tomato import fastjson; "
            "fastjson.loads(fastjson.dumps({'a': [1, 2.5, None]})); "
            "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


def test_scanner_errors_without_json_imported_are_jsons() -> None:
    """In a fresh interpreter (the runtime's start path: -I -S, json never imported),
    _json's scanner cannot find JSONDecodeError and raised SystemError ("returned NULL
    without setting an exception"): a control character or a bad escape in config.json
    was a traceback."""
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from tomato import fastjson\n"
            "for bad in ['{\"a\": \"x\\x01\"}', '{\"a\": \"\\\\q\"}']:\n"
            "    try:\n        fastjson.loads(bad)\n"
            "    except ValueError as err:\n        print(type(err).__name__)\n")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(src)],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["JSONDecodeError", "JSONDecodeError"], out.stderr
