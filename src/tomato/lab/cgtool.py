"""libcgroup's tools (cgcreate, cgset, cgget, cgexec, cgdelete) and a stats sampler.

A group is named as libcgroup names it: a path relative to the root of each
controller's hierarchy (``tomato-lab/my``), with controllers chosen by
``-g cpu,cpuacct:tomato-lab/my``.  Each controller is looked up in the
hierarchies this host mounts (tomato.cgroups.hierarchies): a v1 hierarchy of
its own, or the cgroup2 hierarchy when it lists the controller there.  Knob
names of either version work on both (tomato.lab.translate).  Every mkdir,
write and rmdir goes through the Explainer, so ``--explain`` shows the
exact files and values.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass

from tomato.cgroups import Hierarchy, hierarchies
from tomato.errors import Conflict, InvalidArgument, NotFound, PermissionDenied, Unavailable

from . import translate as tr
from .explain import NULL, Explainer

DEFAULT_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")


@dataclass(frozen=True)
class Place:
    """Where one controller of a group lives."""

    controller: str
    version: int
    directory: str


def parse_group(spec: str) -> tuple[tuple[str, ...], str]:
    """``cpu,memory:path`` (cgcreate -g) → (controllers, path); ``*`` is every mounted one."""
    ctrls, sep, path = spec.partition(":")
    if not sep:
        raise InvalidArgument(f"{spec!r}: expected CONTROLLERS:PATH, e.g. cpu,cpuacct:my")
    names = tuple(c for c in ctrls.split(",") if c)
    if not names:
        raise InvalidArgument(f"{spec!r}: no controller named")
    return names, check_path(path)


def check_path(path: str) -> str:
    rel = path.strip("/")
    if not rel or any(p in ("", ".", "..") for p in rel.split("/")):
        raise InvalidArgument(f"cgroup path {path!r}: give a relative path like tomato-lab/my "
                              f"(not the root, no '..')")
    return rel


class CgroupTool:
    def __init__(self, found: list[Hierarchy] | None = None, ex: Explainer = NULL,
                 pinned: dict[str, str] | None = None) -> None:
        """``pinned`` maps controllers to the group of a process in each hierarchy
        (from :func:`cgroups_of_pid`): a process may sit in different groups per v1
        controller, so its ``path`` argument is then ignored for those controllers."""
        self.found = hierarchies() if found is None else found
        self.ex = ex
        self.pinned = dict(pinned or {})

    # -- where things are -----------------------------------------------------------
    def mounted(self) -> list[str]:
        names: set[str] = set()
        for h in self.found:
            names |= set(h.controllers)
        return sorted(names)

    def place(self, controller: str, path: str) -> Place:
        if controller in self.pinned or (self.pinned.get("") is not None):
            rel = self.pinned.get(controller, self.pinned.get("", "")).strip("/")
            if rel == "":
                raise InvalidArgument("the process is in the root cgroup: nothing of its "
                                      "own to show")
        else:
            rel = check_path(path)
        if controller == "*":
            raise InvalidArgument("'*' names every controller; use it only with create/delete")
        v2 = next((h for h in self.found if h.version == 2), None)
        for h in self.found:
            if h.version == 1 and controller in h.controllers:
                return Place(controller, 1, os.path.join(h.mountpoint, rel))
        want = tr.V1_TO_V2_CONTROLLER.get(controller, controller)
        if v2 is not None and (want == "" or want in v2.controllers):
            return Place(controller, 2, os.path.join(v2.mountpoint, rel))
        # A v2 name on a v1-only host (io → blkio).
        alt = tr.V2_TO_V1_CONTROLLER.get(controller)
        for h in self.found:
            if h.version == 1 and alt and alt in h.controllers:
                return Place(alt, 1, os.path.join(h.mountpoint, rel))
        raise Unavailable(f"cgroup controller {controller} is not mounted on this host "
                          f"(mounted: {', '.join(self.mounted()) or 'none'})")

    def places(self, controllers: tuple[str, ...], path: str) -> list[Place]:
        if controllers == ("*",):
            controllers = tuple(self.mounted())
        out: list[Place] = []
        for c in controllers:
            p = self.place(c, path)
            if all(q.directory != p.directory for q in out):
                out.append(p)
        return out

    def place_of_knob(self, name: str, path: str) -> Place:
        ctrl = tr.controller_of(name)
        if ctrl == "cgroup" and name != "cgroup.freeze":
            v2 = next((h for h in self.found if h.version == 2), None)
            if v2 is None or any(h.version == 1 for h in self.found):
                raise InvalidArgument(f"{name}: say which hierarchy with a controller knob "
                                      f"(cgroup.* files exist in every v1 hierarchy)")
            return Place("", 2, os.path.join(v2.mountpoint, check_path(path)))
        try:
            return self.place(tr.v1_controller_for(name), path)
        except Unavailable:
            return self.place(tr.v2_controller_for(name) or ctrl, path)

    # -- cgcreate / cgdelete ----------------------------------------------------------------
    def create(self, controllers: tuple[str, ...], path: str) -> list[Place]:
        if controllers == ("*",):
            controllers = tuple(self.mounted())
        made = self.places(controllers, path)
        # On cgroup2 one directory serves every controller: each must be enabled in
        # every ancestor's cgroup.subtree_control for the knobs to appear below it.
        v2 = sorted({tr.V1_TO_V2_CONTROLLER.get(c, c) for c in controllers
                     if self.place(c, path).version == 2} - {""})
        for p in made:
            self._mkdirs(p, v2 if p.version == 2 else [])
        return made

    def _mkdirs(self, p: Place, enable: list[str]) -> None:
        h = self._hierarchy_of(p)
        rel = os.path.relpath(p.directory, h.mountpoint)
        cur = h.mountpoint
        for part in rel.split("/"):
            parent, cur = cur, os.path.join(cur, part)
            self._enable(parent, enable)
            if os.path.isdir(cur):
                continue
            self.ex.mkdir(cur)
            try:
                os.mkdir(cur, 0o755)
            except FileExistsError:
                pass
            except OSError as err:
                raise _fs_error(err, f"cannot create cgroup {cur}") from err
            if p.controller == "cpuset" and p.version == 1:
                for knob in ("cpuset.cpus", "cpuset.mems"):  # a new v1 cpuset starts empty
                    value = _read(os.path.join(parent, knob)).strip()
                    self._write(os.path.join(cur, knob), value)

    def _enable(self, directory: str, controllers: list[str]) -> None:
        control = os.path.join(directory, "cgroup.subtree_control")
        missing = [c for c in controllers if c not in _read(control).split()]
        if missing:
            self._write(control, " ".join("+" + c for c in missing))

    def _hierarchy_of(self, p: Place) -> Hierarchy:
        for h in self.found:
            if p.directory == h.mountpoint or p.directory.startswith(h.mountpoint.rstrip("/")
                                                                     + "/"):
                return h
        raise NotFound(f"no hierarchy holds {p.directory}")

    def delete(self, controllers: tuple[str, ...], path: str, recursive: bool = False) -> None:
        for p in self.places(controllers, path):
            if not os.path.isdir(p.directory):
                raise NotFound(f"cgroup {path} does not exist in the {p.controller} hierarchy")
            dirs = []
            for dirpath, _dirs, _files in os.walk(p.directory, topdown=False):
                dirs.append(dirpath)
            if len(dirs) > 1 and not recursive:
                raise Conflict(f"cgroup {path} has child groups: delete them first or give -r")
            for d in dirs:
                procs = _read(os.path.join(d, "cgroup.procs")).split()
                if procs:
                    raise Conflict(f"cgroup {d} still holds {len(procs)} process(es): "
                                   f"{' '.join(procs[:5])}")
            for d in dirs:
                self.ex.rmdir(d)
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    raise _fs_error(err, f"cannot remove cgroup {d}") from err

    def exists(self, controllers: tuple[str, ...], path: str) -> bool:
        return all(os.path.isdir(p.directory) for p in self.places(controllers, path))

    # -- cgset / cgget ------------------------------------------------------------------------
    def set(self, path: str, name: str, value: str) -> list[tuple[str, str]]:
        """Write ``name=value`` (translated for this host's version); returns the writes."""
        p = self.place_of_knob(name, path)
        self._need(p, path)

        def read(knob: str) -> str:
            return _read(os.path.join(p.directory, knob))

        writes = tr.to_v2_writes(name, value, read) if p.version == 2 \
            else tr.to_v1_writes(name, value)
        done = []
        for knob, v in writes:
            f = os.path.join(p.directory, knob)
            self._write(f, v)
            done.append((f, v))
        return done

    def get(self, path: str, name: str) -> str:
        p = self.place_of_knob(name, path)
        self._need(p, path)

        def read(knob: str) -> str:
            f = os.path.join(p.directory, knob)
            try:
                with open(f) as fh:
                    value = fh.read()
            except FileNotFoundError as err:
                raise NotFound(f"the kernel has no {knob} in {p.directory}") from err
            self.ex.read(f, value)  # --explain: a container's limit is this same file
            return value

        if p.version == 2:
            return tr.v1_value_on_v2(name, read)
        return tr.v2_value_on_v1(name, read)

    def _need(self, p: Place, path: str) -> None:
        if not os.path.isdir(p.directory):
            raise NotFound(f"cgroup {path} does not exist (no {p.directory}): "
                           f"create it with tomato cgroup create")

    def _write(self, path: str, value: str) -> None:
        self.ex.write(path, value)
        try:
            # O_TRUNC as the shell's ">" (kernfs ignores it; a plain file needs it)
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except FileNotFoundError as err:
            raise NotFound(f"the kernel has no {os.path.basename(path)} in "
                           f"{os.path.dirname(path)}") from err
        try:
            os.write(fd, value.encode())
        except OSError as err:
            raise _fs_error(err, f"cannot set {os.path.basename(path)} to {value!r}") from err
        finally:
            os.close(fd)

    # -- cgexec / classify ---------------------------------------------------------------------
    def attach(self, controllers: tuple[str, ...], path: str, pid: int) -> None:
        for p in self.places(controllers, path):
            self._need(p, path)
            self._write(os.path.join(p.directory, "cgroup.procs"), str(pid))

    def pids(self, controllers: tuple[str, ...], path: str) -> list[int]:
        out: set[int] = set()
        for p in self.places(controllers, path):
            for dirpath, _d, _f in os.walk(p.directory):
                out |= {int(x) for x in _read(os.path.join(dirpath, "cgroup.procs")).split()}
        return sorted(out)

    # -- stats ----------------------------------------------------------------------------------
    def stats(self, path: str) -> dict[str, int | None]:
        """CPU (ns), throttling, quota, memory and pids of the group, whichever version."""
        out: dict[str, int | None] = {}

        def get(name: str) -> int | None:
            try:
                v = self.get(path, name).split()[0]
            except (NotFound, Unavailable, InvalidArgument, IndexError):
                return None
            try:
                return int(v)
            except ValueError:
                return None

        out["cpu_usage_ns"] = get("cpuacct.usage")
        out["cpu_quota_us"] = get("cpu.cfs_quota_us")
        out["cpu_period_us"] = get("cpu.cfs_period_us")
        out["memory_bytes"] = get("memory.usage_in_bytes")
        limit = get("memory.limit_in_bytes")
        out["memory_limit_bytes"] = None if limit is None or limit >= int(tr.V1_MAX) else limit
        out["memory_failcnt"] = get("memory.failcnt")  # times usage hit the limit (v1 only)
        out["oom_kills"] = self._oom_kills(path)
        out["pids"] = get("pids.current")
        try:
            p = self.place("cpu", path)
            stat = _read(os.path.join(p.directory, "cpu.stat"))
            if stat:
                self.ex.read(os.path.join(p.directory, "cpu.stat"), stat)
            for line in stat.splitlines():
                k, _, v = line.partition(" ")
                if k in ("nr_throttled", "nr_periods"):
                    out[k] = int(v)
        except Unavailable:
            pass
        return out

    def _oom_kills(self, path: str) -> int | None:
        """Processes the OOM killer killed in the group: ``oom_kill N`` of v1's
        memory.oom_control or v2's memory.events."""
        try:
            knob = "memory.oom_control" if self.place("memory", path).version == 1 \
                else "memory.events"
            text = self.get(path, knob)
        except (NotFound, Unavailable, InvalidArgument):
            return None
        for line in text.splitlines():
            key, _sep, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return None

    def sample(self, path: str, duration: float, interval: float) -> list[Sample]:
        """Usage over time: one Sample per interval (CPU share since the previous one)."""
        if interval <= 0 or duration <= 0:
            raise InvalidArgument("duration and interval must be positive")
        samples: list[Sample] = []
        t0 = time.monotonic()
        prev_t, prev_cpu = t0, self.stats(path).get("cpu_usage_ns") or 0
        explaining, self.ex = self.ex, NULL  # the same files again: explained once
        try:
            return self._sample(path, duration, interval, samples, t0, prev_t, prev_cpu)
        finally:
            self.ex = explaining

    def _sample(self, path: str, duration: float, interval: float, samples: list[Sample],
                t0: float, prev_t: float, prev_cpu: int) -> list[Sample]:
        while True:
            time.sleep(interval)
            now = time.monotonic()
            st = self.stats(path)
            cpu = st.get("cpu_usage_ns") or 0
            share = (cpu - prev_cpu) / 1e9 / (now - prev_t) if now > prev_t else 0.0
            samples.append(Sample(now - t0, share, st.get("memory_bytes") or 0))
            prev_t, prev_cpu = now, cpu
            if now - t0 >= duration:
                return samples


@dataclass(frozen=True)
class Sample:
    seconds: float       # since sampling started
    cpus: float          # CPU time per wall time over the last interval (1.0 = one CPU)
    memory_bytes: int


def cgroups_of_pid(pid: int) -> dict[str, str]:
    """controller → group path (relative to the hierarchy root) of ``pid``, from
    /proc/PID/cgroup; the cgroup2 group is under the key ""."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            text = f.read()
    except FileNotFoundError as err:
        raise NotFound(f"no such process: {pid}") from err
    out: dict[str, str] = {}
    for line in text.splitlines():
        hid, ctrls, path = line.split(":", 2)
        if hid == "0" and ctrls == "":
            out[""] = path.strip("/")
            continue
        for c in ctrls.split(","):
            if c and not c.startswith("name="):
                out[c] = path.strip("/")
    return out


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _fs_error(err: OSError, what: str) -> Exception:
    reason = os.strerror(err.errno or 0).lower()
    if err.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
        return PermissionDenied(f"{what}: {reason}")
    if err.errno == errno.EBUSY:
        return Conflict(f"{what}: {reason}")
    return InvalidArgument(f"{what}: {reason}")


__all__ = ["DEFAULT_CONTROLLERS", "CgroupTool", "Place", "Sample", "cgroups_of_pid",
           "check_path", "parse_group"]
