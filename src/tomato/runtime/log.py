"""The runtime's log: warnings and errors for the caller, as runc writes them.

With ``--log FILE`` entries go to that file (``--log-format json`` writes
one JSON object a line, the shape containerd's go-runc reads back on
failure; ``text`` is logrus's ``time="..." level=... msg="..."``); otherwise
warnings go to stderr.  ``--debug`` adds a debug record for each step of a
command (the CLI's and the lifecycle's).  The CLI owns the only instance.
"""

from __future__ import annotations

import os
import sys
import time

from tomato import fastjson as json


class RuntimeLog:
    def __init__(self, path: str = "", fmt: str = "text", debug: bool = False) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug

    def _write(self, level: str, msg: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.fmt == "json":
            line = json.dumps({"level": level, "msg": msg, "time": stamp})
        else:
            line = f'time="{stamp}" level={level} msg={go_quote(msg)}'
        if self.path:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        elif level != "debug" or self.debug_enabled:
            sys.stderr.write(f"tomato-runtime: {level}: {msg}\n")
            sys.stderr.flush()

    def warning(self, msg: str) -> None:
        self._write("warning", msg)

    def error(self, msg: str) -> None:
        self._write("error", msg)

    def debug(self, msg: str) -> None:
        if self.debug_enabled:
            self._write("debug", msg)


def go_quote(text: str) -> str:
    """A string as Go's %q writes it (logrus's text format quotes every msg with it):
    backslash, quote and control characters escaped, the rest as is."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
