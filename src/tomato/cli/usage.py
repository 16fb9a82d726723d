"""argparse with the manners of Docker's command line (cobra + pflag).

What a Docker user types, and what Docker answers when it is wrong:

- No abbreviations: ``--pid`` is not ``--pids-limit``; an unknown or shortened
  flag is an error naming it (argparse's ``allow_abbrev`` is off everywhere).
- A boolean flag takes a value after ``=``: ``--rm=false``, ``--privileged=true``
  (Go's ``strconv.ParseBool``).  Integers are Go's too (``strconv.ParseInt``,
  base prefixes and int64's range).
- Errors are docker 28's, shape and exit code alike::

      tomato: invalid argument "abc" for "--pids-limit" flag: strconv.ParseInt: ...
      <blank>
      Usage:  tomato run [OPTIONS] IMAGE [COMMAND] [ARG...]
      <blank>
      Run 'tomato run --help' for more information

  125 for a flag (unknown, missing its value, a bad value), 1 for the wrong
  number of arguments or an unknown command; a command group given no command
  prints its help (exit 0), as ``docker container`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any, NoReturn

#: how argparse starts its message for missing positional arguments
_REQUIRED = "the following arguments are required: "

FLAG_EXIT = 125  # docker: a flag error is a StatusError 125
ARGS_EXIT = 1  # docker: the wrong number of arguments, an unknown command


def untranslated() -> None:
    """argparse without gettext: it asks gettext to translate every string it builds,
    and each ask searches the locale directories for catalogs (~10 ms for `tomato`'s
    parsers).  Docker's messages are English only, and so are ours: argparse's own
    ``_`` (its module's gettext alias) becomes the identity, for this process."""
    argparse._ = _identity  # type: ignore[attr-defined]


def _identity(message: str) -> str:
    return message


class FlagValueError(argparse.ArgumentTypeError):
    """A flag's value refused by a type function; keeps the value for the message."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(reason)
        self.value = value


def go_quote(text: str) -> str:
    """Go's %q, near enough: double quotes, escapes, printable unicode kept."""
    return json.dumps(text, ensure_ascii=False)


def go_int(text: str) -> int:
    """``strconv.ParseInt(text, 0, 64)``, as pflag parses an int flag: optional sign,
    0x/0o/0b prefixes, a leading 0 for octal, ``_`` between digits; int64's range."""
    body = text[1:] if text[:1] in ("+", "-") else text
    try:
        if not body.isascii() or body != body.strip() or not body:
            raise ValueError(text)
        if len(body) > 1 and body[0] == "0" and body[1].isdigit():
            value = int(body[1:], 8)  # Go's "010" is eight
        else:
            value = int(body, 0)
    except ValueError:
        raise FlagValueError(text, f"strconv.ParseInt: parsing {go_quote(text)}: "
                                   "invalid syntax") from None
    value = -value if text.startswith("-") else value
    if not -(1 << 63) <= value < (1 << 63):
        raise FlagValueError(text, f"strconv.ParseInt: parsing {go_quote(text)}: "
                                   "value out of range")
    return value


def go_uint16(text: str) -> int:
    """``strconv.ParseUint(text, 0, 16)``, as pflag parses a uint16 flag (--blkio-weight)."""
    if text.startswith(("-", "+")):
        raise FlagValueError(text, f"strconv.ParseUint: parsing {go_quote(text)}: "
                                   "invalid syntax")
    try:
        value = go_int(text)
    except FlagValueError as err:
        raise FlagValueError(text, str(err).replace("ParseInt", "ParseUint")) from None
    if value >= 1 << 16:
        raise FlagValueError(text, f"strconv.ParseUint: parsing {go_quote(text)}: "
                                   "value out of range")
    return value


def go_float(text: str) -> float:
    """``strconv.ParseFloat(text, 64)``: no surrounding spaces, no ``_`` but Go's."""
    try:
        if not text.isascii() or text != text.strip() or "_" in text:
            raise ValueError(text)
        return float(text)
    except ValueError:
        raise FlagValueError(text, f"strconv.ParseFloat: parsing {go_quote(text)}: "
                                   "invalid syntax") from None


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def go_bool(text: str) -> bool:
    """``strconv.ParseBool``."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FlagValueError(text, f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax")


_GO_TYPES: dict[Any, Any] = {int: go_int, float: go_float}

#: commands whose trailing COMMAND may not be empty (docker's `exec`: MinimumNArgs(2))
COMMAND_REQUIRED = ("exec",)


class Formatter(argparse.HelpFormatter):
    """argparse's formatter sized as shutil would, without importing shutil (~2 ms,
    with bz2 and lzma): argparse makes one of these for every add_argument."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            try:
                width = int(os.environ.get("COLUMNS", "")) - 2
            except ValueError:
                try:
                    width = os.get_terminal_size(sys.__stdout__.fileno()).columns - 2  # type: ignore[union-attr]
                except (AttributeError, ValueError, OSError):
                    width = 78
        super().__init__(prog, indent_increment, max_help_position, width)


def _is_flag(arg: str) -> bool:
    """What pflag takes for a flag: a dash and more, and not a negative number."""
    if len(arg) < 2 or not arg.startswith("-"):
        return False
    try:
        float(arg)
        return False
    except ValueError:
        return True


class DockerParser(argparse.ArgumentParser):
    """An ArgumentParser (and every sub-command's) that parses and fails as docker's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("exit_on_error", False)  # ArgumentErrors reach parse_known_args
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        if kwargs.get("type") in _GO_TYPES:
            kwargs["type"] = _GO_TYPES[kwargs["type"]]
        return super().add_argument(*args, **kwargs)

    # -- parsing ---------------------------------------------------------------------
    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        args, explicit = self._explicit_bools(args)
        try:
            namespace, extras = super().parse_known_args(args, namespace)
        except argparse.ArgumentError as err:
            self._argument_error(err, args)
        # A sub-command's parser reports its own strays, so whatever reaches a
        # parser here is its own: nothing is left for "unrecognized arguments".
        flags = [a for a in extras if _is_flag(a)]
        if flags:
            self._unknown_flag(flags[0])
        if extras or (_needs_command(self) and not getattr(namespace, "command", None)):
            self._wrong_count()
        for action, option, value in explicit.values():
            _set_explicit(namespace, action, option, value)
        return namespace, []

    def _explicit_bools(self, args: list[str]) -> tuple[list[str], dict[str, Any]]:
        """Take pflag's ``--flag=true|false`` out of ``args`` for argparse (which
        refuses a value for a flag without one); the last mention of a flag wins."""
        stop_at_positional = self._subparsers is not None or any(
            a.nargs == argparse.REMAINDER for a in self._get_positional_actions())
        out: list[str] = []
        explicit: dict[str, Any] = {}
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if arg == "--":
                out.extend(args[i - 1:])
                break
            if not _is_flag(arg):
                if stop_at_positional:  # the command's words (or a sub-command's) follow
                    out.extend(args[i - 1:])
                    break
                out.append(arg)
                continue
            name, eq, value = arg.partition("=")
            action = self._option_string_actions.get(name)
            if action is not None and action.nargs == 0 and eq and _explicit_ok(action):
                try:
                    on = go_bool(value)
                except FlagValueError as err:
                    self._flag_fail(_invalid(err.value, action, str(err)))
                if isinstance(action, argparse._HelpAction):
                    out.extend([name] if on else [])
                else:
                    explicit[action.dest] = (action, name, on)
                continue
            if action is None:  # pflag names an unknown flag before anything else
                if arg.startswith("--"):
                    self._unknown_flag(arg)
                out.append(arg)  # -dit, -eX: short flags run together
                i = self._short_run(arg, args, i, out, explicit)
                continue
            explicit.pop(action.dest, None)  # a plain mention after an explicit one wins
            if action.nargs is None and not eq and i < len(args) and _is_flag(args[i]):
                out.append(f"{name}={args[i]}")  # pflag's value, even "-x": argparse's way
                i += 1
                continue
            out.append(arg)
            if action.nargs != 0 and not eq and i < len(args):
                out.append(args[i])  # its value
                i += 1
        return out, explicit

    def _short_run(self, arg: str, args: list[str], i: int, out: list[str],
                   explicit: dict[str, Any]) -> int:
        """``arg`` (already in ``out``) is short flags run together: mark them seen,
        take the value of the last one if it needs one, and ``-it=false``'s value."""
        for pos in range(1, len(arg)):
            action = self._option_string_actions.get("-" + arg[pos])
            if action is None:
                self._unknown_flag(arg)
            explicit.pop(action.dest, None)
            if action.nargs != 0:
                if pos == len(arg) - 1 and i < len(args):
                    out.append(args[i])
                    i += 1
                break
            if arg[pos + 1:pos + 2] == "=" and _explicit_ok(action) and \
                    not isinstance(action, argparse._HelpAction):
                try:
                    explicit[action.dest] = (action, arg[pos], go_bool(arg[pos + 2:]))
                except FlagValueError as err:
                    self._flag_fail(_invalid(err.value, action, str(err)))
                out[-1] = arg[:pos + 1]
                break
        return i

    # -- failing as docker does -------------------------------------------------------
    def usage_line(self) -> str:
        words = [self.prog]
        if any(a.option_strings and not isinstance(a, argparse._HelpAction)
               for a in self._actions):
            words.append("[OPTIONS]")
        for action in self._get_positional_actions():
            words.append(_positional_usage(action, _needs_command(self)))
        return " ".join(words)

    def format_usage(self) -> str:
        return f"Usage:  {self.usage_line()}\n"

    def format_help(self) -> str:
        saved, self.usage = self.usage, self.usage_line().replace("%", "%%")
        try:
            return super().format_help().replace("usage: ", "Usage:  ", 1)
        finally:
            self.usage = saved

    def _fail(self, message: str, code: int, usage: bool = True) -> NoReturn:
        tail = f"\nUsage:  {self.usage_line()}\n" if usage else ""
        sys.stderr.write(f"tomato: {message}\n{tail}\n"
                         f"Run '{self.prog} --help' for more information\n")
        sys.stderr.flush()
        sys.exit(code)

    def _flag_fail(self, message: str) -> NoReturn:
        self._fail(message, FLAG_EXIT)

    def _unknown_flag(self, arg: str) -> NoReturn:
        if arg.startswith("--"):
            self._flag_fail(f"unknown flag: {arg.partition('=')[0]}")
        body = arg[1:]  # pflag names the first unknown letter and what follows it
        for pos, char in enumerate(body):
            action = self._option_string_actions.get("-" + char)
            if action is None:
                self._flag_fail(f"unknown shorthand flag: {char!r} in -{body[pos:]}")
            if action.nargs != 0:
                break
        self._flag_fail(f"unknown shorthand flag: {body[0]!r} in -{body}")

    def _wrong_count(self) -> NoReturn:
        low, high = _arity(self)
        if low == high:
            need = "accepts no arguments" if high == 0 else f"requires {_args(high)}"
        elif high is not None:
            need = f"requires at most {_args(high)}"
        else:
            need = f"requires at least {_args(low)}"
        self._fail(f"'{self.prog}' {need}", ARGS_EXIT)

    def _argument_error(self, err: argparse.ArgumentError, args: list[str]) -> NoReturn:
        message = err.message
        if err.argument_name is None and message.startswith(_REQUIRED):
            self.error(message)  # Python 3.13 raises what 3.11 and 3.12 hand to error()
        action = next((a for a in self._actions
                       if argparse._get_action_name(a) == err.argument_name), None)
        if isinstance(action, argparse._SubParsersAction):
            self._unknown_command(_choice(message))
        if action is None or not action.option_strings:
            self._fail(message, ARGS_EXIT)
        if message.startswith("expected "):  # argparse: "expected one argument"
            short = [o for o in action.option_strings if len(o) == 2]
            typed = _typed(action, args) or (f"'{short[0][1]}' in {short[0]}" if short
                                             else action.option_strings[0])
            self._flag_fail(f"flag needs an argument: {typed}")
        if message.startswith("ignored explicit argument "):  # -dz: z is no flag
            value = _literal(message.removeprefix("ignored explicit argument "))
            if _typed(action, args).startswith("--"):
                self._flag_fail(_invalid(value, action, f"strconv.ParseBool: parsing "
                                                        f"{go_quote(value)}: invalid syntax"))
            self._unknown_flag(next((a for a in args if _is_flag(a) and a[1] != "-"
                                     and a.endswith(value)), "-" + value))
        context = err.__context__
        if isinstance(context, FlagValueError):
            self._flag_fail(_invalid(context.value, action, message))
        if message.startswith("invalid choice: "):
            value = _choice(message)
            choices = ", ".join(str(c) for c in action.choices or ())
            self._flag_fail(_invalid(value, action, f"must be one of {choices}"))
        self._flag_fail(f'invalid argument for "{_label(action)}" flag: {message}')

    def _unknown_command(self, word: str) -> NoReturn:
        self._fail(f"unknown command: {self.prog} {word}".rstrip(), ARGS_EXIT,
                   usage=self.prog != "tomato")

    def error(self, message: str) -> NoReturn:
        """argparse's own complaints that bypass ArgumentError (missing arguments)."""
        if message.startswith(_REQUIRED):
            missing = message.removeprefix(_REQUIRED).split(", ")
            if any(isinstance(a, argparse._SubParsersAction) and
                   argparse._get_action_name(a) in missing for a in self._actions):
                self.print_help()  # `docker container`: the group's help
                sys.exit(0)
            self._wrong_count()
        self._fail(message, FLAG_EXIT)


def _explicit_ok(action: argparse.Action) -> bool:
    return isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                               argparse.BooleanOptionalAction, argparse._HelpAction))


def _set_explicit(namespace: Any, action: argparse.Action, option: str, value: bool) -> None:
    if isinstance(action, argparse._StoreFalseAction) or option.startswith("--no-"):
        value = not value
    setattr(namespace, action.dest, value)


def _needs_command(parser: argparse.ArgumentParser) -> bool:
    return parser.prog.rsplit(" ", 1)[-1] in COMMAND_REQUIRED


def _positional_usage(action: argparse.Action, command_required: bool = False) -> str:
    if isinstance(action, argparse._SubParsersAction):
        return "COMMAND"
    metavar = action.metavar if isinstance(action.metavar, str) else None
    name = metavar or action.dest.upper()
    nargs = action.nargs
    if nargs == argparse.REMAINDER and action.dest == "command":
        return "COMMAND [ARG...]" if command_required else "[COMMAND] [ARG...]"
    if nargs == argparse.REMAINDER:
        return f"[{name}...]"
    if nargs == "?":
        return f"[{name}]"
    if nargs == "+":
        return f"{name} [{name}...]"
    if nargs == "*":
        return f"[{name}...]"
    if isinstance(nargs, int):
        return " ".join([name] * nargs)
    return name


def _arity(parser: argparse.ArgumentParser) -> tuple[int, int | None]:
    """The fewest and most arguments a command takes (None: no limit)."""
    low, high = 0, 0
    unbounded = False
    for action in parser._get_positional_actions():
        nargs = action.nargs
        if nargs is None or isinstance(action, argparse._SubParsersAction):
            low, high = low + 1, high + 1
        elif isinstance(nargs, int):
            low, high = low + nargs, high + nargs
        elif nargs == "?":
            high += 1
        elif nargs == "+":
            low += 1
            unbounded = True
        else:  # "*", REMAINDER
            unbounded = True
            low += action.dest == "command" and _needs_command(parser)
    return low, None if unbounded else high


def _args(n: int) -> str:
    return f"{n} argument" + ("" if n == 1 else "s")


def _label(action: argparse.Action) -> str:
    """pflag's name for a flag: "-n, --last", or "--pids-limit"."""
    shorts = [o for o in action.option_strings if len(o) == 2]
    longs = [o for o in action.option_strings if len(o) > 2]
    if shorts and longs:
        return f"{shorts[0]}, {longs[0]}"
    return (longs or shorts)[0]


def _invalid(value: str, action: argparse.Action, reason: str) -> str:
    return f"invalid argument {go_quote(value)} for {go_quote(_label(action))} flag: {reason}"


def _typed(action: argparse.Action, args: list[str]) -> str:
    """How the user named the flag: pflag's "--tail", or "'n' in -n" ("" if in a run
    of short flags)."""
    for arg in reversed(args):
        name = arg.partition("=")[0]
        if name in action.option_strings:
            return name if name.startswith("--") else f"'{name[1]}' in {name}"
    return ""


def _choice(message: str) -> str:
    """The word in argparse's "invalid choice: 'x' (choose from ...)"."""
    return _literal(message.removeprefix("invalid choice: ").partition(" (choose from")[0])


def _literal(text: str) -> str:
    """A value argparse printed with repr()."""
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, str) else text
