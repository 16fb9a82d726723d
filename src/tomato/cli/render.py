"""How `tomato` prints what the engine returns: docker's tables, sizes, dates, Go
templates (``--format``) and pull/push progress.  Shared by every command module;
nothing here knows a command."""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any


def human_size(n: float, digits: int = 3) -> str:
    """docker's units.HumanSizeWithPrecision: decimal units, 3 significant digits (4 is
    units.HumanSize, docker's VirtualSize)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.{digits}g}{units[i]}"


def created_ts(created: str | None) -> float | None:
    """An image's RFC 3339 ``created`` (nanoseconds and all) as a Unix time, or None."""
    if not created:
        return None
    import re
    from datetime import datetime

    text = re.sub(r"(\.\d{6})\d+", r"\1", created.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def go_time(stamp: float) -> str:
    """Go's time.String() of a Unix time in UTC, as docker's CreatedAt columns print it."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(stamp))


def render_template(template: str, obj: Any) -> str:
    """One item through a Go template (``inspect -f``): Go's text/template semantics
    (cli/gotemplate.py), ``\\t`` and ``\\n`` read as docker reads them."""
    from tomato.cli.gotemplate import Template

    return Template(_docker_escapes(template)).execute(obj)


def _docker_escapes(text: str) -> str:
    return text.replace("\\t", "\t").replace("\\n", "\n")


def format_rows(fmt: str, rows: list[Any], headers: dict[str, Any]) -> str:
    """docker's formatter.Context: ``json`` (one object a line), ``table TEMPLATE`` (a
    header row, then columns aligned by Go's tabwriter) or a bare template (one line an
    item).  ``headers`` names each field's column (``ID`` -> ``CONTAINER ID``); the header
    row runs the same template over them with json/lower/... passing names through.
    Raises TemplateError before printing anything."""
    from tomato.cli.gotemplate import Template
    from tomato.cli.govalues import HEADER_FUNCS, go_json

    fmt = fmt.strip(" ")
    if fmt == "json":
        return "".join(go_json(r) + "\n" for r in rows)
    table = fmt.startswith("table")
    text = _docker_escapes((fmt[len("table"):] if table else fmt).strip(" "))
    template = Template(text)
    body = "".join(template.execute(r) + "\n" for r in rows)
    if not table:
        return body
    header = template.execute(headers, HEADER_FUNCS)
    return tabwrite(header + "\n" + body)


def show(fmt: str | None, rows: list[dict[str, Any]], headers: dict[str, Any],
         default: str, kind: str, dry_run: bool = False) -> int:
    """Print a list command's rows as docker does: ``default`` (a ``table`` template of
    the command's columns) unless --format says otherwise; rows are typed contexts
    (``kind``: docker's type name, for an unknown field's error).  Exit code 0, or 1
    with docker's message for a bad template.  ``dry_run``: only check, print nothing."""
    from tomato.cli.gotemplate import TemplateError, TemplateParseError
    from tomato.cli.govalues import StrictFields

    typed = []
    for row in rows:
        fields = StrictFields(row)
        fields.type_name = kind
        typed.append(fields)
    try:
        text = format_rows(default if is_table(fmt) else str(fmt), typed, headers)
    except TemplateParseError as err:
        print(f"tomato: failed to parse template: {err}", file=sys.stderr)
        return 1
    except TemplateError as err:
        print(f"tomato: failed to execute template: {err}", file=sys.stderr)
        return 1
    if not dry_run:
        sys.stdout.write(text)
    return 0


def show_one(fmt: str, data: dict[str, Any], kind: str) -> int:
    """`info --format` / `version --format`: one typed document through a template;
    exit code 0, or 1 with Go's message as docker prints it."""
    from tomato.cli.gotemplate import Template, TemplateError
    from tomato.cli.govalues import StrictFields

    fields = StrictFields(data)
    fields.type_name = kind
    try:
        text = Template(_docker_escapes(fmt)).execute(fields)
    except TemplateError as err:
        print(f"tomato: {err}", file=sys.stderr)
        return 1
    print(text)
    return 0


def inspect_each(fmt: str | None, items: list[Any]) -> int:
    """`inspect`'s output: docker's indented JSON array, or each item through the
    template (a key the item lacks is an error, as docker's raw fallback has it).
    Exit code 0, 64 for a template that does not parse, 1 when executing fails."""
    import json

    from tomato.cli.gotemplate import Template, TemplateError, TemplateParseError

    if not fmt:
        print(json.dumps(items, indent=4))
        return 0
    try:
        template = Template(_docker_escapes(fmt))
        text = "".join(template.execute(item, missing_key_error=True) + "\n"
                       for item in items)
    except TemplateParseError as err:
        print(f"tomato: template parsing error: {err}", file=sys.stderr)
        return 64
    except TemplateError as err:
        print(f"tomato: template parsing error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def is_table(fmt: str | None) -> bool:
    """No --format, or a bare ``table``: the command's own columns."""
    return fmt is None or fmt.strip(" ") in ("", "table")


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter as docker sets it up (minwidth 10, padding 3, spaces): a cell
    ends with a tab, and a column is as wide as its widest cell over the consecutive
    lines that have it; a line's last cell is never padded."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []

    def write(widths: list[int], first: int, last: int) -> None:
        for cells in lines[first:last]:
            out.append("".join(c.ljust(widths[j]) if j < len(widths) else c
                               for j, c in enumerate(cells)))

    def fmt_block(widths: list[int], line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(widths, line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            fmt_block([*widths, width], line0, this)
            line0 = this
        write(widths, line0, line1)

    fmt_block([], 0, len(lines))
    return "\n".join(out)


def print_table(rows: list[list[str]]) -> None:
    """Columns padded to their widest cell, three spaces apart (docker's tabwriter)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


class ProgressView:
    """Per-layer progress lines on a terminal; silent otherwise."""

    def __init__(self, stream: Any = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.lines: dict[str, str] = {}
        self.drawn = 0
        import threading

        self.lock = threading.Lock()
        self.last = 0.0

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        with self.lock:
            short = p.layer.removeprefix("sha256:")[:12]
            if p.status in ("downloading", "pushing") and p.total:
                pct = p.current * 100 // p.total
                text = f"{short}: {p.status.capitalize()} {human_size(p.current)}/" \
                       f"{human_size(p.total)} {pct}%"
            else:
                text = {"waiting": "Waiting", "exists": "Already exists", "done": "Complete",
                        "retrying": "Retrying"}.get(p.status, p.status)
                text = f"{short}: {text}"
            self.lines[p.layer] = text
            now = time.monotonic()
            if p.status in ("downloading", "pushing") and now - self.last < 0.1:
                return
            self.last = now
            out = "\x1b[1A\x1b[2K" * self.drawn
            out += "".join(line + "\n" for line in self.lines.values())
            self.drawn = len(self.lines)
            self.stream.write(out)
            self.stream.flush()
