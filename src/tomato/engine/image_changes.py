"""Dockerfile instructions applied to an image's config: `commit --change`,
`import --change` and the API's ``changes`` query parameter, parsed once here
for both edges (cli/ and api/).

Docker reads them as lines of a Dockerfile (the daemon's ``BuildFromConfig``)
and takes only the instructions that change the config:

    CMD / ENTRYPOINT   exec form (a JSON array of strings) or shell form
                       (``/bin/sh -c``); text that is not such an array -- ``[oops``
                       -- is shell form, as Docker's parser reads it
    ENV / LABEL        ``k=v k2="v 2"`` pairs, or the old ``k v`` (one pair)
    EXPOSE             ports (``80``, ``53/udp``, ``8000-8002``), /tcp by default
    VOLUME             a JSON array or words
    USER, WORKDIR, STOPSIGNAL, ONBUILD

Anything else is ``"FROM is not a valid change command"`` (InvalidArgument,
exit 125 at the CLI, 400 from the API).  ``merge`` then lays the parsed
changes over a base config as a Dockerfile would: ENV replaces a variable of
the same name and keeps the others, LABEL, EXPOSE and VOLUME add to what is
there, the rest replaces.
"""

from __future__ import annotations

import json

from tomato.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

#: instruction -> the config key it sets
KEYS = {"CMD": "Cmd", "ENTRYPOINT": "Entrypoint", "ENV": "Env", "EXPOSE": "ExposedPorts",
        "LABEL": "Labels", "ONBUILD": "OnBuild", "STOPSIGNAL": "StopSignal", "USER": "User",
        "VOLUME": "Volumes", "WORKDIR": "WorkingDir"}


def parse(lines: Iterable[str]) -> dict[str, Any]:
    """The config keys the lines set (each item may hold several lines)."""
    out: dict[str, Any] = {}
    for item in lines:
        for line in _logical_lines(item):
            _apply(out, line)
    if "Env" in out:  # a name set twice: the last one, as a Dockerfile's ENV
        out["Env"] = list({e.partition("=")[0]: e for e in out["Env"]}.values())
    return out


def _logical_lines(text: str) -> list[str]:
    """Lines, a trailing backslash joining the next one, blanks and comments dropped."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


def _apply(out: dict[str, Any], line: str) -> None:
    word, _, rest = line.partition(" ")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = f"{more} {rest}"
    instruction = word.upper()
    key = KEYS.get(instruction)
    if key is None:
        raise InvalidArgument(f"{word} is not a valid change command")
    rest = rest.strip()
    if key in ("Cmd", "Entrypoint"):
        out[key] = _exec_or_shell(rest)
    elif key in ("Env", "Labels"):
        pairs = _pairs(rest, instruction)
        if key == "Env":
            env = out.setdefault("Env", [])
            env.extend(f"{k}={v}" for k, v in pairs)
        else:
            out.setdefault("Labels", {}).update(pairs)
    elif key == "ExposedPorts":
        for item in _words(rest) if rest else []:
            for port in _ports(item):
                out.setdefault("ExposedPorts", {})[port] = {}
    elif key == "Volumes":
        array = _json_strings(rest)
        for path in array if array is not None else _words(rest):
            out.setdefault("Volumes", {})[path] = {}
    elif key == "OnBuild":
        if not rest:
            raise InvalidArgument("ONBUILD requires at least one argument")
        out.setdefault("OnBuild", []).append(rest)
    else:
        if not rest:
            raise InvalidArgument(f"{instruction} requires exactly one argument")
        out[key] = rest


def _json_strings(text: str) -> list[str] | None:
    """A JSON array of strings, or None (Docker's parseMaybeJSON)."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _exec_or_shell(text: str) -> list[str]:
    array = _json_strings(text)
    return array if array is not None else ["/bin/sh", "-c", text]


def _words(text: str) -> list[str]:
    """Whitespace-separated words; quotes group and are removed, backslash escapes."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    started = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quote != "'" and i + 1 < len(text):
            current.append(text[i + 1])
            started = True
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
            else:
                current.append(ch)
        elif ch in "\"'":
            quote = ch
            started = True
        elif ch.isspace():
            if started:
                words.append("".join(current))
                current, started = [], False
        else:
            current.append(ch)
            started = True
        i += 1
    if quote:
        raise InvalidArgument(f"unmatched quote in {text!r}")
    if started:
        words.append("".join(current))
    return words


def _pairs(text: str, instruction: str) -> list[tuple[str, str]]:
    words = _words(text)
    if not words:
        raise InvalidArgument(f"{instruction} requires at least one argument")
    if "=" not in words[0]:  # the old form: one name, and the rest of the line its value
        parts = text.split(None, 1)
        if len(parts) < 2:
            raise InvalidArgument(f"{instruction} must have two arguments")
        value = parts[1].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        return [(parts[0], value)]
    pairs = []
    for word in words:
        name, eq, value = word.partition("=")
        if not eq or not name:
            raise InvalidArgument(f"{instruction}: {word!r} is not a name=value pair")
        pairs.append((name, value))
    return pairs


def _ports(item: str) -> list[str]:
    spec, _, proto = item.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    low, dash, high = spec.partition("-")
    try:
        first, last = int(low), int(high) if dash else int(low)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {spec}") from None
    if not 0 < first <= last <= 65535:
        raise InvalidArgument(f"invalid port range: {spec}")
    return [f"{port}/{proto}" for port in range(first, last + 1)]


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` laid over ``base`` as a Dockerfile's instructions would be: the
    changed keys' new values (ENV by variable name, LABEL/EXPOSE/VOLUME added)."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "Env":
            env = {e.partition("=")[0]: e for e in base.get("Env") or []}
            env.update((e.partition("=")[0], e) for e in value)
            out[key] = list(env.values())
        elif key in ("Labels", "ExposedPorts", "Volumes"):
            out[key] = {**(base.get(key) or {}), **value}
        elif key == "OnBuild":
            out[key] = [*(base.get(key) or []), *value]
        else:
            out[key] = value
    return out
