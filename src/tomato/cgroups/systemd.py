"""The systemd cgroup driver (runc's --systemd-cgroup, libcontainer/cgroups/systemd).

A container's cgroup is a transient scope unit that systemd makes, with the
container's init as its first process, in a slice named by ``linux.cgroupsPath``:

    "slice:prefix:name"   → unit <prefix>-<name>.scope in <slice>
    "" (empty)            → unit tomato-<container id>.scope in system.slice

    StartTransientUnit("tomato-ID.scope", "replace", [Description, Slice, Delegate=yes,
        PIDs=[init], DefaultDependencies=no, *Accounting=yes, resource properties,
        org.systemd.property.* annotations], [])   → wait for the job's JobRemoved
    then the cgroupfs driver (v1.py / v2.py) on the unit's directories: the
    controllers systemd does not manage (v1 freezer, cpuset, net_cls ...) joined,
    and every limit written to the files, as runc does after the unit starts.

``update`` is SetUnitProperties (runtime) then the files; ``delete`` is StopUnit
(wait for the job), ResetFailedUnit (a unit that failed would stay listed) and
the cgroupfs driver's removal of what is left.  Freezing, pids, statistics and
kill_all are the cgroupfs driver's, on the same directories.

The unit's directories are known before it exists (the slice expanded as
systemd does: a-b.slice is /a.slice/a-b.slice), so the state records them, and
the container's cgroup mounts, before the init is made.  The state's ``cgroup``
object is the cgroupfs driver's with ``driver: "systemd"``, ``unit`` and
``slice`` added.
"""

from __future__ import annotations

import os

from tomato.errors import InvalidArgument, NotFound, TomatoError, Unavailable

from .base import Manager, try_read
from .resources import Resources

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .dbus import Connection
    from .detect import Hierarchy

DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "tomato"
#: Characters systemd allows in unit names (unit-name.c, VALID_CHARS).
_UNIT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@")
NOT_RUNNING = "systemd not running on this host, cannot use systemd cgroups manager"
JOB_TIMEOUT = 30.0  # seconds, as runc waits for a unit's start or stop


def is_running_systemd() -> bool:
    """sd_booted(3): whether this machine was booted with systemd as its init."""
    return os.path.isdir("/run/systemd/system") and not os.path.islink("/run/systemd/system")


def expand_slice(slice_name: str) -> str:
    """"a-b-c.slice" → "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" → "/" (runc's
    ExpandSlice: the cgroup systemd gives a slice)."""
    bad = InvalidArgument(f"invalid slice name: {slice_name}")
    if not slice_name.endswith(".slice") or len(slice_name) <= len(".slice") or \
            "/" in slice_name or not _UNIT_CHARS.issuperset(slice_name):
        raise bad
    stem = slice_name[:-len(".slice")]
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for part in stem.split("-"):
        if not part:
            raise bad  # test--a.slice, -test.slice
        path += f"/{prefix}{part}.slice"
        prefix += part + "-"
    return path


def parse_cgroups_path(cgroups_path: str, container_id: str) -> tuple[str, str]:
    """linux.cgroupsPath → (slice, unit name), validated."""
    if cgroups_path == "":
        slice_name, prefix, name = "", DEFAULT_PREFIX, container_id
    else:
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise InvalidArgument('expected cgroupsPath to be of format "slice:prefix:name" '
                                  f'for systemd cgroups, got "{cgroups_path}" instead')
        slice_name, prefix, name = parts
    slice_name = slice_name or DEFAULT_SLICE
    expand_slice(slice_name)
    if name.endswith(".slice"):
        raise InvalidArgument(f"linux.cgroupsPath {cgroups_path!r}: a container's unit is a "
                              "scope; a slice cannot hold its processes")
    unit = f"{prefix}-{name}.scope"
    if not name or not _UNIT_CHARS.issuperset(unit) or len(unit) > 255 or unit.startswith("."):
        raise InvalidArgument(f"linux.cgroupsPath {cgroups_path!r}: {unit!r} is not a valid "
                              "systemd unit name")
    return slice_name, unit


def new_systemd_manager(cgroups_path: str, container_id: str, found: list[Hierarchy],
                        annotations: dict[str, str] | None = None) -> SystemdManager:
    """A manager for a unit not started yet (see the module docstring)."""
    if not is_running_systemd():
        raise Unavailable(NOT_RUNNING)
    slice_name, unit = parse_cgroups_path(cgroups_path, container_id)
    from .detect import mode_of
    from .systemd_props import annotation_properties

    extra = annotation_properties(annotations or {})
    cgroup = f"{expand_slice(slice_name).rstrip('/')}/{unit}"
    label = cgroups_path or f"{DEFAULT_SLICE}:{DEFAULT_PREFIX}:{container_id}"

    def directory(h: Hierarchy) -> str:
        try:
            return h.directory(cgroup)
        except ValueError as err:
            raise Unavailable(f"cgroup {cgroup} of unit {unit} is outside what this "
                              f"namespace sees of {h.mountpoint}") from err

    m = mode_of(found)
    fs: Manager
    if m == "none":
        raise Unavailable("no cgroup hierarchy is mounted")
    if m == "unified":
        from .v2 import V2Manager

        h = next(h for h in found if h.version == 2)
        fs = V2Manager(directory(h), h.mountpoint, 0, label, container_id)
    else:
        from .v1 import V1Manager

        paths: dict[str, str] = {}
        unified = None
        for h in found:
            if h.version == 1:
                for c in sorted(h.controllers):
                    paths.setdefault(c, directory(h))
            elif unified is None:
                unified = directory(h)
        fs = V1Manager(paths, unified, {}, label, container_id)
    return SystemdManager(fs, unit, slice_name, started=False, extra=extra,
                          description=f"tomato container {container_id}")


class SystemdManager(Manager):
    def __init__(self, fs: Manager, unit: str, slice_name: str, started: bool = True,
                 extra: list | None = None, description: str = "") -> None:
        super().__init__()
        self.fs = fs
        self.unit = unit
        self.slice = slice_name
        self.version = fs.version
        self.warnings = fs.warnings  # one list: the files' warnings and ours
        self._started = started
        self._extra = extra or []
        self._description = description
        self._pending: Resources | None = None
        self._made: list[str] = []
        self._bus: Connection | None = None
        self._systemd_version = 0

    # ---- identity ----------------------------------------------------------------
    @property
    def paths(self) -> dict[str, str]:
        return self.fs.paths

    def to_dict(self) -> dict:
        return {**self.fs.to_dict(), "driver": "systemd", "unit": self.unit,
                "slice": self.slice}

    @classmethod
    def from_dict(cls, d: dict) -> SystemdManager:
        fs: Manager
        if d["version"] == 2:
            from .v2 import V2Manager

            fs = V2Manager.from_dict(d)
        else:
            from .v1 import V1Manager

            fs = V1Manager.from_dict(d)
        unit, slice_name = str(d["unit"]), str(d.get("slice", DEFAULT_SLICE))
        parse_cgroups_path(f"{slice_name}:x:y", "")  # a hostile state file names no path
        if "/" in unit or not _UNIT_CHARS.issuperset(unit) or not unit.endswith(".scope"):
            raise InvalidArgument(f"saved cgroup state names a bad unit {unit!r}")
        return cls(fs, unit, slice_name, started=True)

    def describe(self) -> str:
        return f"{self.unit} ({self.fs.describe()})"

    # ---- D-Bus ----------------------------------------------------------------------
    def _systemd(self) -> Connection:
        if self._bus is None:
            if not is_running_systemd():
                raise Unavailable(NOT_RUNNING)
            from .dbus import Connection

            self._bus = Connection.systemd(timeout=JOB_TIMEOUT)
        return self._bus

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None

    def _call(self, member: str, signature: str = "", body: list | tuple = ()) -> list:
        from .dbus import MANAGER, SYSTEMD, SYSTEMD_PATH

        return self._systemd().call(SYSTEMD, SYSTEMD_PATH, MANAGER, member, signature, body)

    def _version(self) -> int:
        """systemd's version number ("252.39-1~deb12u2" → 252), asked once."""
        if not self._systemd_version:
            from .dbus import MANAGER, SYSTEMD, SYSTEMD_PATH

            answer = self._systemd().call(
                SYSTEMD, SYSTEMD_PATH, "org.freedesktop.DBus.Properties", "Get", "ss",
                [MANAGER, "Version"])[0]
            text = str(answer[1]) if isinstance(answer, tuple) else ""
            digits = ""
            for ch in text.lstrip('"v'):
                if not ch.isdigit():
                    break
                digits += ch
            self._systemd_version = int(digits) if digits else 1
        return self._systemd_version

    def _run_job(self, member: str, signature: str, body: list) -> str:
        job = self._call(member, signature, body)[0]
        return self._systemd().wait_job(str(job), JOB_TIMEOUT)

    def _current(self, name: str) -> str:
        """A cgroup file of the unit's ("" before it exists)."""
        if self.fs.version == 2:
            return try_read(os.path.join(self.paths[""], name))
        directory = self.paths.get(name.split(".")[0])
        return try_read(os.path.join(directory, name)) if directory else ""

    def _properties(self, res: Resources) -> tuple[list, Resources]:
        from .systemd_props import resource_properties

        return resource_properties(res, self.fs.version, self._current, self._version,
                                   self._warn)

    # ---- lifecycle --------------------------------------------------------------------
    def create(self) -> None:
        """v2: nothing yet, systemd makes the unit's cgroup with its first process.

        v1: the directories now, as the cgroupfs driver makes them: the init binds
        them into its /sys/fs/cgroup before the unit exists (systemd then uses those
        of the controllers it manages).  What we made is remembered for a rollback
        before the unit starts; after that the tree below the slices is systemd's."""
        if self.fs.version != 1:
            return
        missing: list[str] = []
        for d in self._directories():
            while d not in missing and not os.path.isdir(d):
                missing.append(d)
                d = os.path.dirname(d)
        self._made = sorted(missing, key=len, reverse=True)  # deepest first
        self.fs.create()
        self.fs.forget_parents()  # type: ignore[attr-defined]

    def _directories(self) -> list[str]:
        return sorted(set(self.paths.values()))

    def set(self, res: Resources) -> None:
        if not self._started:
            # Checked now (a bad value fails before the init exists), sent with the unit;
            # the connection is closed so that the init does not inherit it.
            try:
                self._properties(res)
            finally:
                self.close()
            self._pending = res
            return
        self.require()
        from .dbus import DBusError

        props, res = self._properties(res)
        if props:
            try:
                self._call("SetUnitProperties", "sba(sv)", [self.unit, True, props])
            except DBusError as err:
                raise InvalidArgument(f"unable to set unit properties of {self.unit}: "
                                      f"{err}") from err
        self.fs.set(res)

    def apply(self, pid: int) -> None:
        if self._started:
            self.fs.apply(pid)  # exec: the unit's cgroups are there, joined as files
            return
        res = self._pending or Resources()
        props, res = self._properties(res)
        self._start(pid, props)
        self._started = True
        # The controllers systemd leaves alone (v1 freezer, cpuset, net_cls ...) and
        # every limit, written to the files as the cgroupfs driver does.
        self.fs.create()
        self.fs.apply(pid)
        self.fs.set(res)
        self.close()

    def _start(self, pid: int, resource_props: list) -> None:
        from .dbus import DBusError, Variant

        accounting = ("MemoryAccounting", "CPUAccounting",
                      "IOAccounting" if self.fs.version == 2 else "BlockIOAccounting",
                      "TasksAccounting")
        # The annotations' properties first: ours win where both speak (the unit's
        # Description is how destroy knows the unit as ours).
        props = [*self._extra,
                 ("Description", Variant("s", self._owner_description())),
                 ("Slice", Variant("s", self.slice)),
                 ("Delegate", Variant("b", True)),
                 ("PIDs", Variant("au", [pid])),
                 *((name, Variant("b", True)) for name in accounting),
                 ("DefaultDependencies", Variant("b", False)),
                 *resource_props]
        for attempt in (1, 2):
            try:
                result = self._run_job("StartTransientUnit", "ssa(sv)a(sa(sv))",
                                       [self.unit, "replace", props, []])
            except DBusError as err:
                if err.name.endswith(".UnitExists") and attempt == 1:
                    self._reset_failed()  # a failed leftover of the same name: once
                    continue
                if not os.path.exists(f"/proc/{pid}"):
                    raise NotFound(f"process {pid} does not exist") from err
                raise Unavailable(f"unable to start unit {self.unit}: {err}") from err
            if result != "done":
                self._reset_failed()
                raise Unavailable(f"error creating systemd unit {self.unit}: got {result}")
            return

    def _reset_failed(self) -> None:
        from .dbus import DBusError

        try:
            self._call("ResetFailedUnit", "s", [self.unit])
        except DBusError:
            pass  # not failed, or gone: nothing to reset

    def destroy(self) -> None:
        """Stop the unit (systemd removes its cgroups), then remove what is left.

        Only a unit of ours: a create that failed because the name was taken must
        not stop the container that holds it, nor remove its cgroup.  A unit is
        ours when its Description names our container (we gave it that name)."""
        if not self._started:
            # systemd was never asked: only what create() made is ours (empty).
            for d in self._made:
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            return
        from .dbus import DBusError

        error: TomatoError | None = None
        try:
            owner = self._unit_description()
            if owner is not None and owner != self._owner_description():
                return  # another's unit of the same name
            if owner is not None:
                self._run_job("StopUnit", "ss", [self.unit, "replace"])
            self._reset_failed()
        except DBusError as err:
            if not err.name.endswith(".NoSuchUnit"):  # gone with its last process
                error = Unavailable(f"unable to stop unit {self.unit}: {err}")
        except Unavailable as err:
            error = err
        finally:
            self.close()
        self.fs.destroy()
        if error is not None:
            raise error

    def _owner_description(self) -> str:
        return self._description or \
            f"tomato container {getattr(self.fs, 'container_id', '')}"

    def _unit_description(self) -> str | None:
        """The loaded unit's Description, None when systemd has no such unit."""
        from .dbus import DBusError

        try:
            path = self._call("GetUnit", "s", [self.unit])[0]
        except DBusError as err:
            if err.name.endswith(".NoSuchUnit"):
                return None
            raise
        from .dbus import SYSTEMD

        answer = self._systemd().call(SYSTEMD, str(path), "org.freedesktop.DBus.Properties",
                                      "Get", "ss", ["org.freedesktop.systemd1.Unit",
                                                    "Description"])[0]
        return str(answer[1]) if isinstance(answer, tuple) else ""

    # ---- the rest is the files' -----------------------------------------------------------
    def exists(self) -> bool:
        return self.fs.exists()

    def freeze(self) -> None:
        self.fs.freeze()

    def thaw(self) -> None:
        self.fs.thaw()

    def frozen(self) -> bool:
        return self.fs.frozen()

    def _can_freeze(self) -> bool:
        return self.fs._can_freeze()

    def pids(self) -> list[int]:
        return self.fs.pids()

    def stats(self) -> dict:
        return self.fs.stats()

    def kill_all(self, sig: int = 9) -> None:
        self.fs.kill_all(sig)

    def apply_sub(self, pid: int, sub: dict[str, str]) -> None:
        self.fs.apply_sub(pid, sub)


__all__ = ["NOT_RUNNING", "SystemdManager", "TomatoError", "expand_slice",
           "is_running_systemd", "new_systemd_manager", "parse_cgroups_path"]
