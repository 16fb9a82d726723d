"""How a group of the ``--explain`` summary is laid out: ``[label]`` and what was done
(64-hex ids cut to 12), then ``$ `` lines of shell commands doing the same, joined
with ``&&``; text wrapped at "; ", shell at " && ", within a readable width.
"""

from __future__ import annotations

LABEL = 11       # width of "[security] "
WIDTH = 130      # lines are wrapped at this (text at "; ", shell at " && ")
LONGEST = 160    # ...and a single text part longer than that is cut with "…"


def short(text: str) -> str:
    """64-hex ids (containers, layers) cut to Docker's 12."""
    out, i, n = [], 0, len(text)
    while i < n:
        j = i
        while j < n and text[j] in "0123456789abcdef":
            j += 1
        if j - i == 64:
            out.append(text[i:i + 12])
        elif j > i:
            out.append(text[i:j])
        else:
            out.append(text[i])
            j = i + 1
        i = j
    return "".join(out)


def _cut(line: str) -> str:
    return line if len(line) <= LONGEST else line[:LONGEST - 1] + "…"


class Group:
    """One group's lines: text parts (wrapped at "; ") and blocks of shell commands."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.texts: list[list[str]] = []   # paragraphs of parts
        self.blocks: list[list[str]] = []  # each: commands joined with " && "

    def text(self, *parts: str) -> None:
        """A paragraph: its parts joined with "; " (a new paragraph starts a new line)."""
        kept = [short(p) for p in parts if p]
        if kept:
            self.texts.append(kept)

    def shell(self, *commands: str, exact: bool = False) -> None:
        """Commands joined with ``&&``; ``exact`` keeps their full ids (a path one may
        paste, as cgroup get's files), else 64-hex ids are cut to 12."""
        kept = [c if exact else short(c) for c in commands if c]
        if kept:
            self.blocks.append(kept)

    def lines(self) -> list[str]:
        if not self.texts and not self.blocks:
            return []
        out: list[str] = []
        for parts in self.texts or [[""]]:
            out += _wrap(parts, "; ", WIDTH - LABEL)
        first = f"[{self.label}]".ljust(LABEL)
        lines = [_cut((first if i == 0 else " " * LABEL) + t) for i, t in enumerate(out)]
        for block in self.blocks:
            wrapped = _wrap(block, " && ", WIDTH - LABEL - 2)
            lines += [" " * LABEL + "$ " + t if len(block) == 1 else _cut(" " * LABEL + "$ " + t)
                      for t in wrapped]
        return lines


def _wrap(parts: list[str], sep: str, width: int) -> list[str]:
    lines: list[str] = []
    cur = ""
    for p in parts:
        if cur and len(cur) + len(sep) + len(p) > width:
            lines.append(cur + sep.rstrip())
            cur = p
        else:
            cur = cur + sep + p if cur else p
    return lines + [cur]


def tail(path: str) -> str:
    """``…/last/two`` of each ``:``-separated path: enough to tell layers apart."""
    out = []
    for p in path.split(":"):
        bits = p.rstrip("/").split("/")
        out.append(p if len(bits) <= 3 else "…/" + "/".join(bits[-2:]))
    return ":".join(out)


__all__ = ["LABEL", "LONGEST", "WIDTH", "Group", "short", "tail"]
