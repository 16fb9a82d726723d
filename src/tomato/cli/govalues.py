"""Go's values inside templates: how fmt prints them (``%v``, printf's verbs), what is
true, and the functions a docker ``--format`` may call (Go's builtins and docker/cli's
``templates.basicFunctions``).  The language itself is cli/gotemplate.py."""

from __future__ import annotations

import json
import re

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class _Missing:
    """Go's invalid reflect.Value: what a missing map key yields."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


class _Nil:
    """A typed context's nil pointer (ps's Platform): prints ``<nil>``, json ``null``."""

    def __repr__(self) -> str:
        return "<nil>"


NIL: Any = _Nil()


class StrictFields(dict):  # type: ignore[type-arg]
    """A row of a command's output (ps, images...): docker formats a typed context, so
    an unknown field is an error there, not ``<no value>``."""

    type_name = "context"


class GoStruct(dict):  # type: ignore[type-arg]
    """A Go struct inside a context (events.Message's Actor): fmt prints ``{v1 v2}``."""


# -- printing, as Go's fmt %v does ------------------------------------------------------
def go_float(v: float) -> str:
    """fmt's %v of a float64: the shortest digits, %e form below 1e-4 or from 1e6."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    from decimal import Decimal

    _, digit_tuple, exponent = Decimal(repr(abs(v))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    exp = len(digits) + int(exponent) - 1  # the decimal exponent of the first digit
    sign = "-" if v < 0 else ""
    if exp < -4 or exp >= 6:  # strconv: shortest %g decides with a precision of 6
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp >= len(digits) - 1:
        return sign + digits + "0" * (exp - len(digits) + 1)
    if exp >= 0:
        return sign + digits[:exp + 1] + "." + digits[exp + 1:]
    return sign + "0." + "0" * (-exp - 1) + digits


def go_str(v: Any, nested: bool = False) -> str:
    """``fmt.Sprint(v)`` of a JSON-shaped value."""
    if v is MISSING:
        return "<no value>"
    if v is None:
        return "<nil>" if nested else "<no value>"
    if v is NIL:
        return "<nil>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, GoStruct):
        return "{" + " ".join(go_str(x, True) for x in v.values()) + "}"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{go_str(k, True)}:{go_str(v[k], True)}"
                                 for k in sorted(v, key=str)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_str(e, True) for e in v) + "]"
    return str(v)


def go_json(v: Any) -> str:
    """docker's ``json`` function: encoding/json, no HTML escaping, no newline.  A row
    of a list command marshals as docker's contexts do: keys sorted, <>& escaped."""
    v = getattr(v, "json_doc", v)  # a context whose JSON is another shape (events.Message)
    context = isinstance(v, StrictFields)
    if context:  # its methods (ps's Label) are not marshalled
        v = {k: x for k, x in v.items() if not callable(x)}
    text = json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=context,
                      default=lambda o: None if o is NIL or o is MISSING else str(o))
    if context:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def go_quote(s: str) -> str:
    """strconv.Quote (for printf's %q)."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def type_name(v: Any) -> str:
    if v is None or v is MISSING or v is NIL:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, StrictFields):
        return v.type_name
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    return type(v).__name__


def truth(v: Any) -> bool:
    """Go's template truth: false, 0, nil and empty things are false."""
    if v is MISSING or v is None or v is NIL:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


# -- printf -----------------------------------------------------------------------------
_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d+)?)?([a-zA-Z%])")


def go_sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs templates use: %v %s %q %d %t %f %e %g %x %X %o %b %c %%."""
    out: list[str] = []
    pos = 0
    argi = 0

    def next_arg() -> Any:
        nonlocal argi
        if argi >= len(args):
            return MISSING
        argi += 1
        return args[argi - 1]

    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if width == "*":
            width = str(next_arg())
        if prec == "*":
            prec = str(next_arg())
        arg = next_arg()
        if arg is MISSING:
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(flags, width, prec, verb, arg))
    out.append(fmt[pos:])
    if argi < len(args):
        extra = ", ".join(f"{type_name(a)}={go_str(a, True)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _pad(text: str, flags: str, width: str | None) -> str:
    if not width:
        return text
    w = int(width)
    if "-" in flags:
        return text.ljust(w)
    return text.rjust(w)


def _format_one(flags: str, width: str | None, prec: str | None, verb: str, arg: Any) -> str:
    if verb != "v" and isinstance(arg, (list, tuple)):  # fmt applies a verb element-wise
        return "[" + " ".join(_format_one(flags, width, prec, verb, e) for e in arg) + "]"
    if verb != "v" and isinstance(arg, dict):
        return "map[" + " ".join(f"{_format_one(flags, width, prec, verb, k)}:"
                                 f"{_format_one(flags, width, prec, verb, arg[k])}"
                                 for k in sorted(arg, key=str)) + "]"
    bad = f"%!{verb}({type_name(arg)}={go_str(arg, True)})"
    number = isinstance(arg, (int, float)) and not isinstance(arg, bool)
    if verb == "v":
        return _pad(go_str(arg, True) if arg is not None else "<nil>", flags, width)
    if verb == "s":
        if isinstance(arg, str):
            text = arg if prec is None else arg[:int(prec)]
            return _pad(text, flags, width)
        return bad
    if verb == "q":
        if isinstance(arg, str):
            return _pad(go_quote(arg), flags, width)
        return bad
    if verb == "t":
        return _pad("true" if arg else "false", flags, width) if isinstance(arg, bool) else bad
    if verb in "dxXob" and isinstance(arg, int) and not isinstance(arg, bool):
        spec = {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb]
        sign = "+" if "+" in flags else ""
        zero = "0" if "0" in flags and "-" not in flags else ""
        return _pad(format(arg, f"{sign}{zero}{width or ''}{spec}"), flags, width)
    if verb in "xX" and isinstance(arg, str):
        text = arg.encode().hex()
        return _pad(text.upper() if verb == "X" else text, flags, width)
    if verb in "feEgG" and number:
        p = "" if prec is None and verb in "gG" else f".{prec if prec is not None else 6}"
        text = format(float(arg), f"{'+' if '+' in flags else ''}{p}{verb}")
        if verb in "gG" and prec is None:
            text = go_float(float(arg))
        if "0" in flags and width and "-" not in flags:
            return text.rjust(int(width), "0")
        return _pad(text, flags, width)
    if verb == "c" and isinstance(arg, int):
        return _pad(chr(arg), flags, width)
    return bad


# -- functions --------------------------------------------------------------------------
class CallError(Exception):
    """A function's error: Go reports it as ``error calling NAME: ...``."""


def _len(v: Any) -> int:
    if v is None:
        raise CallError("len of nil pointer")
    if isinstance(v, (str, list, tuple, dict)):
        return len(v.encode() if isinstance(v, str) else v)
    raise CallError(f"len of type {type_name(v)}")


def _index(v: Any, *keys: Any) -> Any:
    for key in keys:
        if v is None:
            raise CallError("index of untyped nil")
        if isinstance(v, dict):
            if not isinstance(key, str):
                raise CallError(f"value has type {type_name(key)}; should be string")
            if key not in v and all(isinstance(x, str) for x in v.values()):
                v = ""  # docker's map[string]string (Labels): index gives the zero value
            else:
                v = v.get(key)
        elif isinstance(v, (list, tuple, str)):
            if not isinstance(key, int) or isinstance(key, bool):
                raise CallError(f"cannot index slice/array with type {type_name(key)}")
            if not 0 <= key < len(v):
                raise CallError(f"index out of range: {key}")
            v = v.encode()[key] if isinstance(v, str) else v[key]
        else:
            raise CallError(f"can't index item of type {type_name(v)}")
    return v


def _slice(v: Any, *bounds: Any) -> Any:
    if not isinstance(v, (str, list, tuple)):
        raise CallError(f"can't slice item of type {type_name(v)}")
    if len(bounds) > 2:
        raise CallError("too many slice indexes")
    lo = bounds[0] if bounds else 0
    hi = bounds[1] if len(bounds) > 1 else len(v)
    if not 0 <= lo <= hi <= len(v):
        raise CallError(f"index out of range: {hi if hi > len(v) else lo}")
    return v[lo:hi]


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return type(a) is type(b)  # Go: an int and a float64 are not comparable either


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise CallError("missing argument for comparison")
    for b in others:
        if a is None or b is None:
            if a is b:
                return True
            continue
        if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
            raise CallError("invalid type for comparison")
        if not _comparable(a, b):
            raise CallError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _order(a: Any, b: Any) -> int:
    if not _comparable(a, b) or isinstance(a, (bool, dict, list)) or a is None:
        raise CallError("incompatible types for comparison" if _comparable(a, b)
                         else "invalid type for comparison")
    return int((a > b) - (a < b))


def _sprint(*args: Any) -> str:
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(a, True))
    return "".join(out)


def _str_arg(v: Any, name: str) -> str:
    if not isinstance(v, str):
        raise CallError(f"wrong type for value; expected string; got {type_name(v)}")
    return v


def _title(s: Any) -> str:
    s = _str_arg(s, "title")
    return re.sub(r"(^|[^\w])(\w)", lambda m: m.group(1) + m.group(2).upper(), s)


def _split(s: Any, sep: Any) -> list[str]:
    text, separator = _str_arg(s, "split"), _str_arg(sep, "split")
    if separator == "":
        return list(text)
    return text.split(separator)


def _join(items: Any, sep: Any) -> str:
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise CallError(f"wrong type for value; expected []string; got {type_name(items)}")
    return _str_arg(sep, "join").join(items)


def _pad_with_space(s: Any, prefix: int, suffix: int) -> str:
    text = _str_arg(s, "pad")
    return text if text == "" else " " * prefix + text + " " * suffix


def _truncate(s: Any, length: int) -> str:
    text = _str_arg(s, "truncate")
    return text if len(text) < length else text[:length]


def _html(*args: Any) -> str:
    import html

    return html.escape(_sprint(*args)).replace("&#x27;", "&#39;")


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_sprint(*args))


def _js(*args: Any) -> str:
    text = _sprint(*args)
    table = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E",
             "&": "\\u0026", "=": "\\u003D", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(table.get(ch, ch) for ch in text)


BUILTINS: dict[str, Callable[..., Any]] = {
    "and": lambda *a: a[-1], "or": lambda *a: a[-1], "not": lambda a: not truth(a),
    "len": _len, "index": _index, "slice": _slice,
    "print": _sprint, "println": lambda *a: " ".join(go_str(x, True) for x in a) + "\n",
    "printf": lambda f, *a: go_sprintf(_str_arg(f, "printf"), *a),
    "eq": _eq, "ne": lambda a, b: not _eq(a, b),
    "lt": lambda a, b: _order(a, b) < 0, "le": lambda a, b: _order(a, b) <= 0,
    "gt": lambda a, b: _order(a, b) > 0, "ge": lambda a, b: _order(a, b) >= 0,
    "html": _html, "js": _js, "urlquery": _urlquery,
}

#: docker/cli's templates.basicFunctions
DOCKER_FUNCS: dict[str, Callable[..., Any]] = {
    "json": go_json, "split": _split, "join": _join, "title": _title,
    "lower": lambda s: _str_arg(s, "lower").lower(),
    "upper": lambda s: _str_arg(s, "upper").upper(),
    "pad": _pad_with_space, "truncate": _truncate,
}

#: docker/cli's templates.HeaderFunctions: a table's header row passes names through
HEADER_FUNCS: dict[str, Callable[..., Any]] = {
    "json": lambda v: v, "split": lambda v, _s: v, "join": lambda v, _s: v,
    "title": lambda v: v, "lower": lambda v: v, "upper": lambda v: v,
    "pad": lambda v, _a, _b: v, "truncate": lambda v, _n: v,
}
