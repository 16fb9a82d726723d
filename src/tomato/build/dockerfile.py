"""The Dockerfile's text as instructions: parser directives, comments, line
continuations and heredocs, as BuildKit's parser reads them.

    # syntax=docker/dockerfile:1      directives: only at the very top, before any
    # escape=`                        comment, blank line or instruction
    RUN echo a \\                      a line ending in the escape character goes on
        b                             (comments and blank lines inside are skipped)
    COPY <<EOF /etc/motd              heredocs (RUN, COPY, ADD): the lines up to EOF;
    hello                             <<-EOF strips leading tabs, <<"EOF" is not expanded
    EOF

Each logical line becomes a ``Line``: its keyword (upper case), the ``--flag``
words that lead its arguments, the rest of its text, and its heredocs.  What the
words mean is instructions.py's business; this module only cuts the text, and
every error names the file and the line (``Dockerfile:7: ...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tomato.errors import InvalidArgument

_DIRECTIVE = re.compile(r"^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$")
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
#: a heredoc marker: <<WORD, <<-WORD, <<"WORD", <<'WORD'
_HEREDOC = re.compile(r"<<(-?)([\"']?)([a-zA-Z_][a-zA-Z0-9_]*)\2")
HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
MAX_DOCKERFILE = 16 << 20  # a Dockerfile is read whole: past this it is refused


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    expand: bool  # the marker was not quoted: $VAR in it is expanded
    strip_tabs: bool  # <<-


@dataclass(frozen=True)
class Line:
    """One instruction as written (``lineno``: its first line, 1-based)."""

    lineno: int
    end: int
    keyword: str
    flags: tuple[str, ...]
    rest: str
    original: str
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True)
class Dockerfile:
    name: str
    lines: tuple[Line, ...]
    escape: str = "\\"
    syntax: str = ""
    warnings: tuple[str, ...] = field(default=())


class DockerfileError(InvalidArgument):
    """A Dockerfile that cannot be read; the message names the file and line."""


def _err(name: str, lineno: int, message: str) -> DockerfileError:
    return DockerfileError(f"{name}:{lineno}: {message}")


def parse(text: str | bytes, name: str = "Dockerfile") -> Dockerfile:
    """The Dockerfile's logical lines; DockerfileError for what cannot be parsed."""
    if isinstance(text, bytes):
        if len(text) > MAX_DOCKERFILE:
            raise DockerfileError(f"{name}: the Dockerfile is larger than "
                                  f"{MAX_DOCKERFILE >> 20} MiB")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DockerfileError(f"{name}: the Dockerfile is not UTF-8 text "
                                  f"(byte {err.start})") from None
    text = text.removeprefix("\ufeff")
    if "\0" in text:
        raise DockerfileError(f"{name}: the Dockerfile holds a NUL byte: not a text file")
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    raw = [r.removesuffix("\r") for r in raw]
    directives, first = _directives(raw, name)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise _err(name, 1, f"invalid escape token '{escape}' does not match ` or \\")
    warnings: list[str] = []
    if "syntax" in directives:
        warnings.append(f"the syntax directive ({directives['syntax']}) is ignored: tomato "
                        "builds with its own Dockerfile frontend")
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    lines: list[Line] = []
    i = first
    while i < len(raw):
        text_line = raw[i]
        stripped = text_line.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        logical = stripped
        empty_continuation = False
        while continuation.search(logical):
            logical = continuation.sub("", logical)
            while i + 1 < len(raw):  # the next line that is not a comment or blank
                i += 1
                nxt = raw[i]
                if nxt.lstrip(" \t").startswith("#"):
                    continue
                if not nxt.strip():
                    empty_continuation = True
                    continue
                logical += nxt
                break
            else:
                break  # the file ends on a continuation
        i += 1
        if empty_continuation:
            warnings.append(f"{name}:{start + 1}: empty continuation lines will become "
                            "errors in a future release")
        m = re.match(r"(\S+)[ \t]*(.*)", logical.strip(), re.S)
        assert m is not None
        keyword, args = m.group(1).upper(), m.group(2)
        heredocs: list[Heredoc] = []
        if keyword in HEREDOC_KEYWORDS:
            i, heredocs = _read_heredocs(raw, i, args, name, start + 1)
        flags, rest = split_flags(args.strip(), escape)
        lines.append(Line(start + 1, i, keyword, flags, rest, logical.strip(),
                          tuple(heredocs)))
    if not lines:
        raise DockerfileError(f"{name}: the Dockerfile has no instructions")
    return Dockerfile(name, tuple(lines), escape, directives.get("syntax", ""),
                      tuple(warnings))


def _directives(raw: list[str], name: str) -> tuple[dict[str, str], int]:
    """The parser directives at the top, and the index of the first line after them."""
    found: dict[str, str] = {}
    for i, line in enumerate(raw):
        m = _DIRECTIVE.match(line.strip())
        if not m:
            return found, i
        key = m.group(1).lower()
        if key not in _KNOWN_DIRECTIVES:
            return found, i  # an ordinary comment: the directives are over
        if key in found:
            raise _err(name, i + 1, f"only one {key} parser directive can be used")
        found[key] = m.group(2)
    return found, len(raw)


def _read_heredocs(raw: list[str], i: int, args: str, name: str,
                   lineno: int) -> tuple[int, list[Heredoc]]:
    """The bodies of the heredocs ``args`` opens, read from line ``i`` on, in order."""
    out = []
    for m in _HEREDOC.finditer(args):
        strip_tabs, quote, word = m.group(1) == "-", m.group(2), m.group(3)
        body: list[str] = []
        while True:
            if i >= len(raw):
                raise _err(name, lineno, f"unterminated heredoc: no line {word!r} ends it")
            line = raw[i]
            i += 1
            if strip_tabs:
                line = line.lstrip("\t")
            if line == word:
                break
            body.append(line + "\n")
        out.append(Heredoc(word, "".join(body), expand=not quote, strip_tabs=strip_tabs))
    return i, out


def split_flags(args: str, escape: str = "\\") -> tuple[tuple[str, ...], str]:
    """The leading ``--name[=value]`` words of an instruction and the text after them."""
    flags = []
    rest = args
    while rest.startswith("--"):
        word, end = _first_word(rest, escape)
        if word == "--":
            rest = rest[end:].lstrip()
            break
        flags.append(word)
        rest = rest[end:].lstrip()
    return tuple(flags), rest


def _first_word(text: str, escape: str) -> tuple[str, int]:
    """The first whitespace-delimited word of ``text`` (quotes kept together and removed,
    as BuildKit's flag values are) and where it ends."""
    out = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote == '"' and i + 1 < len(text):
                i += 1
                out.append(text[i])
            else:
                out.append(ch)
        elif ch in " \t":
            break
        elif ch in "'\"":
            quote = ch
        elif ch == escape and i + 1 < len(text):
            i += 1
            out.append(text[i])
        else:
            out.append(ch)
        i += 1
    return "".join(out), i


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Whitespace-delimited words, quotes and escapes kept as written (BuildKit's
    parseWords: ENV and LABEL pairs are cut so, and expanded afterwards)."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    blank = True
    i = 0
    while i < len(text):
        ch = text[i]
        if blank:
            if ch in " \t":
                i += 1
                continue
            blank = False
        if not quote and ch in " \t":
            words.append("".join(word))
            word, blank = [], True
            i += 1
            continue
        if ch == escape and quote != "'" and i + 1 < len(text):
            word.append(ch + text[i + 1])
            i += 2
            continue
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote = ch
        word.append(ch)
        i += 1
    if word:
        words.append("".join(word))
    return words


__all__ = ["Dockerfile", "DockerfileError", "Heredoc", "Line", "parse", "split_flags",
           "split_words", "HEREDOC_KEYWORDS"]
