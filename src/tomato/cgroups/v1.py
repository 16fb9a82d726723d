"""The cgroup v1 backend: one directory per mounted controller hierarchy.

On a hybrid host the cgroup2 mount (often holding no controller, or only
hugetlb) is joined too, so ``unified`` keys and v2-only hugetlb can be used,
like runc does there.
"""

from __future__ import annotations

import errno
import os
import time

from tomato.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable

from . import base
from .base import Manager, Write, check_cpuset, read, read_int, try_read, write
from .resources import Resources, effective_device_rules

_FREEZE_ATTEMPTS = 1000  # polls of freezer.state (bounded: ~10 s)


class V1Manager(Manager):
    version = 1

    def __init__(self, paths: dict[str, str], unified: str | None, created: dict[str, int],
                 cgroups_path: str, container_id: str) -> None:
        super().__init__()
        self._paths = dict(paths)
        self._unified = unified
        self._created = dict(created)
        self.cgroups_path = cgroups_path
        self.container_id = container_id

    # ---- identity -------------------------------------------------------------
    @property
    def paths(self) -> dict[str, str]:
        out = dict(self._paths)
        if self._unified:
            out[""] = self._unified  # runc's key for the cgroup2 directory
        return out

    def _dirs(self) -> list[str]:
        seen: list[str] = []
        for d in self.paths.values():
            if d not in seen:
                seen.append(d)
        return seen

    def to_dict(self) -> dict:
        return {"version": 1, "cgroups_path": self.cgroups_path,
                "container_id": self.container_id, "paths": dict(self._paths),
                "unified": self._unified, "created": dict(self._created)}

    @classmethod
    def from_dict(cls, d: dict) -> V1Manager:
        return cls(d["paths"], d.get("unified"), d.get("created", {}),
                   d.get("cgroups_path", ""), d.get("container_id", ""))

    def _dir(self, controller: str) -> str | None:
        return self._paths.get(controller)

    # ---- lifecycle ------------------------------------------------------------
    def create(self) -> None:
        for d in self._dirs():
            made = base.mkdir_p(d, self.explain)
            self._created[d] = max(self._created.get(d, 0), made)
        cs = self._dir("cpuset")
        if cs:
            self._fill_cpuset(cs)

    def _fill_cpuset(self, directory: str) -> None:
        """A new v1 cpuset has empty cpus/mems and refuses tasks: copy them from
        the parent, from the top down, as runc does (cpuset.go ensureParent)."""
        chain = []
        d = directory
        while os.path.exists(os.path.join(os.path.dirname(d), "cpuset.cpus")):
            chain.append(d)
            d = os.path.dirname(d)
        for d in reversed(chain):
            parent = os.path.dirname(d)
            for name in ("cpuset.cpus", "cpuset.mems"):
                try:
                    if read(os.path.join(d, name)).strip() == "":
                        write(os.path.join(d, name), read(os.path.join(parent, name)).strip(),
                              self.explain)
                except FileNotFoundError:
                    pass

    def apply(self, pid: int) -> None:
        if not self.exists():
            raise NotFound(f"cgroup {self.describe()} does not exist")
        cs = self._dir("cpuset")
        if cs:
            self._fill_cpuset(cs)
        for d in self._dirs():
            try:
                write(os.path.join(d, "cgroup.procs"), str(pid), self.explain)
            except (InvalidArgument, PermissionDenied, Unavailable) as err:
                if not os.path.exists(f"/proc/{pid}"):
                    raise NotFound(f"process {pid} does not exist") from err
                raise

    def forget_parents(self) -> None:
        """The parents are someone else's (systemd's slices): destroy() removes the
        container's own directories only."""
        self._created = {}

    def destroy(self) -> None:
        for d in self._dirs():
            if os.path.isdir(d):
                base.remove_tree(d)
            base.remove_empty_parents(d, base.parents_to_remove(
                self._created.get(d, 0), self.cgroups_path, self.container_id))

    # ---- freezer ----------------------------------------------------------------
    def _can_freeze(self) -> bool:
        d = self._dir("freezer")
        return d is not None and os.path.isdir(d)

    def _freezer(self) -> str:
        d = self._dir("freezer")
        if d is None:
            raise Unavailable("the freezer cgroup controller is not mounted")
        return os.path.join(d, "freezer.state")

    def freeze(self) -> None:
        self.require()
        path = self._freezer()
        # The kernel may report FREEZING for a while (tasks in uninterruptible
        # sleep); keep asking, bounded, like runc's freezer.go.
        for i in range(_FREEZE_ATTEMPTS):
            if i % 50 == 0:
                write(path, "FROZEN", self.explain)
            if read(path).strip() == "FROZEN":
                return
            time.sleep(0.001 if i < 10 else 0.01)
        write(path, "THAWED", self.explain)
        raise Unavailable(f"cgroup {os.path.dirname(path)} did not freeze in time")

    def thaw(self) -> None:
        self.require()
        path = self._freezer()
        write(path, "THAWED", self.explain)
        for _ in range(_FREEZE_ATTEMPTS):
            if read(path).strip() == "THAWED":
                return
            time.sleep(0.001)

    def frozen(self) -> bool:
        try:
            return read(self._freezer()).strip() in ("FROZEN", "FREEZING")
        except FileNotFoundError:
            return False
        except OSError as err:
            # ENODEV: the cgroup was removed between the open and the read (its
            # container exited and its monitor deleted it): gone is not frozen.  A
            # `stop` of 100 containers at once met it and failed "No such device".
            if err.errno == errno.ENODEV:
                return False
            raise

    # ---- processes ----------------------------------------------------------------
    def pids(self) -> list[int]:
        for ctrl in ("pids", "freezer", "devices", "memory", "cpu"):
            d = self._dir(ctrl)
            if d and os.path.isdir(d):
                return base.cgroup_pids(d)
        for d in self._dirs():
            if os.path.isdir(d):
                return base.cgroup_pids(d)
        raise NotFound(f"cgroup {self.describe()} does not exist")

    # ---- resources --------------------------------------------------------------
    def set(self, res: Resources) -> None:
        self.require()
        writes = self.plan(res)
        base.apply_writes(writes, self.explain)

    def plan(self, res: Resources) -> list[Write]:
        """Validate ``res`` against this host and return the writes, in order."""
        w: list[Write] = []
        self._plan_cpu(res, w)
        self._plan_memory(res, w)
        if res.pids is not None and res.pids.limit is not None:
            limit = res.pids.limit
            self._add(w, "pids", "pids.max", "max" if limit <= 0 else str(limit),
                      "linux.resources.pids")
        self._plan_blkio(res, w)
        self._plan_devices(res, w)
        self._plan_network(res, w)
        self._plan_misc(res, w)
        return w

    def _add(self, w: list[Write], ctrl: str, name: str, value: str, field: str,
             restore: bool = True, undo: str | None = None, optional: bool = False) -> None:
        d = self._dir(ctrl)
        if d is None:
            self._warn(f"{field}: the {ctrl} cgroup controller is not mounted; ignored")
            return
        path = os.path.join(d, name)
        if optional and not os.path.exists(path):
            self._warn(f"{field}: this kernel has no {name}; ignored")
            return
        w.append(Write(path, value, restore, undo))

    def _plan_cpu(self, res: Resources, w: list[Write]) -> None:
        c = res.cpu
        if c is None:
            return
        f = "linux.resources.cpu"
        if c.shares:
            self._add(w, "cpu", "cpu.shares", str(c.shares), f + ".shares")
        # Quota and period are checked by the kernel against each other: lift the
        # quota before changing the period, and set the period before a quota.
        quota = None if c.quota in (None, 0) else str(c.quota)
        period = None if c.period in (None, 0) else str(c.period)
        if quota == "-1":
            self._add(w, "cpu", "cpu.cfs_quota_us", quota, f + ".quota")
        if period:
            self._add(w, "cpu", "cpu.cfs_period_us", period, f + ".period")
        if quota and quota != "-1":
            self._add(w, "cpu", "cpu.cfs_quota_us", quota, f + ".quota")
        if c.burst is not None:
            self._add(w, "cpu", "cpu.cfs_burst_us", str(c.burst), f + ".burst", optional=True)
        rt_period, rt_runtime = c.realtime_period or None, c.realtime_runtime or None
        if rt_runtime is not None:
            self._plan_rt_parents(rt_runtime, rt_period, w)
        d = self._dir("cpu")
        current = read_int(os.path.join(d, "cpu.rt_runtime_us"), 0) if d else 0
        # runtime <= period always holds in the kernel: a period shorter than the
        # runtime in place goes after the new runtime (runc retries it so)
        for key in (("runtime", "period") if rt_period is not None and rt_runtime is not None
                    and rt_period < current else ("period", "runtime")):
            if key == "period" and rt_period is not None:
                self._add(w, "cpu", "cpu.rt_period_us", str(rt_period),
                          f + ".realtimePeriod", optional=True)
            elif key == "runtime" and rt_runtime is not None:
                self._add(w, "cpu", "cpu.rt_runtime_us", str(rt_runtime),
                          f + ".realtimeRuntime", optional=True)
        if c.idle is not None:
            self._add(w, "cpu", "cpu.idle", str(c.idle), f + ".idle", optional=True)
        cs = self._dir("cpuset")
        if (c.cpus or c.mems) and cs is None:
            self._warn(f"{f}.cpus: the cpuset cgroup controller is not mounted; ignored")
        elif cs is not None:
            parent = os.path.dirname(cs)
            for key, name, kind in (("cpus", "cpuset.cpus", "cpu"),
                                    ("mems", "cpuset.mems", "node")):
                value = getattr(c, key)
                if value:
                    avail = try_read(os.path.join(parent, "cpuset.effective_" + key)) \
                        or try_read(os.path.join(parent, name)) or base.online(kind)
                    check_cpuset(value, avail, key)
                    self._add(w, "cpuset", name, value, f"{f}.{key}")

    def _plan_rt_parents(self, runtime: int, period: int | None, w: list[Write]) -> None:
        """A child's rt bandwidth (runtime/period) must fit in its parent's, with its
        siblings': grow the runtime of the parents this container owns (made by us, or
        the shared default "tomato") from the top down.  Parents we do not own are left
        to their owner (the kernel's EINVAL then names the file)."""
        d = self._dir("cpu")
        if d is None or runtime < 0:
            return
        owned = base.parents_to_remove(self._created.get(d, 0), self.cgroups_path,
                                       self.container_id)
        if period is None:
            period = read_int(os.path.join(d, "cpu.rt_period_us"), 1_000_000) or 1_000_000
        ratio, child, wanted = runtime / period, d, []
        for _ in range(owned):
            parent = os.path.dirname(child)
            try:
                current = int(read(os.path.join(parent, "cpu.rt_runtime_us")).strip())
                parent_period = int(read(os.path.join(parent, "cpu.rt_period_us")).strip())
            except (OSError, ValueError):
                break
            if current == -1:
                break  # unlimited: nothing above needs to grow
            for sibling in os.scandir(parent):
                if sibling.is_dir() and sibling.path != child:
                    r = read_int(os.path.join(sibling.path, "cpu.rt_runtime_us"), 0)
                    p = read_int(os.path.join(sibling.path, "cpu.rt_period_us"), 0)
                    if r > 0 and p > 0:
                        ratio += r / p
            needed = -int(-(ratio * parent_period - 1e-9) // 1)  # ceil, whole microseconds
            if current < needed:
                wanted.append((os.path.join(parent, "cpu.rt_runtime_us"), needed))
            ratio, child = max(needed, current) / parent_period, parent
        for path, value in reversed(wanted):
            w.append(Write(path, str(value)))

    def _plan_memory(self, res: Resources, w: list[Write]) -> None:
        m = res.memory
        if m is None:
            return
        f = "linux.resources.memory"
        d = self._dir("memory")
        limit = None if m.limit in (None, 0) else m.limit
        if m.check_before_update and d:
            base.check_before_update(limit, os.path.join(d, "memory.usage_in_bytes"))
        swap = None if m.swap in (None, 0) else m.swap
        if limit not in (None, -1) and swap not in (None, -1) and swap < limit:  # type: ignore
            raise InvalidArgument(f"{f}.swap: must be at least memory.limit ({limit}), got {swap}")
        if limit == -1 and swap is None:
            swap = -1  # unlimited memory means unlimited memory+swap too (runc)
        has_memsw = d is not None and os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes"))
        if swap is not None and not has_memsw:
            self._warn(f"{f}.swap: this kernel has no swap accounting (memsw); ignored")
            swap = None
        lim = Write(os.path.join(d, "memory.limit_in_bytes"), str(limit)) if d and limit else None
        sw = Write(os.path.join(d, "memory.memsw.limit_in_bytes"), str(swap)) \
            if d and swap is not None else None
        if d is None and (limit or swap):
            self._warn(f"{f}: the memory cgroup controller is not mounted; ignored")
        # memsw >= limit always holds in the kernel: raise memsw first when
        # growing, lower the limit first when shrinking (runc memory.go).
        if lim and sw:
            cur = read_int(lim.path)
            if swap == -1 or cur < swap:  # type: ignore[operator]
                w += [sw, lim]
            else:
                w += [lim, sw]
        else:
            w += [x for x in (lim, sw) if x]
        if m.reservation not in (None, 0):
            self._add(w, "memory", "memory.soft_limit_in_bytes", str(m.reservation),
                      f + ".reservation")
        # Kernel memory limits are deprecated (linux 5.4) and gone (6.x); runc too
        # accepts and ignores them with a warning.
        for name, val in (("kernel", m.kernel), ("kernelTCP", m.kernel_tcp)):
            if val not in (None, 0):
                self._warn(f"{f}.{name}: kernel memory limits are deprecated and ignored")
        if m.swappiness is not None:
            self._add(w, "memory", "memory.swappiness", str(m.swappiness), f + ".swappiness")
        if m.disable_oom_killer:
            self._add(w, "memory", "memory.oom_control", "1", f + ".disableOOMKiller")
        if m.use_hierarchy is False:
            self._warn(f"{f}.useHierarchy: the kernel always uses the hierarchy; ignored")

    def _plan_blkio(self, res: Resources, w: list[Write]) -> None:
        b = res.block_io
        if b is None:
            return
        f = "linux.resources.blockIO"
        d = self._dir("blkio")
        if d is None:
            self._warn(f"{f}: the blkio cgroup controller is not mounted; ignored")
            return

        def pick(*names: str) -> str | None:
            return next((n for n in names if os.path.exists(os.path.join(d, n))), None)

        if b.weight:
            name = pick("blkio.weight", "blkio.bfq.weight")
            if name:
                self._add(w, "blkio", name, str(b.weight), f + ".weight")
            else:
                self._warn(f"{f}.weight: no proportional-weight i/o scheduler (cfq/bfq); ignored")
        if b.leaf_weight:
            self._add(w, "blkio", "blkio.leaf_weight", str(b.leaf_weight), f + ".leafWeight",
                      optional=True)
        for wd in b.weight_device:
            if wd.weight:
                name = pick("blkio.weight_device", "blkio.bfq.weight_device")
                if name:
                    self._add(w, "blkio", name, f"{wd.major}:{wd.minor} {wd.weight}",
                              f + ".weightDevice", restore=False)
                else:
                    self._warn(f"{f}.weightDevice: no proportional-weight i/o scheduler; "
                               "ignored")
            if wd.leaf_weight:
                self._add(w, "blkio", "blkio.leaf_weight_device",
                          f"{wd.major}:{wd.minor} {wd.leaf_weight}", f + ".weightDevice",
                          restore=False, optional=True)
        for attr, name in (("throttle_read_bps_device", "blkio.throttle.read_bps_device"),
                           ("throttle_write_bps_device", "blkio.throttle.write_bps_device"),
                           ("throttle_read_iops_device", "blkio.throttle.read_iops_device"),
                           ("throttle_write_iops_device", "blkio.throttle.write_iops_device")):
            path = os.path.join(d, name)
            for t in getattr(b, attr):
                old = _device_value(path, t.major, t.minor)
                w.append(Write(path, f"{t.major}:{t.minor} {t.rate}", False,
                               f"{t.major}:{t.minor} {old}"))

    def _plan_devices(self, res: Resources, w: list[Write]) -> None:
        if res.devices is None:
            return
        d = self._dir("devices")
        if d is None:
            self._warn("linux.resources.devices: the devices cgroup controller is not "
                       "mounted; ignored")
            return
        default_allow, exceptions = effective_device_rules(res.devices)
        allow, deny = os.path.join(d, "devices.allow"), os.path.join(d, "devices.deny")
        target = []
        for r in exceptions:
            target += [(r.allow, line) for line in r.v1_lines()]
        current = try_read(os.path.join(d, "devices.list")).splitlines()
        if not default_allow and current and "a *:* rwm" not in current:
            # Already default-deny: move to the new list without a moment where
            # the running container loses a device it keeps (runc's emulator
            # computes such minimal transitions too).
            keep = {line for ok, line in target if ok}
            for line in current:
                if line not in keep:
                    w.append(Write(deny, line, False))
            for ok, line in target:
                if not ok or line not in current:
                    w.append(Write(allow if ok else deny, line, False))
            return
        # Otherwise reset with "a" (allow-all or deny-all) and add the exceptions.
        w.append(Write(allow if default_allow else deny, "a", False))
        for ok, line in target:
            w.append(Write(allow if ok else deny, line, False))

    def _plan_network(self, res: Resources, w: list[Write]) -> None:
        n = res.network
        if n is None:
            return
        f = "linux.resources.network"
        if n.class_id is not None:
            self._add(w, "net_cls", "net_cls.classid", str(n.class_id), f + ".classID")
        for name, prio in n.priorities:
            self._add(w, "net_prio", "net_prio.ifpriomap", f"{name} {prio}", f + ".priorities",
                      restore=False)

    def _plan_misc(self, res: Resources, w: list[Write]) -> None:
        f = "linux.resources"
        for hp in res.hugepage_limits:
            v1 = self._dir("hugetlb")
            if v1:
                self._add(w, "hugetlb", f"hugetlb.{hp.page_size}.limit_in_bytes", str(hp.limit),
                          f + ".hugepageLimits", optional=True)
            elif self._unified and os.path.exists(
                    os.path.join(self._unified, f"hugetlb.{hp.page_size}.max")):
                w.append(Write(os.path.join(self._unified, f"hugetlb.{hp.page_size}.max"),
                               str(hp.limit)))
            else:
                self._warn(f"{f}.hugepageLimits: no hugetlb controller for {hp.page_size} "
                           "pages here; ignored")
        for r in res.rdma:
            parts = [r.device]
            if r.hca_handles is not None:
                parts.append(f"hca_handle={r.hca_handles}")
            if r.hca_objects is not None:
                parts.append(f"hca_object={r.hca_objects}")
            self._add(w, "rdma", "rdma.max", " ".join(parts), f + ".rdma", restore=False)
        if res.unified:
            if not self._unified:
                raise InvalidArgument(f"{f}.unified: needs a cgroup2 hierarchy, and this host "
                                      "mounts only cgroup v1")
            for key, value in res.unified:
                path = os.path.join(self._unified, key)
                if not os.path.exists(path):
                    raise InvalidArgument(f"{f}.unified.{key}: no such file in the cgroup2 "
                                          "hierarchy of this hybrid host")
                w.append(Write(path, value))

    # ---- statistics --------------------------------------------------------------
    def stats(self) -> dict:
        self.require()
        from .v1stats import collect

        return collect(self._paths)


def _device_value(path: str, major: int, minor: int) -> str:
    """The current per-device value of a throttle file ("0": unlimited)."""
    for line in try_read(path).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == f"{major}:{minor}":
            return parts[1]
    return "0"
