"""Each Dockerfile line read as the instruction it is, checked before anything runs.

``parse_instruction(line)`` gives a typed instruction (``From``, ``Run``, ``Copy``...)
with its flags validated and its arguments cut into words as BuildKit cuts them:
exec form (a JSON array of strings) or shell form for RUN, CMD and ENTRYPOINT;
``key=value`` pairs (or the old ``key value``) for ENV and LABEL.  Variables are
not expanded here: their values are only known stage by stage (executor.py).
Every error names the file and the line: ``Dockerfile:7: unknown instruction: RUNN``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tomato.build.dockerfile import (
    Dockerfile,
    DockerfileError,
    Heredoc,
    Line,
    split_words,
)
from tomato.build.dockerfile import parse as parse_text

KEYWORDS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
            "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
            "WORKDIR")

#: the flags each instruction takes (value: whether the flag is a plain switch)
FLAGS: dict[str, dict[str, bool]] = {
    "FROM": {"platform": False},
    "RUN": {"network": False, "mount": False, "security": False},
    "COPY": {"from": False, "chown": False, "chmod": False, "link": True},
    "ADD": {"chown": False, "chmod": False, "link": True, "checksum": False,
            "keep-git-dir": True},
    "HEALTHCHECK": {"interval": False, "timeout": False, "start-period": False,
                    "start-interval": False, "retries": False},
}


@dataclass(frozen=True)
class Instruction:
    line: Line

    @property
    def keyword(self) -> str:
        return self.line.keyword

    @property
    def text(self) -> str:
        """The instruction as written (one line), for messages and history."""
        return self.line.original


@dataclass(frozen=True)
class From(Instruction):
    image: str
    alias: str
    platform: str


@dataclass(frozen=True)
class Arg(Instruction):
    pairs: tuple[tuple[str, str | None], ...]  # name, default (raw, expanded when used)


@dataclass(frozen=True)
class KeyValues(Instruction):
    """ENV and LABEL: raw (unexpanded) keys and values."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Command(Instruction):
    """RUN, CMD, ENTRYPOINT: ``exec_form`` args, or a shell form string in ``args[0]``."""

    args: tuple[str, ...]
    exec_form: bool
    network: str = ""  # RUN --network
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True)
class Shell(Instruction):
    args: tuple[str, ...]


@dataclass(frozen=True)
class Single(Instruction):
    """WORKDIR, USER, STOPSIGNAL, MAINTAINER: one (raw) value."""

    value: str


@dataclass(frozen=True)
class Words(Instruction):
    """EXPOSE and VOLUME: raw words."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class Copy(Instruction):
    """COPY and ADD: raw sources (heredoc names included) and destination."""

    sources: tuple[str, ...]
    dest: str
    from_: str = ""
    chown: str = ""
    chmod: str = ""
    checksum: str = ""
    heredocs: tuple[Heredoc, ...] = ()

    @property
    def is_add(self) -> bool:
        return self.keyword == "ADD"


@dataclass(frozen=True)
class Healthcheck(Instruction):
    test: tuple[str, ...]  # ("NONE",), ("CMD", ...) or ("CMD-SHELL", "...")
    options: tuple[tuple[str, str], ...]  # raw flag values


@dataclass(frozen=True)
class Onbuild(Instruction):
    trigger: str  # the instruction text to run in a child build


class _Errors:
    def __init__(self, line: Line, name: str) -> None:
        self.line, self.name = line, name

    def __call__(self, message: str) -> DockerfileError:
        return DockerfileError(f"{self.name}:{self.line.lineno}: {message}")


def _flags(line: Line, err: _Errors) -> dict[str, str]:
    allowed = FLAGS.get(line.keyword, {})
    out: dict[str, str] = {}
    for raw in line.flags:
        name, eq, value = raw[2:].partition("=")
        if name not in allowed:
            raise err(f"unknown flag: {name}" if allowed else
                      f"{line.keyword} takes no flags: --{name}")
        if not allowed[name] and not eq:
            raise err(f"missing a value on flag: {name}")
        if allowed[name] and eq and value.lower() not in ("true", "false"):
            raise err(f"expecting boolean value for flag {name}, not: {value}")
        if name in out:
            raise err(f"duplicate flag specified: {name}")
        out[name] = value if eq else "true"
    return out


def _json_array(text: str) -> list[str] | None:
    """``text`` as a JSON array of strings, or None (then it is shell form)."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def parse_instruction(line: Line, name: str = "Dockerfile", escape: str = "\\",
                      in_onbuild: bool = False) -> Instruction:
    err = _Errors(line, name)
    kw = line.keyword
    if kw not in KEYWORDS:
        raise err(f"unknown instruction: {kw}")
    flags = _flags(line, err)
    rest = line.rest
    if kw == "FROM":
        parts = rest.split()
        if len(parts) == 3 and parts[1].lower() == "as":
            if not re.match(r"^[a-zA-Z][a-zA-Z0-9_.-]*$", parts[2]):
                raise err(f"invalid name for build stage: {parts[2]!r}, name can't start "
                          "with a number or contain symbols")
            return From(line, parts[0], parts[2].lower(), flags.get("platform", ""))
        if len(parts) != 1:
            raise err("FROM requires either one or three arguments")
        return From(line, parts[0], "", flags.get("platform", ""))
    if kw == "ARG":
        words = split_words(rest, escape)
        if not words:
            raise err("ARG requires at least one argument")
        pairs = []
        for w in words:
            key, eq, value = w.partition("=")
            if not key:
                raise err(f"ARG names can not be blank: {w!r}")
            pairs.append((key, value if eq else None))
        return Arg(line, tuple(pairs))
    if kw in ("ENV", "LABEL"):
        return KeyValues(line, _name_values(rest, kw, escape, err))
    if kw in ("RUN", "CMD", "ENTRYPOINT"):
        if kw == "RUN" and "mount" in flags:
            raise err("RUN --mount is not supported by tomato's builder (BuildKit only)")
        if kw == "RUN" and "security" in flags:
            raise err("RUN --security is not supported by tomato's builder (BuildKit only)")
        network = flags.get("network", "")
        if network and network not in ("default", "none", "host"):
            raise err(f"unsupported network mode {network!r}: want default, none or host")
        exec_args = _json_array(rest)
        if exec_args is not None:
            return Command(line, tuple(exec_args), True, network, line.heredocs)
        if not rest.strip() and kw == "RUN":
            raise err("RUN requires at least one argument")
        return Command(line, (rest,) if rest.strip() else (), False, network, line.heredocs)
    if kw == "SHELL":
        args = _json_array(rest)
        if args is None:
            raise err("SHELL requires the arguments to be in JSON form")
        if not args:
            raise err("SHELL requires at least one argument")
        return Shell(line, tuple(args))
    if kw in ("WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"):
        if not rest.strip():
            raise err(f"{kw} requires exactly one argument")
        if kw in ("USER", "STOPSIGNAL") and len(rest.split()) != 1:
            raise err(f"{kw} requires exactly one argument")
        return Single(line, rest.strip())
    if kw in ("EXPOSE", "VOLUME"):
        found = _json_array(rest) if kw == "VOLUME" else None
        words = found if found is not None else rest.split()
        if not words:
            raise err(f"{kw} requires at least one argument")
        return Words(line, tuple(words))
    if kw in ("COPY", "ADD"):
        return _copy(line, flags, rest, err)
    if kw == "HEALTHCHECK":
        return _healthcheck(line, flags, rest, err)
    assert kw == "ONBUILD"
    if in_onbuild:
        raise err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    trigger = rest.strip()
    word = trigger.split(None, 1)[0].upper() if trigger else ""
    if not word:
        raise err("ONBUILD requires at least one argument")
    if word in ("ONBUILD", "FROM", "MAINTAINER"):
        raise err(f"{word} isn't allowed as an ONBUILD trigger")
    check_trigger(trigger, line, name, escape)
    return Onbuild(line, trigger)


def check_trigger(trigger: str, line: Line, name: str, escape: str) -> Instruction:
    """An ONBUILD trigger parsed as the instruction it will be (errors name ``line``)."""
    try:
        inner = parse_text(trigger, name).lines[0]
    except DockerfileError as e:
        raise DockerfileError(f"{name}:{line.lineno}: {str(e).split(': ', 1)[-1]}") from None
    inner = Line(line.lineno, line.end, inner.keyword, inner.flags, inner.rest,
                 inner.original, inner.heredocs)
    return parse_instruction(inner, name, escape, in_onbuild=True)


def _name_values(rest: str, kw: str, escape: str, err: _Errors) -> tuple[tuple[str, str], ...]:
    words = split_words(rest, escape)
    if not words:
        raise err(f"{kw} must have two arguments")
    if "=" not in words[0]:  # the old form: KEY value with spaces
        parts = re.split(r"[ \t]+", rest.strip(), maxsplit=1)
        if len(parts) < 2:
            raise err(f"{kw} must have two arguments")
        return ((parts[0], parts[1]),)
    pairs = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq:
            raise err(f"Syntax error - can't find = in {w!r}. Must be of the form: name=value")
        if not key:
            raise err(f"{kw} names can not be blank")
        pairs.append((key, value))
    return tuple(pairs)


def _copy(line: Line, flags: dict[str, str], rest: str, err: _Errors) -> Copy:
    kw = line.keyword
    args = _json_array(rest)
    if args is None:
        args = rest.split()
    if len(args) < 2:
        raise err(f"{kw} requires at least two arguments, but only one was provided. "
                  "Destination could not be determined." if args else
                  f"{kw} requires at least two arguments")
    chmod = flags.get("chmod", "")
    if chmod and not re.match(r"^[0-7]{1,4}$", chmod):
        raise err(f"invalid chmod parameter {chmod!r}: want an octal mode like 0755")
    return Copy(line, tuple(args[:-1]), args[-1], flags.get("from", ""), flags.get("chown", ""),
                chmod, flags.get("checksum", ""), line.heredocs)


_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def parse_duration(text: str) -> int:
    """A Go duration (``1m30s``, ``500ms``) in nanoseconds; ValueError when it is not one."""
    if not _DURATION.match(text):
        if text == "0":
            return 0
        raise ValueError(text)
    units = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "h": 3_600_000_000_000}
    total = 0.0
    for number, _, unit in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", text):
        total += float(number) * units[unit]
    return int(total)


def _healthcheck(line: Line, flags: dict[str, str], rest: str, err: _Errors) -> Healthcheck:
    word, _, cmd = rest.strip().partition(" ")
    word = word.upper()
    if word == "NONE":
        if cmd.strip() or flags:
            raise err("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(line, ("NONE",), ())
    if word != "CMD":
        raise err(f'Unknown type "{word}" in HEALTHCHECK (try CMD)')
    for key in ("interval", "timeout", "start-period", "start-interval"):
        if key in flags:
            try:
                value = parse_duration(flags[key])
            except ValueError:
                raise err(f"invalid --{key} duration: {flags[key]!r}") from None
            if value and value < 1_000_000:
                raise err(f"interval cannot be less than 1ms (--{key}={flags[key]})")
    if "retries" in flags and not re.match(r"^\d+$", flags["retries"]):
        raise err(f"invalid --retries value: {flags['retries']!r}")
    cmd = cmd.strip()
    if not cmd:
        raise err("Missing command after HEALTHCHECK CMD")
    exec_args = _json_array(cmd)
    test = ("CMD", *exec_args) if exec_args is not None else ("CMD-SHELL", cmd)
    return Healthcheck(line, test, tuple(sorted(flags.items())))


def parse_all(dockerfile: Dockerfile) -> list[Instruction]:
    """Every line of ``dockerfile`` as an instruction; the first bad one raises."""
    out = [parse_instruction(line, dockerfile.name, dockerfile.escape)
           for line in dockerfile.lines]
    for ins in out:
        if not isinstance(ins, (Arg, From)):
            raise DockerfileError(f"{dockerfile.name}:{ins.line.lineno}: no build stage in "
                                  f"current context: {ins.keyword} before the first FROM")
        if isinstance(ins, From):
            break
    else:
        raise DockerfileError(f"{dockerfile.name}: the Dockerfile has no FROM instruction")
    return out


__all__ = ["KEYWORDS", "Instruction", "From", "Arg", "KeyValues", "Command", "Shell", "Single",
           "Words", "Copy", "Healthcheck", "Onbuild", "parse_instruction", "parse_all",
           "parse_duration", "check_trigger"]
