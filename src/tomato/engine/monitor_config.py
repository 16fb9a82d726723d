"""What `start` tells a container's monitor (``monitor.json`` in the container's
directory, 0600), and the monitor's small rules: Docker's exit codes, where the
shim is.  A typed record, written by start.py and read by monitor.py: a key
misspelt on either side is an error, not a default."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tomato.records import as_dict, field, field_names, record

TYPE_CHECKING = False  # typing costs ~2 ms to import: the monitor reads us
if TYPE_CHECKING:
    from typing import Any

NAME = "monitor.json"


@record
class MonitorConfig:
    bundle: str  #: the OCI bundle (config.json, rootfs/)
    runtime_root: str  #: the runtime's state root (ROOT/runtime)
    primed: bool = False  #: the cgroup move is primed already (supervision.py)
    tty: bool = False
    stdin: bool = False  #: -i: keep a pipe to the container's stdin
    restart: str = "no"  #: the restart policy: no, always, unless-stopped, on-failure
    restart_max: int = 0  #: on-failure's limit (0: none)
    auto_remove: bool = False  #: --rm: the monitor removes the container when it ends
    attach_wait: bool = False  #: a foreground run: start on the CLI's first connection
    log_max_size: int = 0
    log_max_file: int = 1
    log_path: str = ""  #: where the output goes: "" the json log; /dev/null for --log-driver none
    event_attributes: dict[str, str] = field(default_factory=dict)
    #: the container's healthcheck (Docker's HealthConfig) and what its probe runs
    #: (health.probe_command): none when empty
    healthcheck: dict[str, Any] | None = None
    health_command: list[str] = field(default_factory=list)


def write(cdir: Path, config: MonitorConfig) -> None:
    from tomato.files import write_private

    write_private(cdir / NAME, json.dumps(as_dict(config)))


def read(cdir: Path) -> MonitorConfig:
    raw = json.loads((cdir / NAME).read_text())
    unknown = set(raw) - set(field_names(MonitorConfig))
    if unknown:  # written by another tomato: the monitor must not guess
        raise ValueError(f"{cdir / NAME}: unknown settings {sorted(unknown)}")
    return MonitorConfig(**raw)


def start_failure_code(message: str) -> int:
    """The exit code dockerd records for a process that could not start: 127 when the
    command is not there, 126 when it cannot be run, else 128."""
    if "no such file or directory" in message or "not found" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 128


def exit_code(status: int) -> int:
    """A wait status as docker reports it: the code, or 128+N when killed by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def shim_binary() -> str | None:
    """tomato-shim beside our interpreter (the package's build step makes it), if there."""
    if os.environ.get("TOMATO_NO_SHIM"):
        return None
    path = os.path.join(os.path.dirname(sys.executable), "tomato-shim")
    return path if os.access(path, os.X_OK) else None
