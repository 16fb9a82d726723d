"""The json-file log driver: one JSON object per line, Docker's format.

    {"log":"hello\\n","stream":"stdout","time":"2026-11-29T00:00:00.000000000Z"}

``LogWriter`` is used by the monitor (rotation by --log-opt max-size and
max-file); ``read_logs`` by `tomato logs` (--tail, --since, -t, -f).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

from tomato.records import record as dataclass

MAX_LINE = 16 * 1024  # docker flushes a partial line at this size


def timestamp(ts: float | None = None) -> str:
    t = time.time() if ts is None else ts
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def parse_timestamp(text: str) -> float:
    """RFC 3339 with nanoseconds → seconds since the epoch."""
    import calendar

    main, _, frac = text.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + frac) if frac else 0.0)


class LogWriter:
    def __init__(self, path: str, max_size: int = 0, max_files: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial[stream] + data
        lines = buf.split(b"\n")
        self.partial[stream] = lines.pop()
        out = [self._entry(stream, line + b"\n") for line in lines]
        while len(self.partial[stream]) >= MAX_LINE:
            out.append(self._entry(stream, self.partial[stream][:MAX_LINE]))
            self.partial[stream] = self.partial[stream][MAX_LINE:]
        if out:
            self._append(b"".join(out))

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._append(self._entry(stream, rest))
                self.partial[stream] = b""

    @staticmethod
    def _entry(stream: str, data: bytes) -> bytes:
        return (json.dumps({"log": data.decode("utf-8", "replace"), "stream": stream,
                            "time": timestamp()}) + "\n").encode()

    def _append(self, data: bytes) -> None:
        os.write(self.fd, data)
        if self.max_size and os.fstat(self.fd).st_size >= self.max_size:
            self._rotate()

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.max_files > 1:
            for i in range(self.max_files - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i}")
        else:
            os.truncate(self.path, 0)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                          0o640)

    def close(self) -> None:
        self.flush()
        os.close(self.fd)


@dataclass(frozen=True)
class LogEntry:
    stream: str
    text: str
    time: str


def _files(path: str) -> list[str]:
    """Rotated files oldest first, then the live one."""
    rotated = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        rotated.append(f"{path}.{i}")
        i += 1
    return list(reversed(rotated)) + ([path] if os.path.exists(path) else [])


def _parse(line: bytes) -> LogEntry | None:
    try:
        raw = json.loads(line)
        return LogEntry(raw["stream"], raw["log"], raw["time"])
    except (ValueError, KeyError):
        return None


def read_logs(path: str, tail: int | None = None, since: float | None = None,
              until: float | None = None) -> list[LogEntry]:
    entries: list[LogEntry] = []
    for name in _files(path):
        with open(name, "rb") as f:
            for line in f:
                entry = _parse(line)
                if entry is None:
                    continue
                if since is not None or until is not None:
                    t = parse_timestamp(entry.time)
                    if since is not None and t < since:
                        continue
                    if until is not None and t > until:
                        continue
                entries.append(entry)
    if tail is not None:
        entries = entries[-tail:] if tail > 0 else []
    return entries


def follow(path: str, position: int, still_running: object) -> Iterator[LogEntry]:
    """New entries appended after byte ``position`` of the live file, until
    ``still_running()`` is false and nothing more arrives."""
    f = open(path, "rb")  # noqa: SIM115 — closed in finally
    try:
        f.seek(position)
        pending = b""
        idle = 0
        while True:
            chunk = f.read()
            if chunk:
                idle = 0
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    entry = _parse(line)
                    if entry is not None:
                        yield entry
                continue
            if os.path.exists(path) and os.stat(path).st_ino != os.fstat(f.fileno()).st_ino:
                f.close()  # rotated: continue with the new live file
                f = open(path, "rb")  # noqa: SIM115
                continue
            if not still_running():  # type: ignore[operator]
                idle += 1
                if idle > 2:
                    return
            time.sleep(0.05)
    finally:
        f.close()
