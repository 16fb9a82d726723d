"""What both backends share: the Manager interface, file I/O with error
mapping, transactional writes, recursive pid listing and directory removal."""

from __future__ import annotations

import errno
import os
import time

from tomato.errors import InvalidArgument, NotFound, PermissionDenied, TomatoError, Unavailable
from tomato.records import record as dataclass  # no dataclasses import on the start path

from .resources import Resources, parse_cpuset

TYPE_CHECKING = False  # collections costs the runtime's start ~1 ms to import
if TYPE_CHECKING:
    from collections.abc import Iterable

    from tomato.explain.trace import Explainer


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def read_int(path: str, default: int = 0) -> int:
    try:
        text = read(path).strip()
    except OSError:
        return default
    if text == "max":
        return 2**64 - 1
    try:
        return int(text)
    except ValueError:
        return default


def read_keyed(path: str) -> dict[str, int]:
    """Files of ``key value`` lines (memory.stat, cpu.stat, memory.events ...)."""
    out: dict[str, int] = {}
    try:
        text = read(path)
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def try_read(path: str) -> str:
    try:
        return read(path).strip()
    except OSError:
        return ""


def online(name: str) -> str:
    """The kernel's list of online cpus or memory nodes ("0-1"), "" if unknown."""
    try:
        return read(f"/sys/devices/system/{name}/online").strip()
    except OSError:
        return ""


def check_cpuset(value: str | None, available: str, field: str) -> None:
    """A cpuset naming CPUs (or memory nodes) the parent does not have is an error
    the kernel reports as a bare EINVAL; name the field and the missing ones."""
    if value is None or value == "" or available == "":
        return
    want, have = parse_cpuset(value), parse_cpuset(available)
    missing = sorted(want - have)
    if missing:
        raise InvalidArgument(f"linux.resources.cpu.{field}: {','.join(map(str, missing))} "
                              f"not available (available: {available})")


def check_before_update(limit: int | None, usage_file: str) -> None:
    """OCI memory.checkBeforeUpdate: refuse a limit below current usage instead
    of letting the kernel reclaim or OOM-kill (runc does the same check)."""
    if limit is None or limit == -1:
        return
    usage = read_int(usage_file, default=-1)
    if usage > limit:
        raise InvalidArgument(f"linux.resources.memory.limit: {limit} is below the current "
                              f"usage of {usage} bytes (checkBeforeUpdate)")


def write_error(path: str, value: str, err: OSError) -> TomatoError:
    """A kernel refusal as a typed error naming the resource file and value."""
    name = os.path.basename(path)
    reason = os.strerror(err.errno) if err.errno else str(err)
    msg = f"cannot set {name} to {value.strip()!r}: {reason.lower()}"
    if err.errno == errno.EBUSY:
        msg += " (below current usage, or in use by a child cgroup)"
    if err.errno in (errno.EPERM, errno.EACCES):
        return PermissionDenied(msg)
    if err.errno == errno.ENOENT:
        return Unavailable(f"cannot set {name}: the kernel has no such file in "
                           f"{os.path.dirname(path)}")
    return InvalidArgument(msg)


def write(path: str, value: str, explain: Explainer | None = None) -> None:
    """One write(2) of ``value`` (cgroup files parse a single write); ``explain``
    (--explain) is told of it once it happened."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as err:
        raise write_error(path, value, err) from err
    try:
        os.write(fd, value.encode())
    except OSError as err:
        raise write_error(path, value, err) from err
    finally:
        os.close(fd)
    if explain is not None:
        explain.write(path, value)


@dataclass
class Write:
    """One planned write; ``restore`` says whether reading the file back gives a
    value that can be written again to undo it (single-value knobs)."""

    path: str
    value: str
    restore: bool = True
    undo: str | None = None     # explicit undo value for multi-line files


def apply_writes(writes: Iterable[Write], explain: Explainer | None = None) -> None:
    """Write in order; on a refusal undo what was written (newest first), then raise.

    Atomic-ish: the kernel has no transactions, but a container is left with the
    values it had whenever each written knob reads back as a writable value.
    """
    done: list[tuple[str, str]] = []
    for w in writes:
        old = w.undo
        if old is None and w.restore:
            try:
                old = read(w.path).strip()
            except OSError:
                old = None
        try:
            write(w.path, w.value, explain)
        except TomatoError:
            for path, value in reversed(done):
                try:
                    write(path, value, explain)
                except TomatoError:
                    pass
            raise
        if old is not None:
            done.append((w.path, old))


def cgroup_pids(directory: str) -> list[int]:
    """Every process in ``directory`` and all cgroups below it."""
    pids: list[int] = []
    for dirpath, _dirs, files in os.walk(directory):
        if "cgroup.procs" not in files:
            continue
        try:
            text = read(os.path.join(dirpath, "cgroup.procs"))
        except FileNotFoundError:
            continue  # removed while we walked
        pids.extend(int(p) for p in text.split())
    return sorted(set(pids))


def mkdir_p(directory: str, explain: Explainer | None = None) -> int:
    """mkdir -p that reports how many levels it made, tolerating a concurrent
    destroy() removing an empty shared parent (``tomato``) under our feet."""
    made = 0
    for attempt in range(10):
        missing = []
        d = directory
        while not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        try:
            for m in reversed(missing):
                try:
                    os.mkdir(m, 0o755)
                    if explain is not None:
                        explain.mkdir(m)
                    made += 1
                except FileExistsError:
                    pass
            return made
        except FileNotFoundError:
            time.sleep(0.002 * (attempt + 1))  # a parent vanished: look again
        except OSError as err:
            if err.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
                raise PermissionDenied(f"cannot create cgroup {directory}: "
                                       f"{os.strerror(err.errno).lower()}") from err
            raise Unavailable(f"cannot create cgroup {directory}: "
                              f"{os.strerror(err.errno or 0).lower()}") from err
    raise Unavailable(f"cannot create cgroup {directory}: parent keeps disappearing")


def parents_to_remove(created: int, cgroups_path: str, container_id: str) -> int:
    """How many empty ancestors destroy() may try to remove: those this manager
    created, and always the shared ``tomato`` parent of the default path (so
    the last container out removes it, whoever made it)."""
    default = container_id != "" and cgroups_path.strip("/") == f"tomato/{container_id}"
    return max(created - 1, 1 if default else 0)


def remove_tree(directory: str, attempts: int = 20, delay: float = 0.01) -> None:
    """rmdir a cgroup and its children bottom-up, retrying a short while: the
    kernel refuses (EBUSY) until exiting tasks have fully left."""
    for i in range(attempts):
        try:
            for dirpath, _dirs, _files in os.walk(directory, topdown=False):
                try:
                    os.rmdir(dirpath)
                except FileNotFoundError:
                    pass
            return
        except OSError as err:
            if err.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.EAGAIN):
                raise PermissionDenied(f"cannot remove cgroup {directory}: "
                                       f"{os.strerror(err.errno or 0).lower()}") from err
            if i == attempts - 1:
                raise PermissionDenied(f"cannot remove cgroup {directory}: still in use") from err
            time.sleep(delay * (i + 1))


def remove_empty_parents(directory: str, created: int) -> None:
    """rmdir up to ``created`` now-empty ancestors this manager made; another
    container may still use one, so "busy" or "not empty" just stops."""
    parent = os.path.dirname(directory)
    for _ in range(created):
        try:
            os.rmdir(parent)
        except OSError:
            return
        parent = os.path.dirname(parent)


def signal_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class Manager:
    """One container's cgroups; see the package docstring for the contract."""

    version: int = 0

    def __init__(self) -> None:
        #: Things accepted but not applied (kernel fields, missing hierarchies...).
        self.warnings: list[str] = []
        #: --explain: told of each directory made and file written (None: nobody)
        self.explain: Explainer | None = None

    # -- implemented by the backends --
    @property
    def paths(self) -> dict[str, str]:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    def create(self) -> None:
        raise NotImplementedError

    def apply(self, pid: int) -> None:
        raise NotImplementedError

    def set(self, res: Resources) -> None:
        raise NotImplementedError

    def stats(self) -> dict:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        raise NotImplementedError

    def pids(self) -> list[int]:
        raise NotImplementedError

    def destroy(self) -> None:
        raise NotImplementedError

    # -- shared --
    def apply_sub(self, pid: int, sub: dict[str, str]) -> None:
        """Put ``pid`` in existing sub-cgroups of the container's (runc 1.1's
        `exec --cgroup`): ``sub[""]`` below every hierarchy's directory, otherwise
        below the named controllers' (the others keep the container's own)."""
        paths = self.paths
        if "" in sub:
            chosen = {ctrl: sub[""] for ctrl in paths}
        else:
            unknown = sorted(set(sub) - set(paths))
            if unknown:
                raise InvalidArgument(f"--cgroup: unknown controller {unknown[0]} (this "
                                      f"container has {', '.join(sorted(paths)) or 'none'})")
            chosen = dict(sub)
        targets: list[str] = []
        for ctrl, directory in paths.items():
            rel = chosen.get(ctrl)
            target = directory if rel is None else os.path.normpath(f"{directory}/{rel}")
            if target != directory and not target.startswith(directory.rstrip("/") + "/"):
                raise InvalidArgument(f"--cgroup {rel}: not a sub-cgroup of the container's")
            if not os.path.isdir(target):
                raise NotFound(f"--cgroup: sub-cgroup {target} does not exist")
            if target not in targets:
                targets.append(target)
        for target in targets:
            write(os.path.join(target, "cgroup.procs"), str(pid), self.explain)

    def exists(self) -> bool:
        return any(os.path.isdir(p) for p in self.paths.values())

    def kill_all(self, sig: int = 9) -> None:
        """Signal every process.  The cgroup is frozen meanwhile so a forking
        process cannot escape between listing and signalling (as runc does).
        A paused container stays paused unless the signal is SIGKILL, whose
        victims have to run to die."""
        self.require()
        can_freeze = self._can_freeze()
        was_frozen = can_freeze and self.frozen()
        if can_freeze and not was_frozen:
            self.freeze()
        try:
            signal_pids(self.pids(), sig)
        finally:
            if can_freeze and (sig == 9 or not was_frozen):
                self.thaw()

    def require(self) -> None:
        if not self.exists():
            raise NotFound(f"cgroup {self.describe()} does not exist")

    def _can_freeze(self) -> bool:
        return True

    def describe(self) -> str:
        paths = self.paths
        return next(iter(paths.values()), "?")

    def _warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)
