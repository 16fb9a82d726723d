"""The times docker's ``--since``/``--until`` take (events, logs; the API's since/until):
a Go duration back from now (``10m``, ``1h30m``, ``250ms``), an RFC 3339 date or time
(``2024-01-02``, ``2024-01-02T15:04``, ``2024-01-02T15:04:05.123Z``, with or without
an offset; without one, local time), or Unix seconds (``1700000000.5``).
docker/cli's opts.GetTimestamp, as seconds since the epoch."""

from __future__ import annotations

import re
import time

from tomato.errors import InvalidArgument

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
          "h": 3600.0}
_DURATION = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"(Z|z|[+-]\d{2}:\d{2})?")


def go_duration(text: str) -> float | None:
    """time.ParseDuration in seconds, or None when ``text`` is not a duration."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if not body or body == "0":
        return 0.0 if body == "0" else None
    pos, total = 0, 0.0
    while pos < len(body):
        m = _DURATION.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def parse(text: str, now: float | None = None) -> float:
    """``text`` as Unix seconds; InvalidArgument with docker's words when it is none."""
    value = text.strip()
    now = time.time() if now is None else now
    if value != "0":
        duration = go_duration(value)
        if duration is not None:
            return now - duration
    m = _DATETIME.fullmatch(value)
    if m is not None:
        year, month, day, hour, minute, sec, frac, zone = m.groups()
        fields = (int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                  int(sec or 0))
        try:
            if zone is None:  # local time, as docker parses a time without an offset
                base = time.mktime((*fields, 0, 0, -1))
            else:
                import calendar

                base = calendar.timegm((*fields, 0, 0, 0))
                if zone not in ("Z", "z"):
                    offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
                    base -= offset if zone[0] == "+" else -offset
        except (ValueError, OverflowError) as err:
            raise InvalidArgument(f"failed to parse value as time or duration: "
                                  f"\"{text}\"") from err
        return base + (float("0." + frac) if frac else 0.0)
    if re.fullmatch(r"\d+(\.\d{0,9})?", value):
        return float(value)
    raise InvalidArgument(f"failed to parse value as time or duration: \"{text}\"")
