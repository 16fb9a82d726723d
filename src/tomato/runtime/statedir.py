"""Where a container's state lives: ``ROOT/<id>/state.json`` and its exec fifo.

The record is written atomically (temp file, rename).  Liveness is
never taken from the record alone: a pid is alive only if /proc shows it
with the same start time we stored, so a recycled pid is not mistaken for
the container.
"""

from __future__ import annotations

import os

from tomato import fastjson as json
from tomato.errors import AlreadyExists, NotFound
from tomato.oci.state import validate_id
from tomato.records import as_dict, field, record

TYPE_CHECKING = False  # importing typing costs ~2 ms on the start path
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
START_FIFO = "start.fifo"  # only with startContainer hooks: their outcome (lifecycle.start)


@record(frozen=False)
class Record:
    """What the runtime remembers about one container."""

    id: str
    bundle: str
    rootfs: str
    created: str
    pid: int = 0
    pid_start: int = 0
    creator_pid: int = 0
    creator_start: int = 0
    status: str = "creating"  # the last status the runtime itself set
    annotations: dict[str, str] = field(default_factory=dict)
    cgroup: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    owner: str = ""
    no_pivot: bool = False
    #: Without a mount namespace of its own: where its mounts are in the caller's
    #: namespace (hostmounts.record), for `delete` to take them away.
    host_mounts: dict[str, Any] | None = None


def proc_start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat (clock ticks since boot), 0 if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return 0
    return int(fields[19])


def alive(pid: int, start: int) -> bool:
    return pid > 0 and proc_start_time(pid) == start


class StateDir:
    """The runtime's root directory (``--root``) and the containers in it."""

    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, container_id: str) -> str:
        return os.path.join(self.root, validate_id(container_id))

    def fifo(self, container_id: str) -> str:
        return os.path.join(self.path(container_id), EXEC_FIFO)

    def reserve(self, container_id: str) -> str:
        """Claim the id: mkdir is atomic, so two creates of one id cannot both win."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        path = self.path(container_id)
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise AlreadyExists(f"container with id {container_id} already exists") from None
        return path

    def save(self, rec: Record) -> None:
        path = self.path(rec.id)
        tmp = os.path.join(path, STATE_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        # No fsync: rename is atomic against a crash of any process, and the
        # state root lives in /run (tmpfs), which a power loss empties anyway.
        try:
            os.write(fd, json.dumps(as_dict(rec)).encode())
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(path, STATE_FILE))

    def load(self, container_id: str) -> Record:
        path = os.path.join(self.path(container_id), STATE_FILE)
        try:
            with open(path, "rb") as f:
                raw = json.loads(f.read())
        except FileNotFoundError:
            if os.path.isdir(self.path(container_id)):
                # Reserved but never recorded: a create that died before its first save.
                return Record(id=container_id, bundle="", rootfs="", created="",
                              status="stopped")
            raise NotFound(f"container {container_id} does not exist") from None
        except ValueError as err:
            raise NotFound(f"container {container_id} has a corrupt state file") from err
        return Record(**raw)

    def remove(self, container_id: str) -> None:
        # A state directory holds a few files (state.json, the exec fifo): removed
        # here without shutil, which costs `run` ~2.5 ms to import (bz2, lzma...).
        path = self.path(container_id)
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        import shutil

                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        try:
                            os.unlink(entry.path)
                        except FileNotFoundError:
                            pass
            os.rmdir(path)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError:
            import shutil

            shutil.rmtree(path, ignore_errors=True)

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        # Dot names are the runtime's own (.seccomp, the filter cache), never ids.
        return sorted(n for n in names
                      if n[0] != "." and os.path.isdir(os.path.join(self.root, n)))
