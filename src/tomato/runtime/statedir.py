"""Where a container's state lives: ``ROOT/<id>/state.json`` and its exec fifo.

The record is written atomically (temp file, rename).  Liveness is
never taken from the record alone: a pid is alive only if /proc shows it
with the same start time we stored, so a recycled pid is not mistaken for
the container.

This file is read by two programs: here, and by the C front end
(runtime/front/state.c), which answers state/start/kill/delete/pause/resume/list
without starting Python.  Its format (docs/runtime.md, "The state directory")
is ``Record``'s fields as one JSON object; a file whose members are not exactly
those, with those types, is corrupt for both.
"""

from __future__ import annotations

import errno
import os
import stat

from tomato import fastjson as json
from tomato.errors import AlreadyExists, NotFound, TomatoError
from tomato.oci.state import validate_id
from tomato.records import as_dict, field, record

TYPE_CHECKING = False  # importing typing costs ~2 ms on the start path
if TYPE_CHECKING:
    from typing import Any

    from tomato.oci.spec import Spec

STATE_FILE = "state.json"
MAX_STATE_SIZE = 64 << 20  # a config this large is an attack, not a container (front.h too)
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
    #: ``config`` parsed, cached by lifecycle.spec_of for this process (a leading "_":
    #: not a field, never written to state.json)
    _spec: Spec | None = None


#: Record's members and the JSON types they take (bool is not an int here).
_MEMBER_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "bundle": (str,), "rootfs": (str,), "created": (str,), "pid": (int,),
    "pid_start": (int,), "creator_pid": (int,), "creator_start": (int,), "status": (str,),
    "annotations": (dict,), "cgroup": (dict, type(None)), "config": (dict,), "owner": (str,),
    "no_pivot": (bool,), "host_mounts": (dict, type(None)),
}
_REQUIRED = ("id", "bundle", "rootfs", "created")


def _wrong_member(raw: object) -> str:
    """What makes ``raw`` no Record ("" when nothing does)."""
    if not isinstance(raw, dict):
        return "not an object"
    for name in _REQUIRED:
        if name not in raw:
            return f"no {name}"
    for name, value in raw.items():
        types = _MEMBER_TYPES.get(name)
        if types is None:
            return f"unknown member {name!r}"
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"{name} is not {types[0].__name__}"
    annotations = raw.get("annotations", {})
    if not all(isinstance(v, str) for v in annotations.values()):
        return "annotations are not strings"
    return ""


def lone_surrogate(doc: object) -> bool:
    """Whether a string anywhere in ``doc`` holds a lone surrogate (JSON's \\ud800)."""
    todo = [doc]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str) and not item.isascii():
            try:
                item.encode()
            except UnicodeEncodeError:
                return True
    return False


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


def signal_pinned(pid: int, start: int, sig: int) -> bool:
    """kill(pid, sig) of the process that has this start time, through a pidfd taken
    before the start time was read: a pid reused after the caller's check (its
    process died, another got the number) is never signalled.  False when that process
    is gone (or not there to begin with).  A kernel without pidfds: checked, then kill."""
    import _signal

    if pid <= 0:
        return False
    try:
        pin = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:  # before Linux 5.3
        if not alive(pid, start):
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True
    try:
        if proc_start_time(pid) != start:
            return False
        _signal.pidfd_send_signal(pin, sig)
    except ProcessLookupError:
        return False
    finally:
        os.close(pin)
    return True


def write_pid_file(path: str, pid: int) -> None:
    """--pid-file: written whole under a temporary name beside it, then renamed (as
    runc).  The temporary name is made, never opened: O_EXCL|O_NOFOLLOW, so whatever
    was planted there (a symlink to a file of the host's) is neither followed nor
    truncated, and the write fails ("file exists", as runc's); what we made is removed
    on any failure.  Mode 0666 less the umask, as runc's (front/exec.c does the same).
    Raises TomatoError "cannot write --pid-file PATH: REASON" (exec's words in C too)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o666)
    except OSError as err:
        raise _pid_file_error(path, err) from err
    try:
        try:
            data = str(pid).encode()
            if os.write(fd, data) != len(data):
                raise OSError(errno.EIO, os.strerror(errno.EIO), tmp)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)  # ours: made above
        except OSError:
            pass
        if isinstance(err, OSError):
            raise _pid_file_error(path, err) from err
        raise


def _pid_file_error(path: str, err: OSError) -> TomatoError:
    return TomatoError(f"cannot write --pid-file {path}: {(err.strerror or str(err)).lower()}")


def oci_state(rec: Record, status: str) -> dict[str, Any]:
    """The runtime spec's state of a container (what `state` prints, hooks read)."""
    return {
        "ociVersion": rec.config.get("ociVersion", "1.2.0"),
        "id": rec.id,
        "status": status,
        "pid": rec.pid if status not in ("stopped",) else 0,
        "bundle": rec.bundle,
        "rootfs": rec.rootfs,
        "created": rec.created,
        "owner": rec.owner,
        "annotations": rec.annotations,
    }


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
            # O_NONBLOCK: a FIFO put there must not hang us (nor the front end).
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            if os.path.isdir(self.path(container_id)):
                # Reserved but never recorded: a create that died before its first save.
                return Record(id=container_id, bundle="", rootfs="", created="",
                              status="stopped")
            raise NotFound(f"container {container_id} does not exist") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NotFound(f"container {container_id} has a corrupt state file: not a "
                               "regular file")
            with open(fd, "rb", closefd=False) as f:
                data = f.read(MAX_STATE_SIZE + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_STATE_SIZE:
            raise NotFound(f"container {container_id} has a corrupt state file: larger "
                           f"than {MAX_STATE_SIZE >> 20} MiB")
        try:
            raw = json.loads(data)
        # ValueError: JSON's errors, UnicodeDecodeError; SystemError: _json's for a bad
        # string when json.decoder is not imported (fastjson leaves json out).
        except (ValueError, RecursionError, SystemError) as err:
            raise NotFound(f"container {container_id} has a corrupt state file") from err
        wrong = _wrong_member(raw)
        if not wrong and b"\\u" in data and lone_surrogate(raw):
            wrong = "a lone surrogate"  # valid JSON, but no text: printing it would crash
        if not wrong and raw["id"] != container_id:
            wrong = "it names another container"
        if wrong:
            raise NotFound(f"container {container_id} has a corrupt state file: {wrong}")
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
