""".dockerignore: which paths of the build context the build never sees.

Docker's rules (moby/patternmatcher and its ignorefile reader):

- one pattern a line; blank lines and lines starting with ``#`` are skipped;
  surrounding whitespace is trimmed, a leading ``/`` dropped, the rest cleaned
  (``a/./b/`` is ``a/b``);
- Go's ``filepath.Match`` syntax (``*`` and ``?`` never cross ``/``, ``[a-z]``,
  ``\\`` escapes) plus ``**``, any number of directories (none too);
- a pattern that matches a directory excludes everything below it;
- ``!pattern`` brings back what an earlier pattern excluded; the last pattern that
  matches a path decides.

The Dockerfile and .dockerignore themselves always reach the builder (it needs
them), but COPY and ADD never see them when they are excluded.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from tomato.errors import InvalidArgument

_REGEX_SPECIALS = set(".+()|{}$")


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool  # a "!" pattern: brings paths back
    regex: re.Pattern[str]
    dirs: int  # how many "/"-separated parts the pattern has


def _clean(path: str) -> str:
    """Go's filepath.Clean for slash paths."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    text = "/".join(out)
    return ("/" + text) if rooted else (text or ".")


def _compile(pattern: str) -> re.Pattern[str]:
    rx = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                rx.append(".*" if i >= n else "(.*/)?")
                continue
            rx.append("[^/]*")
        elif ch == "?":
            rx.append("[^/]")
        elif ch in _REGEX_SPECIALS:
            rx.append("\\" + ch)
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                rx.append(re.escape(pattern[i]))
            else:
                rx.append("\\\\")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidArgument(f".dockerignore: syntax error in pattern {pattern!r}")
            body = pattern[i + 1:end]
            negate = body.startswith("^")  # Go's negation (a "!" is itself)
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\").replace("^", "\\^")
            rx.append("[" + ("^" if negate else "") + body + "]")
            i = end
        else:
            rx.append(re.escape(ch))
        i += 1
    rx.append("$")
    try:
        return re.compile("".join(rx), re.S)
    except re.error as err:
        raise InvalidArgument(f".dockerignore: syntax error in pattern {pattern!r}: {err}") \
            from None


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file, normalised as Docker's reader does."""
    out = []
    for line in text.removeprefix("\ufeff").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = _clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append(("!" + pattern) if invert else pattern)
    return out


class Matcher:
    """The compiled patterns; ``excluded(path)`` for a context-relative slash path."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for text in patterns:
            exclusion = text.startswith("!")
            body = text[1:] if exclusion else text
            if exclusion and not body:
                raise InvalidArgument('.dockerignore: illegal exclusion pattern: "!"')
            body = _clean(body)
            self.patterns.append(Pattern(text, exclusion, _compile(body),
                                         len(body.split("/"))))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (or a directory above it) is excluded."""
        path = _clean(path)
        if path == ".":
            return False
        parts = path.split("/")
        parents = ["/".join(parts[:i + 1]) for i in range(len(parts) - 1)]
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue  # only an exclusion can change a match, only a pattern a miss
            hit = bool(p.regex.match(path)) or any(p.regex.match(d) for d in parents)
            if hit:
                matched = not p.exclusion
        return matched

    def may_reinclude_below(self, directory: str) -> bool:
        """Whether some ``!`` pattern could bring back a path below an excluded
        ``directory`` (else the walk may skip it whole)."""
        return self.has_exclusions


def matcher_from(text: str | None) -> Matcher:
    return Matcher(read_patterns(text or ""))


def is_forbidden(path: str) -> bool:
    """A source path that climbs out of the context (``../x``)."""
    norm = posixpath.normpath(path) if path else "."
    return norm == ".." or norm.startswith("../")


__all__ = ["Matcher", "matcher_from", "read_patterns", "is_forbidden"]
