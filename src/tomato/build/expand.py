"""Docker's variable expansion and quote removal (BuildKit's shell lexer).

In the instructions Docker expands (ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER
VOLUME WORKDIR, and ARG defaults) a word is read as a shell would, without running
anything:

    $VAR ${VAR}            the value ("" when unset)
    ${VAR:-word}           word if VAR is unset or empty, else its value
    ${VAR-word}            word if VAR is unset
    ${VAR:+word}           word if VAR is set and not empty, else ""
    ${VAR+word}            word if VAR is set
    ${VAR:?msg} ${VAR?msg} an error if VAR is empty/unset
    ${VAR#pat} ${VAR##pat} ${VAR%pat} ${VAR%%pat}   the shortest/longest prefix or
                           suffix matching the glob pattern removed
    'text'                 literal, quotes removed
    "text"                 expanded, quotes removed; \\ escapes only " $ and itself
    \\x                     x itself (the escape character may be ` by directive)

``word`` gives one string; ``words`` also splits on unquoted whitespace (and on
whitespace an unquoted expansion brings), as EXPOSE $PORTS needs.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping

from tomato.errors import InvalidArgument

_SPECIAL = frozenset("@*#?-$!0")


class ExpansionError(InvalidArgument):
    pass


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.words: list[str] = []
        self.current: list[str] = []
        self.in_word = False

    # -- scanning -------------------------------------------------------------------
    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    # -- words ----------------------------------------------------------------------
    def add_char(self, ch: str) -> None:
        """An unquoted character: whitespace ends a word."""
        if ch in " \t\n":
            self.end_word()
        else:
            self.current.append(ch)
            self.in_word = True

    def add_raw(self, text: str) -> None:
        """Quoted (or escaped) text: never splits, and makes a word even when empty."""
        self.current.append(text)
        self.in_word = True

    def add_expanded(self, text: str) -> None:
        """An unquoted expansion: its whitespace splits words, as a shell's does."""
        for ch in text:
            self.add_char(ch)

    def end_word(self) -> None:
        if self.in_word:
            self.words.append("".join(self.current))
        self.current, self.in_word = [], False

    # -- the grammar ----------------------------------------------------------------
    def process(self, stop: str = "") -> str:
        """Read up to ``stop`` (consumed) or the end; the expanded text."""
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                if stop:
                    raise ExpansionError("syntax error: missing '}'")
                break
            if stop and ch == stop:
                self.next()
                break
            if ch == "'":
                text = self.single_quoted()
                out.append(text)
                self.add_raw(text)
            elif ch == '"':
                text = self.double_quoted()
                out.append(text)
                self.add_raw(text)
            elif ch == "$":
                text = self.dollar()
                out.append(text)
                self.add_expanded(text)
            else:
                self.next()
                if ch == self.escape:
                    nxt = self.next()
                    if not nxt:
                        break  # an escape at the very end is dropped
                    out.append(nxt)
                    self.add_raw(nxt)
                else:
                    out.append(ch)
                    self.add_char(ch)
        return "".join(out)

    def single_quoted(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise ExpansionError("unexpected end of statement while looking for "
                                     "matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quoted(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise ExpansionError("unexpected end of statement while looking for "
                                     "matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape:
                nxt = self.peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                break
            if not out and ch.isdigit():
                while self.peek().isdigit():
                    out.append(self.next())
                return "".join(out)
            if not out and ch in _SPECIAL:
                return self.next()
            if not (ch.isalnum() or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def dollar(self) -> str:
        self.next()  # $
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.next()  # {
        ch = self.peek()
        if not ch:
            raise ExpansionError("syntax error: missing '}'")
        if ch in "{}:":
            raise ExpansionError("syntax error: bad substitution")
        name = self.name()
        if not name:
            raise ExpansionError("syntax error: bad substitution")
        op = self.next()
        value = self.env.get(name)
        if op == "}":
            return value or ""
        if op == ":":
            mod = self.next()
            word = self.nested()
            if mod == "-":
                return word if not value else value
            if mod == "+":
                return word if value else ""
            if mod == "?":
                if not value:
                    raise ExpansionError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            raise ExpansionError(f"unsupported modifier ({mod}) in substitution")
        if op in "-+?":
            word = self.nested()
            if op == "-":
                return word if value is None else value
            if op == "+":
                return word if value is not None else ""
            if value is None:
                raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
            return value
        if op in "#%":
            longest = self.peek() == op
            if longest:
                self.next()
            pattern = self.nested()
            return _trim(value or "", pattern, prefix=op == "#", longest=longest)
        raise ExpansionError(f"unsupported modifier ({op or 'end'}) in substitution")

    def nested(self) -> str:
        """The word of ${VAR:-word}: itself expanded, read up to its closing brace."""
        sub = _Lexer(self.text, self.env, self.escape)
        sub.pos = self.pos
        text = sub.process(stop="}")
        self.pos = sub.pos
        return text


def _trim(value: str, pattern: str, prefix: bool, longest: bool) -> str:
    rx = re.compile(fnmatch.translate(pattern), re.S)
    cuts = range(len(value), -1, -1) if longest else range(len(value) + 1)
    for n in cuts:
        if prefix and rx.match(value[:n]):
            return value[n:]
        if not prefix and rx.match(value[len(value) - n:]):
            return value[:len(value) - n]
    return value


def word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """``text`` expanded with its quotes removed, as one string."""
    return _Lexer(text, env, escape).process()


def words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """``text`` expanded and split into words as a shell would split it."""
    lexer = _Lexer(text, env, escape)
    lexer.process()
    lexer.end_word()
    return lexer.words


__all__ = ["ExpansionError", "word", "words"]
