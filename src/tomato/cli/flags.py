"""A tiny urfave/cli-compatible flag parser for the runc-like command line.

argparse costs several milliseconds to import and build; tomato-runtime's
start latency is a headline number, so the runtime CLI parses by hand:
``--name value``, ``--name=value``, ``-n value``, single-dash long names
(urfave accepts ``-bundle``), booleans, and repeatable flags.  Flag parsing
stops at the first positional argument, as runc's does.  Its errors are Go's
flag package's words (tests/unit/test_cli_flags.py): ``flag provided but not
defined: -x``, ``flag needs an argument: -b``, ``invalid boolean value "yes"
for -d: parse error``, ``bad flag syntax: ---x``.
"""

from __future__ import annotations

import builtins

from tomato.errors import InvalidArgument
from tomato.records import field, record

BOOL, VALUE, MULTI = "bool", "value", "multi"
OPTIONAL = "optional"  # --name alone is True, --name=value gives the value (never the next word)


@record
class Flag:
    name: str
    kind: str = BOOL
    aliases: tuple[str, ...] = ()
    default: object = None
    help: str = ""


@record(frozen=False)
class Parsed:
    values: dict[str, object] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)

    def get(self, name: str, default: object = None) -> object:
        return self.values.get(name, default)

    def str(self, name: builtins.str, default: builtins.str = "") -> builtins.str:
        value = self.values.get(name, default)
        return str(value) if value is not None else default

    def bool(self, name: builtins.str) -> builtins.bool:
        return bool(self.values.get(name, False))

    def list(self, name: builtins.str) -> builtins.list[builtins.str]:
        value = self.values.get(name)
        return list(value) if isinstance(value, list) else []


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _parse_bool(text: str, name: str) -> bool:
    """Go's strconv.ParseBool, as a --flag=value of a boolean flag is read by runc."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidArgument(f'invalid boolean value "{text}" for -{name}: parse error')


def parse(argv: list[str], flags: tuple[Flag, ...], stop_at_positional: bool = True) -> Parsed:
    by_name: dict[str, Flag] = {}
    for f in flags:
        by_name[f.name] = f
        for a in f.aliases:
            by_name[a] = f
    out = Parsed({f.name: f.default for f in flags if f.default is not None})
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.args.extend(argv[i + 1:])
            break
        if not arg.startswith("-") or arg == "-":
            if stop_at_positional:
                out.args.extend(argv[i:])
                break
            out.args.append(arg)
            i += 1
            continue
        name, eq, inline = arg[2:].partition("=") if arg.startswith("--") \
            else arg[1:].partition("=")
        if not name or name.startswith(("-", "=")):
            raise InvalidArgument(f"bad flag syntax: {arg}")
        flag = by_name.get(name)
        if flag is None:
            raise InvalidArgument(f"flag provided but not defined: -{name}")
        if flag.kind == OPTIONAL:
            out.values[flag.name] = inline if eq else True
            i += 1
            continue
        if flag.kind == BOOL:
            if eq:
                out.values[flag.name] = _parse_bool(inline, name)
            else:
                out.values[flag.name] = True
            i += 1
            continue
        if eq:
            value = inline
            i += 1
        else:
            if i + 1 >= len(argv):
                raise InvalidArgument(f"flag needs an argument: -{name}")
            value = argv[i + 1]
            i += 2
        if flag.kind == MULTI:
            existing = out.values.get(flag.name)
            lst = existing if isinstance(existing, list) else []
            lst.append(value)
            out.values[flag.name] = lst
        else:
            out.values[flag.name] = value
    return out


def usage(flags: tuple[Flag, ...]) -> str:
    lines = []
    for f in flags:
        names = ", ".join(["--" + f.name] + ["-" + a if len(a) == 1 else "--" + a
                                             for a in f.aliases])
        value = {BOOL: "", OPTIONAL: "[=value]"}.get(f.kind, " value")
        lines.append(f"   {names}{value}\t{f.help}")
    return "\n".join(lines)
