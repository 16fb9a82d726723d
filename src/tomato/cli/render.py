"""How `tomato` prints what the engine returns: docker's tables, sizes, dates, Go
templates (``--format``) and pull/push progress.  Shared by every command module;
nothing here knows a command."""

from __future__ import annotations

import json
import sys
import time

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    import re
    from typing import Any


def human_size(n: float) -> str:
    """docker's units.HumanSize: decimal units, 3 significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.3g}{units[i]}"


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


def render_template(template: str, obj: Any) -> str:
    """A subset of Go templates: ``{{.Field}}``, ``{{.A.B}}``, ``{{json .}}``, ``{{json .X}}``."""
    import re

    def value(path: str) -> Any:
        v = obj
        for part in [p for p in path.split(".") if p]:
            v = v.get(part) if isinstance(v, dict) else getattr(v, part, None)
        return v

    def sub(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(value(expr[5:].strip()))
        v = value(expr)
        if isinstance(v, (dict, list)):
            return json.dumps(v)
        return "" if v is None else str(v)

    text = template.replace("\\t", "\t").replace("\\n", "\n")
    return re.sub(r"\{\{(.*?)\}\}", sub, text)


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
