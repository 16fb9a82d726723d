"""Human units on the command line: sizes (512m, 1g) and durations (5s, 100ms)."""

from __future__ import annotations

_SIZE = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
         "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}
_DURATION = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_size(text: str) -> int:
    """'512m' → 536870912; a bare number is bytes.  ValueError on anything else."""
    t = text.strip().lower()
    i = len(t)
    while i and not t[i - 1].isdigit() and t[i - 1] != ".":
        i -= 1
    number, unit = t[:i], t[i:]
    if not number or unit not in _SIZE:
        raise ValueError(f"invalid size {text!r}")
    value = float(number) * _SIZE[unit]
    if value < 0:
        raise ValueError(f"invalid size {text!r}")
    return int(value)


def parse_duration(text: str) -> float:
    """Go-style durations: '5s', '250ms', '1m'; a bare number is seconds."""
    t = text.strip().lower()
    for suffix in sorted(_DURATION, key=len, reverse=True):
        if t.endswith(suffix):
            number = t[: -len(suffix)]
            try:
                value = float(number) * _DURATION[suffix]
            except ValueError:
                break
            if value <= 0:
                break
            return value
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"invalid duration {text!r}") from None
    if value <= 0:
        raise ValueError(f"invalid duration {text!r}")
    return value
