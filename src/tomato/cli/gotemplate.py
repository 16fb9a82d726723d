"""Go's text/template, as `docker ... --format` uses it, over JSON-shaped values.

Docker's CLI renders ``--format`` on the client with Go's text/template and a few
functions of its own (json, split, join, title, lower, upper, pad, truncate).  This is
that language for the forms people write: fields (``.State.Pid``, ``$.Name``,
``(index .A 0).B``), pipelines (``.Name | printf "%q"``), variables (``$x := ...``),
``if``/``else if``/``else``, ``range`` (with ``$i, $v :=``, ``else``, ``break``,
``continue``), ``with``, comments, ``{{-``/``-}}`` trimming, and Go's builtins (and, or,
not, len, index, slice, print, printf, println, eq, ne, lt, le, gt, ge, html, js,
urlquery).  ``define``/``template``/``block`` are refused at parse time.

Values print as Go's ``fmt`` prints them: ``true`` not ``True``, ``map[a:b]`` (keys
sorted), ``[a b]``, ``<no value>`` for a missing key or a JSON null, ``<nil>`` inside a
map or slice, ``1e+06`` for a float.  Errors read as Go's do
(``template: :1:8: executing "" at <.A.B>: nil pointer evaluating interface {}.B``);
a parse error is a TemplateError raised before any output.
"""

from __future__ import annotations

import json
import re

from tomato.cli.govalues import (
    BUILTINS,
    DOCKER_FUNCS,
    MISSING,
    CallError,
    StrictFields,
    go_str,
    truth,
    type_name,
)
from tomato.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class TemplateError(InvalidArgument):
    """A template that cannot be parsed or executed; the message is Go's."""


class TemplateParseError(TemplateError):
    """Refused before anything was executed."""

# -- lexing -----------------------------------------------------------------------------
_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][+-]?\d+)?))
  | (?P<field>\.[A-Za-z_][A-Za-z_0-9]*)
  | (?P<variable>\$[A-Za-z_0-9]*)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_][A-Za-z_0-9]*)
""", re.VERBOSE)

_KEYWORDS = ("if", "else", "end", "range", "with", "define", "template", "block",
             "break", "continue", "nil", "true", "false")


class _Tok:
    __slots__ = ("kind", "text", "spaced", "col")

    def __init__(self, kind: str, text: str, spaced: bool, col: int = 0) -> None:
        self.kind, self.text, self.spaced, self.col = kind, text, spaced, col


def _lex_action(body: str, line: int, col0: int = 0) -> list[_Tok]:
    """An action's tokens; ``col0``: where the body starts in its line (Go's errors name
    the column of what failed)."""
    toks: list[_Tok] = []
    pos = 0
    spaced = True
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None:
            raise TemplateError(f"template: :{line}: unexpected {body[pos]!r} in command")
        kind = m.lastgroup or ""
        pos = m.end()
        if kind == "space":
            spaced = True
            continue
        toks.append(_Tok(kind, m.group(), spaced, col0 + m.start()))
        spaced = False
    return toks


# -- parsing ----------------------------------------------------------------------------
# Nodes are tuples: ("text", s) | ("action", line, pipe, source) | ("if"|"with", line, pipe,
# body, else) | ("range", line, pipe, body, else) | ("break",) | ("continue",)
# A pipe is (decl_vars, is_assign, [command]); a command a list of operands; an operand
# ("field", [names]) | ("var", name, [names]) | ("dot",) | ("const", v) | ("ident", name)
# | ("paren", pipe, [names]).

class Template:
    def __init__(self, text: str) -> None:
        self.source = text
        try:
            self.nodes = _Parser(text).parse()
        except TemplateError as err:
            raise TemplateParseError(str(err)) from None

    def execute(self, data: Any, funcs: dict[str, Callable[..., Any]] | None = None,
                missing_key_error: bool = False) -> str:
        """The output for ``data``; ``missing_key_error``: Go's ``missingkey=error``
        (docker's `inspect -f`), else a missing key is ``<no value>``."""
        out: list[str] = []
        state = _State(self, {**BUILTINS, **DOCKER_FUNCS, **(funcs or {})})
        state.missing_key_error = missing_key_error
        state.vars = [("$", data)]
        state.walk(self.nodes, data, out)
        return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.items = self._split(text)
        self.scope = ["$"]  # the variables declared so far, innermost last
        self.i = 0

    def _split(self, text: str) -> list[tuple[str, Any, int]]:
        """Text and actions (with trimming applied): ("text", s, line) | ("act", toks, line)."""
        items: list[tuple[str, Any, int]] = []
        pos = 0
        while True:
            start = text.find("{{", pos)
            if start < 0:
                items.append(("text", text[pos:], text.count("\n", 0, pos) + 1))
                break
            chunk = text[pos:start]
            trim_left = text.startswith("{{- ", start) or text.startswith("{{-\t", start) \
                or text.startswith("{{-\n", start)
            if trim_left:
                chunk = chunk.rstrip(" \t\r\n")
            items.append(("text", chunk, text.count("\n", 0, pos) + 1))
            line = text.count("\n", 0, start) + 1
            inner = start + (3 if trim_left else 2)
            if text.startswith("/*", inner + 1 if trim_left else inner):
                cstart = text.find("/*", inner)
                cend = text.find("*/", cstart + 2)
                if cend < 0:
                    raise TemplateError(f"template: :{line}: unclosed comment")
                after = cend + 2
                trim_right = text.startswith(" -}}", after)
                if trim_right:
                    after += 2
                if not text.startswith("}}", after):
                    raise TemplateError(f"template: :{line}: comment ends before closing "
                                        "delimiter")
                pos = after + 2
                if trim_right:
                    pos = len(text) - len(text[pos:].lstrip(" \t\r\n"))
                continue
            end = self._action_end(text, inner, line)
            body = text[inner:end]
            trim_right = body.endswith((" -", "\t-", "\n-"))
            if trim_right:
                body = body[:-1]
            col0 = inner - (text.rfind("\n", 0, inner) + 1)
            items.append(("act", _lex_action(body, line, col0), line))
            pos = end + 2
            if trim_right:
                pos = len(text) - len(text[pos:].lstrip(" \t\r\n"))
        return [it for it in items if not (it[0] == "text" and it[1] == "")]

    @staticmethod
    def _action_end(text: str, pos: int, line: int) -> int:
        """Where the action's ``}}`` is, skipping quoted strings."""
        i = pos
        while i < len(text):
            ch = text[i]
            if text.startswith("}}", i):
                return i
            if ch in "\"'`":
                close = text.find(ch, i + 1) if ch == "`" else i + 1
                if ch != "`":
                    while close < len(text) and text[close] != ch:
                        if text[close] == "\n":
                            raise TemplateError(f"template: :{line}: unterminated quoted "
                                                "string")
                        close += 2 if text[close] == "\\" else 1
                if close < 0 or close >= len(text):
                    raise TemplateError(f"template: :{line}: unterminated quoted string")
                i = close + 1
                continue
            i += 1
        raise TemplateError(f"template: :{line}: unclosed action")

    def parse(self) -> list[Any]:
        nodes, stop = self._list(top=True)
        if stop is not None:
            raise TemplateError(f"template: :{stop[2]}: unexpected {{{{{stop[0]}}}}}")
        return nodes

    def _list(self, top: bool = False) -> tuple[list[Any], Any]:
        """Nodes up to an ``else`` or ``end`` (returned as the stop: (word, toks, line))."""
        nodes: list[Any] = []
        while self.i < len(self.items):
            kind, value, line = self.items[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(("text", value))
                continue
            toks: list[_Tok] = value
            if not toks:
                raise TemplateError(f"template: :{line}: missing value for command")
            word = toks[0].text if toks[0].kind == "ident" else ""
            if word in ("end", "else"):
                if top:
                    raise TemplateError(f"template: :{line}: unexpected {{{{{word}}}}}")
                return nodes, (word, toks[1:], line)
            if word in ("if", "with", "range"):
                nodes.append(self._control(word, toks[1:], line))
            elif word in ("break", "continue"):
                nodes.append((word,))
            elif word in ("define", "template", "block"):
                raise TemplateError(f"template: :{line}: {{{{{word}}}}} is not supported "
                                    "in --format")
            else:
                pipe = _PipeParser(toks, line, self.scope).pipe(decl_ok=True)
                nodes.append(("action", line, pipe, _source(toks)))
        if top:
            return nodes, None
        raise TemplateError(f"template: :{self.items[-1][2]}: unexpected EOF")

    def _control(self, word: str, toks: list[_Tok], line: int) -> Any:
        mark = len(self.scope)  # a block's variables end with it
        pipe = _PipeParser(toks, line, self.scope).pipe(decl_ok=True,
                                                        range_decl=word == "range")
        body, stop = self._list()
        else_nodes: list[Any] | None = None
        if stop[0] == "else":
            rest = stop[1]
            if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with"):
                # {{else if x}}: a nested if ending at the same {{end}}
                else_nodes = [self._chained(rest[0].text, rest[1:], stop[2])]
            else:
                if rest:
                    raise TemplateError(f"template: :{stop[2]}: unexpected "
                                        f"{rest[0].text!r} in else")
                else_nodes, stop = self._list()
                if stop[0] != "end":
                    raise TemplateError(f"template: :{stop[2]}: expected end; found "
                                        "{{else}}")
        elif stop[1]:
            raise TemplateError(f"template: :{stop[2]}: unexpected {stop[1][0].text!r} "
                                "in end")
        del self.scope[mark:]
        return (word, line, pipe, body, else_nodes)

    def _chained(self, word: str, toks: list[_Tok], line: int) -> Any:
        return self._control(word, toks, line)


def _source(toks: list[_Tok]) -> str:
    return "".join((" " if t.spaced and i else "") + t.text for i, t in enumerate(toks))


class _PipeParser:
    def __init__(self, toks: list[_Tok], line: int, scope: list[str]) -> None:
        self.scope = scope
        self.toks = toks
        self.line = line
        self.i = 0

    def err(self, text: str) -> TemplateError:
        return TemplateError(f"template: :{self.line}: {text}")

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def pipe(self, decl_ok: bool = False, range_decl: bool = False,
             closing: str | None = None) -> Any:
        decl: list[str] = []
        assign = False
        if decl_ok:
            j = self.i
            names = []
            while j < len(self.toks) and self.toks[j].kind == "variable":
                names.append(self.toks[j].text)
                j += 1
                if j < len(self.toks) and self.toks[j].kind == "comma" and range_decl:
                    j += 1
                    continue
                break
            if names and j < len(self.toks) and self.toks[j].kind in ("declare", "assign"):
                if len(names) > (2 if range_decl else 1):
                    raise self.err("too many declarations")
                decl, assign = names, self.toks[j].kind == "assign"
                if assign:
                    for name in names:
                        self.known(name)
                self.i = j + 1
        commands = []
        while True:
            commands.append(self.command(closing))
            tok = self.peek()
            if tok is None or (closing and tok.kind == closing):
                break
            if tok.kind == "pipe":
                self.i += 1
                continue
            raise self.err(f"unexpected {tok.text!r} in operand")
        if not assign:
            self.scope.extend(decl)  # visible after this action (Go: after the pipeline)
        return (decl, assign, commands)

    def known(self, name: str) -> str:
        if name not in self.scope:
            raise self.err(f"undefined variable {name!r}".replace("'", '"'))
        return name

    def command(self, closing: str | None) -> list[Any]:
        operands: list[Any] = []
        while True:
            tok = self.peek()
            if tok is None or tok.kind == "pipe" or (closing and tok.kind == closing):
                break
            if operands and not tok.spaced and tok.kind != "field":
                raise self.err(f"unexpected {tok.text!r} in operand")
            operands.append(self.operand())
        if not operands:
            raise self.err("missing value for command")
        return operands

    def operand(self) -> Any:
        tok = self.toks[self.i]
        self.i += 1
        kind, text = tok.kind, tok.text
        node: Any
        if kind == "field":
            node = ("field", [(text[1:], tok.col)])
        elif kind == "dot":
            node = ("dot",)
        elif kind == "variable":
            node = ("var", self.known(text), [])
        elif kind == "string":
            node = ("const", _unquote(text, self.line))
        elif kind == "raw":
            node = ("const", text[1:-1])
        elif kind == "char":
            node = ("const", ord(_unquote('"' + text[1:-1] + '"', self.line)))
        elif kind == "number":
            node = ("const", _number(text, self.line))
        elif kind == "ident":
            if text in ("true", "false"):
                node = ("const", text == "true")
            elif text == "nil":
                node = ("const", None)
            elif text in _KEYWORDS:
                raise self.err(f"unexpected <{text}> in command")
            else:
                node = ("ident", text, tok.col)
        elif kind == "lparen":
            inner = self.pipe(closing="rparen")
            if self.peek() is None:
                raise self.err("unclosed left paren")
            self.i += 1
            node = ("paren", inner, [])
        else:
            raise self.err(f"unexpected {text!r} in operand")
        while (nxt := self.peek()) is not None and nxt.kind == "field" and not nxt.spaced:
            field = (self.toks[self.i].text[1:], self.toks[self.i].col)
            self.i += 1
            if node[0] == "field":
                node[1].append(field)
            elif node[0] in ("var", "paren"):
                node[-1].append(field)
            elif node[0] == "dot":
                node = ("field", [field])
            else:
                raise self.err(f"unexpected . after term {text!r}")
        return node


def _unquote(text: str, line: int) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        except (UnicodeError, ValueError) as err:
            raise TemplateError(f"template: :{line}: bad string {text}") from err
    return str(value)


def _number(text: str, line: int) -> int | float:
    clean = text.replace("_", "")
    try:
        if clean.lower().lstrip("+-").startswith("0x"):
            return int(clean, 16)
        if re.fullmatch(r"[+-]?\d+", clean):
            return int(clean)
        return float(clean)
    except ValueError as err:
        raise TemplateError(f"template: :{line}: bad number syntax: {text!r}") from err


# -- execution --------------------------------------------------------------------------
class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    def __init__(self, template: Template, funcs: dict[str, Callable[..., Any]]) -> None:
        self.template = template
        self.funcs = funcs
        self.vars: list[tuple[str, Any]] = []
        self.line = 1
        self.col = -1  # the column of what is being evaluated (-1: not known)
        self.at = ""
        self.missing_key_error = False

    def fail(self, text: str) -> TemplateError:
        where = f"{self.line}:{self.col}" if self.col >= 0 else str(self.line)
        return TemplateError(f'template: :{where}: executing "" at <{self.at}>: {text}')

    def walk(self, nodes: list[Any], dot: Any, out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            self.col = -1
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                _, self.line, pipe, self.at = node
                value = self.pipeline(pipe, dot)
                if not pipe[0]:  # a declaration prints nothing
                    out.append(go_str(value))
            elif kind in ("if", "with"):
                _, self.line, pipe, body, other = node
                mark = len(self.vars)
                value = self.pipeline(pipe, dot)
                if truth(value):
                    self.walk(body, value if kind == "with" else dot, out)
                elif other is not None:
                    self.walk(other, dot, out)
                del self.vars[mark:]
            elif kind == "range":
                self.range(node, dot, out)
            elif kind == "break":
                raise _Break
            elif kind == "continue":
                raise _Continue

    def range(self, node: Any, dot: Any, out: list[str]) -> None:
        _, self.line, pipe, body, other = node
        mark = len(self.vars)
        decl, assign, commands = pipe
        value = self.pipeline(([], False, commands), dot)
        if isinstance(value, dict):
            pairs = [(k, value[k]) for k in sorted(value, key=str)]
        elif isinstance(value, (list, tuple)):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            pairs = []
        else:
            raise self.fail(f"range can't iterate over {go_str(value)}")
        for key, item in pairs:
            del self.vars[mark:]
            if len(decl) == 1:
                self._set(decl[0], item, assign)
            elif len(decl) == 2:
                self._set(decl[0], key, assign)
                self._set(decl[1], item, assign)
            try:
                self.walk(body, item, out)
            except _Break:
                break
            except _Continue:
                continue
        del self.vars[mark:]
        if not pairs and other is not None:
            self.walk(other, dot, out)

    def _set(self, name: str, value: Any, assign: bool) -> None:
        if assign:
            for i in range(len(self.vars) - 1, -1, -1):
                if self.vars[i][0] == name:
                    self.vars[i] = (name, value)
                    return
            raise self.fail(f"undefined variable: {name}")
        self.vars.append((name, value))

    def variable(self, name: str) -> Any:
        for var, value in reversed(self.vars):
            if var == name:
                return value
        raise self.fail(f"undefined variable: {name}")

    def pipeline(self, pipe: Any, dot: Any) -> Any:
        decl, assign, commands = pipe
        value: Any = MISSING
        first = True
        for command in commands:
            value = self.command(command, dot, None if first else value, not first)
            first = False
        if value is None:
            value = MISSING  # an interface holding nil is no value (text/template)
        for name in decl:
            self._set(name, value, assign)
        return value

    def command(self, operands: list[Any], dot: Any, piped: Any, has_piped: bool) -> Any:
        head = operands[0]
        if head[0] == "ident":
            self.col = head[2]
            fn = self.funcs.get(head[1])
            if fn is None:
                raise TemplateError(f'template: :{self.line}: function "{head[1]}" not '
                                    "defined")
            if head[1] in ("and", "or"):
                return self.logic(head[1], operands[1:], dot, piped, has_piped)
            args = [self.arg(op, dot) for op in operands[1:]]
            if has_piped:
                args.append(piped)
            self.col = head[2]  # Go names the function's column
            try:
                return fn(*[None if a is MISSING else a for a in args])
            except TemplateError:
                raise
            except CallError as err:
                raise self.fail(f"error calling {head[1]}: {err}") from None
            except TypeError as err:
                if err.__traceback__ is None or err.__traceback__.tb_next is not None:
                    raise  # a bug inside the function, not the caller's arguments
                raise self.fail(f"wrong number of args for {head[1]}: got {len(args)}") \
                    from None
        target = self.arg(head, dot)
        what = head[1][-1][0] if head[0] == "field" and head[1] else "value"
        args = [self.arg(op, dot) for op in operands[1:]] + ([piped] if has_piped else [])
        if callable(target):  # a context's method: ps's {{.Label "com.example.key"}}
            return self.method(what, target, args)
        if args:
            raise self.fail(f"{what} is not a method but has arguments")
        return target

    def method(self, name: str, fn: Callable[..., Any], args: list[Any]) -> Any:
        want = getattr(fn, "arity", 1)
        if len(args) != want:
            raise self.fail(f"wrong number of args for {name}: want {want} got {len(args)}")
        if not all(isinstance(a, str) for a in args):
            raise self.fail(f"wrong type for value; expected string; got "
                            f"{type_name(next(a for a in args if not isinstance(a, str)))}")
        return fn(*args)

    def logic(self, name: str, operands: list[Any], dot: Any, piped: Any,
              has_piped: bool) -> Any:
        if not operands and not has_piped:
            raise self.fail(f"wrong number of args for {name}: want at least 1 got 0")
        value: Any = MISSING
        for op in operands:
            value = self.arg(op, dot)
            if truth(value) == (name == "or"):
                return value
        if has_piped:
            value = piped
        return value

    def arg(self, op: Any, dot: Any) -> Any:
        kind = op[0]
        if kind == "const":
            return op[1]
        if kind == "dot":
            return dot
        if kind == "field":  # Go's column of a chain: its second field's
            names = op[1]
            self.col = names[1][1] if len(names) > 1 else names[0][1]
            return self.fields(dot, names)
        if kind == "var":
            if op[2]:
                self.col = op[2][0][1]
            return self.fields(self.variable(op[1]), op[2])
        if kind == "paren":
            return self.fields(self.pipeline(op[1], dot), op[2])
        if kind == "ident":
            fn = self.funcs.get(op[1])
            if fn is None:
                raise TemplateError(f'template: :{self.line}: function "{op[1]}" not '
                                    "defined")
            return self.command([op], dot, None, False)
        raise self.fail("bad operand")

    def fields(self, value: Any, names: list[tuple[str, int]]) -> Any:
        in_map = False  # a value read from a map is Go's interface {} (docker's raw mode)
        for name, _col in names:
            if value is MISSING:
                return MISSING
            if isinstance(value, StrictFields):
                if name not in value:
                    raise self.fail(f"can't evaluate field {name} in type {value.type_name}")
                value, in_map = value[name], False
            elif isinstance(value, dict):
                if name not in value and self.missing_key_error:
                    raise self.fail(f'map has no entry for key "{name}"')
                value, in_map = value.get(name, MISSING), True
            elif value is None:
                raise self.fail(f"nil pointer evaluating interface {{}}.{name}")
            else:
                kind = "interface {}" if in_map else type_name(value)
                raise self.fail(f"can't evaluate field {name} in type {kind}")
        return value


def render(text: str, data: Any) -> str:
    """Parse and execute ``text`` once (TemplateError on a bad template)."""
    return Template(text).execute(data)
