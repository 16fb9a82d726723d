"""How a build tells its progress: one event interface, four ways to show it.

    Classic   Docker's legacy builder, word for word where clients parse it
              ("Step 2/5 : RUN make", " ---> Using cache", "Successfully built ID"):
              what `POST /build` streams as {"stream": ...} lines
    Plain     BuildKit's --progress=plain: "#3 [2/5] RUN make", "#3 0.412 output",
              "#3 CACHED", "#3 DONE 0.4s"
    Live      the same steps redrawn in place on a terminal (--progress=auto on a tty)
    Quiet     nothing (-q): the caller prints the image id

The builder calls ``step`` for each instruction, then ``cached`` or ``running`` /
``output`` ..., then ``done`` with the step's image; ``note`` for warnings,
``explain`` for --explain's lines, ``finished`` at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TextIO


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


class Reporter:
    """The events; the base class shows nothing (``-q``)."""

    def begin(self, total: int) -> None:
        self.total = total

    def step(self, n: int, label: str, text: str) -> None:
        """Step ``n`` of the build (``label``: "stage 2/5" within its stage) begins."""

    def cached(self) -> None:
        pass

    def running(self, container_id: str) -> None:
        pass

    def output(self, stream: int, data: bytes) -> None:
        pass

    def done(self, image_id: str, removed_container: str = "") -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def explain(self, lines: list[str]) -> None:
        pass

    def finished(self, image_id: str, names: list[str]) -> None:
        pass


class Classic(Reporter):
    """Docker's legacy builder output, as text handed to ``write``."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.total = 0

    def step(self, n: int, label: str, text: str) -> None:
        self.write(f"Step {n}/{self.total} : {text}\n")

    def cached(self) -> None:
        self.write(" ---> Using cache\n")

    def running(self, container_id: str) -> None:
        self.write(f" ---> Running in {container_id[:12]}\n")

    def output(self, stream: int, data: bytes) -> None:
        self.write(data.decode("utf-8", "replace"))

    def done(self, image_id: str, removed_container: str = "") -> None:
        if removed_container:
            self.write(f"Removing intermediate container {removed_container[:12]}\n")
        self.write(f" ---> {short(image_id)}\n")

    def note(self, text: str) -> None:
        self.write(f"[Warning] {text}\n")

    def explain(self, lines: list[str]) -> None:
        self.write("".join(f" [explain] {line}\n" for line in lines))

    def finished(self, image_id: str, names: list[str]) -> None:
        self.write(f"Successfully built {short(image_id)}\n")
        for name in names:
            self.write(f"Successfully tagged {name}\n")


class Plain(Reporter):
    """BuildKit's plain progress: numbered steps, timed output lines."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.total = 0
        self.n = 0
        self.t0 = time.monotonic()
        self.partial = b""
        self.was_cached = False

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def step(self, n: int, label: str, text: str) -> None:
        self.n, self.t0, self.partial, self.was_cached = n, time.monotonic(), b"", False
        self._line(f"\n#{n} [{label}] {text}")

    def cached(self) -> None:
        self.was_cached = True
        self._line(f"#{self.n} CACHED")

    def output(self, stream: int, data: bytes) -> None:
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            self._line(f"#{self.n} {time.monotonic() - self.t0:.3f} "
                       f"{line.decode('utf-8', 'replace')}")

    def _flush_partial(self) -> None:
        if self.partial:
            self.output(1, b"\n")

    def done(self, image_id: str, removed_container: str = "") -> None:
        self._flush_partial()
        if not self.was_cached:
            self._line(f"#{self.n} DONE {time.monotonic() - self.t0:.1f}s")

    def note(self, text: str) -> None:
        self._line(f"WARNING: {text}")

    def explain(self, lines: list[str]) -> None:
        for line in lines:
            self._line(f"#{self.n} [explain] {line}")

    def finished(self, image_id: str, names: list[str]) -> None:
        n = self.n + 1
        self._line(f"\n#{n} exporting to image")
        self._line(f"#{n} writing image {image_id} done")
        for name in names:
            self._line(f"#{n} naming to {name} done")
        self._line(f"#{n} DONE 0.0s")


class Live(Reporter):
    """The steps redrawn in place on a terminal: one line a step, the running step's
    last output lines under it (BuildKit's tty display, smaller)."""

    SHOWN = 6  # output lines kept under the running step

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.total = 0
        self.lines: list[str] = []  # one per step, final text
        self.tail: list[str] = []
        self.partial = b""
        self.started = time.monotonic()
        self.t0 = self.started
        self.drawn = 0
        self.last_draw = 0.0
        self.notes: list[str] = []
        self.steps = 0
        self.active = False

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self.out.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        return columns if columns > 10 else 80  # (a pty nobody sized says 0)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        width = self._width() - 1
        head = f"[+] Building {now - self.started:.1f}s ({self.steps}/{self.total})"
        body = [head] + [f" => {line}"[:width] for line in self.lines]
        if self.active:  # the running step: its time so far, its last output lines
            body[-1] = f"{body[-1]} {now - self.t0:.1f}s"[:width]
            body += [f"    {t}"[:width] for t in self.tail[-self.SHOWN:]]
        text = ("\x1b[1A\x1b[2K" * self.drawn) + "\r" + "\n".join(body) + "\n"
        self.out.write(text)
        self.out.flush()
        self.drawn = len(body)

    def step(self, n: int, label: str, text: str) -> None:
        self.t0, self.tail, self.partial = time.monotonic(), [], b""
        self.steps, self.active = n, True
        self.lines.append(f"[{label}] {text}")
        self._draw(force=True)

    def cached(self) -> None:
        self.lines[-1] += "  CACHED"
        self.active = False
        self._draw(force=True)

    def output(self, stream: int, data: bytes) -> None:
        *lines, self.partial = (self.partial + data).split(b"\n")
        self.tail.extend(line.decode("utf-8", "replace") for line in lines)
        del self.tail[:-self.SHOWN]
        self._draw()

    def done(self, image_id: str, removed_container: str = "") -> None:
        if self.active:
            self.lines[-1] += f"  {time.monotonic() - self.t0:.1f}s"
        self.active = False
        self.tail = []
        self._draw(force=True)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def explain(self, lines: list[str]) -> None:
        self.tail.extend(lines)

    def finished(self, image_id: str, names: list[str]) -> None:
        self.lines.append(f"writing image {image_id}" + "".join(f", naming to {n}"
                                                                for n in names) + "  done")
        self.tail = []
        self._draw(force=True)
        for text in self.notes:
            self.out.write(f"WARNING: {text}\n")
        self.out.flush()

    def fail(self) -> None:
        """A failed build: the running step's output stays on screen."""
        for line in self.tail:
            self.out.write(f"    {line}\n")
        self.out.flush()


def for_terminal(mode: str, out: TextIO, quiet: bool) -> Reporter:
    """The CLI's reporter for ``--progress`` (auto: live on a terminal, else plain)."""
    if quiet:
        return Reporter()
    if mode == "auto" and out.isatty() and os.environ.get("TERM") != "dumb":
        return Live(out)
    return Plain(out)


__all__ = ["Reporter", "Classic", "Plain", "Live", "for_terminal", "short"]
