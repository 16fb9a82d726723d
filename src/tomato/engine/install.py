"""Which of the installation's fast paths this interpreter has: the C parts beside it
(tomato-client, tomato-shim, tomato-runtime-front), what the `tomato` launcher's
interpreter is, and whether the sources are byte-compiled.  `tomato version`,
`tomato --version` and `tomato info` show it, so a slow install says why.

scripts/install.sh and `pip install .` (setup.py's build step) put them all in
the environment's bin/ directory: the launcher runs through the client (no Python
start-up when the CLI's fork server is up), a detached container's monitor
hands its steady state to the shim (~1 MB instead of a Python process), and
`tomato-runtime state/kill/...` is answered in C.
"""

from __future__ import annotations

import os
import sys

from tomato.records import record


@record
class FastPaths:
    version: str
    python: str  #: the interpreter running this process
    bin_dir: str  #: where the launchers and the C parts are
    launcher: str  #: bin/tomato
    launcher_interpreter: str  #: its #! line's program ("" if unreadable)
    client: str  #: tomato-client, "" when missing (then the CLI starts Python every time)
    shim: str  #: tomato-shim, "" when missing (then monitors stay in Python)
    runtime_front: str  #: tomato-runtime-front, "" when missing
    bytecode: bool  #: the sources' .pyc files are there (no compile on the start path)
    shim_disabled: bool  #: TOMATO_NO_SHIM is set

    @property
    def client_as_interpreter(self) -> bool:
        return bool(self.client) and (self.launcher_interpreter == self.client
                                      or os.path.basename(self.launcher_interpreter)
                                      == "tomato-client")


def _executable(path: str) -> str:
    return path if os.access(path, os.X_OK) and os.path.isfile(path) else ""


def _interpreter(launcher: str) -> str:
    try:
        with open(launcher, "rb") as f:
            head = f.read(256)
    except OSError:
        return ""
    if head.startswith(b"\x7fELF"):
        return launcher  # the launcher is the client itself (a wheel's layout)
    if not head.startswith(b"#!"):
        return ""
    return head[2:].split(b"\n", 1)[0].decode(errors="replace").strip().split(" ")[0]


def _compiled() -> bool:
    import importlib.util

    source = os.path.join(os.path.dirname(__file__), "service.py")
    try:
        return os.path.exists(importlib.util.cache_from_source(source))
    except NotImplementedError:  # sys.implementation.cache_tag is None
        return False


def fast_paths() -> FastPaths:
    from tomato import __version__

    bin_dir = os.path.dirname(sys.executable)
    launcher = os.path.join(bin_dir, "tomato")
    return FastPaths(
        version=__version__, python=sys.executable, bin_dir=bin_dir, launcher=launcher,
        launcher_interpreter=_interpreter(launcher),
        client=_executable(os.path.join(bin_dir, "tomato-client")),
        shim=_executable(os.path.join(bin_dir, "tomato-shim")),
        runtime_front=_executable(os.path.join(bin_dir, "tomato-runtime-front")),
        bytecode=_compiled(), shim_disabled=bool(os.environ.get("TOMATO_NO_SHIM")))
