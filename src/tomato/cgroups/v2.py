"""The cgroup v2 backend: one directory in the unified hierarchy.

Controllers are enabled in ``cgroup.subtree_control`` along the path (as
runc's fs2 CreateCgroupPath does); devices are an eBPF program
(:mod:`.devices_bpf`, imported only when device rules are set).
"""

from __future__ import annotations

import os
import time

from tomato.errors import InvalidArgument, NotFound, TomatoError, Unavailable

from . import base
from .base import Manager, Write, check_cpuset, read_int, read_keyed, try_read, write
from .convert import blkio_weight_to_io_weight, shares_to_weight, swap_to_v2
from .resources import Resources


class V2Manager(Manager):
    version = 2

    def __init__(self, path: str, mountpoint: str, created: int, cgroups_path: str,
                 container_id: str) -> None:
        super().__init__()
        self.path = path
        self.mountpoint = mountpoint
        self._created = created
        self.cgroups_path = cgroups_path
        self.container_id = container_id

    @property
    def paths(self) -> dict[str, str]:
        return {"": self.path}  # runc's key for the unified hierarchy

    def to_dict(self) -> dict:
        return {"version": 2, "cgroups_path": self.cgroups_path,
                "container_id": self.container_id, "path": self.path,
                "mountpoint": self.mountpoint, "created": self._created}

    @classmethod
    def from_dict(cls, d: dict) -> V2Manager:
        return cls(d["path"], d["mountpoint"], d.get("created", 0),
                   d.get("cgroups_path", ""), d.get("container_id", ""))

    def _f(self, name: str) -> str:
        return os.path.join(self.path, name)

    # ---- lifecycle ------------------------------------------------------------
    def create(self) -> None:
        made = base.mkdir_p(self.path, self.explain)
        self._created = max(self._created, made)
        self._enable_controllers()

    def _enable_controllers(self) -> None:
        """Enable every available controller in each ancestor's subtree_control,
        from the mount root down to our parent, one controller per write so one
        refusal (e.g. a threaded subtree) does not block the others."""
        rel = os.path.relpath(self.path, self.mountpoint)
        parts = [] if rel == "." else rel.split(os.sep)
        d = self.mountpoint
        for part in parts:
            available = try_read(os.path.join(d, "cgroup.controllers")).split()
            enabled = set(try_read(os.path.join(d, "cgroup.subtree_control")).split())
            for ctrl in available:
                if ctrl in enabled:
                    continue
                try:
                    write(os.path.join(d, "cgroup.subtree_control"), "+" + ctrl, self.explain)
                except TomatoError as err:
                    self._warn(f"cannot enable the {ctrl} controller in {d}: {err}")
            d = os.path.join(d, part)

    def apply(self, pid: int) -> None:
        if not os.path.isdir(self.path):
            raise NotFound(f"cgroup {self.path} does not exist")
        try:
            write(self._f("cgroup.procs"), str(pid), self.explain)
        except TomatoError as err:
            if not os.path.exists(f"/proc/{pid}"):
                raise NotFound(f"process {pid} does not exist") from err
            raise

    def destroy(self) -> None:
        if os.path.isdir(self.path):
            base.remove_tree(self.path)
        base.remove_empty_parents(self.path, base.parents_to_remove(
            self._created, self.cgroups_path, self.container_id))

    # ---- freeze / kill ------------------------------------------------------------
    def freeze(self) -> None:
        self._freeze("1")

    def thaw(self) -> None:
        self._freeze("0")

    def _freeze(self, value: str) -> None:
        path = self._f("cgroup.freeze")
        if not os.path.exists(path):
            if not os.path.isdir(self.path):
                raise NotFound(f"cgroup {self.path} does not exist")
            raise Unavailable("cgroup.freeze needs linux 5.2 or later")
        write(path, value, self.explain)
        # cgroup.events reports "frozen 1" once every task has stopped.
        for i in range(1000):
            if str(read_keyed(self._f("cgroup.events")).get("frozen", -1)) == value:
                return
            time.sleep(0.001 if i < 10 else 0.01)
        if value == "1":
            write(path, "0", self.explain)
            raise Unavailable(f"cgroup {self.path} did not freeze in time")

    def frozen(self) -> bool:
        return read_int(self._f("cgroup.freeze")) == 1

    def _can_freeze(self) -> bool:
        return os.path.exists(self._f("cgroup.freeze"))

    def kill_all(self, sig: int = 9) -> None:
        self.require()
        if sig == 9 and os.path.exists(self._f("cgroup.kill")):
            write(self._f("cgroup.kill"), "1", self.explain)  # atomic, races no fork (linux 5.14)
            return
        super().kill_all(sig)

    def pids(self) -> list[int]:
        if not os.path.isdir(self.path):
            raise NotFound(f"cgroup {self.path} does not exist")
        return base.cgroup_pids(self.path)

    # ---- resources --------------------------------------------------------------
    def set(self, res: Resources) -> None:
        self.require()
        writes = self.plan(res)
        base.apply_writes(writes, self.explain)
        if res.devices is not None:
            from . import devices_bpf  # ctypes + bpf(2): only when needed
            devices_bpf.install(self.path, res.devices)

    def _add(self, w: list[Write], name: str, value: str, field: str,
             restore: bool = True, undo: str | None = None, optional: bool = False) -> None:
        path = self._f(name)
        if not os.path.exists(path):
            ctrl = name.split(".")[0]
            if optional:
                self._warn(f"{field}: this kernel has no {name}; ignored")
                return
            # A limit silently not applied is worse than a clear failure.
            raise Unavailable(f"{field}: the {ctrl} controller is not enabled for {self.path} "
                              f"(no {name}; a parent with processes of its own cannot "
                              "delegate controllers)")
        w.append(Write(path, value, restore, undo))

    def plan(self, res: Resources) -> list[Write]:
        w: list[Write] = []
        f = "linux.resources"
        unified = dict(res.unified)
        c = res.cpu
        if c is not None:
            if c.shares and "cpu.weight" not in unified:
                self._add(w, "cpu.weight", str(shares_to_weight(c.shares)), f + ".cpu.shares")
            if c.quota not in (None, 0) or c.period not in (None, 0):
                quota = "max" if c.quota in (None, 0, -1) else str(c.quota)
                if c.quota in (None, 0):
                    quota = (try_read(self._f("cpu.max")).split() or ["max"])[0]
                period = str(c.period) if c.period else \
                    (try_read(self._f("cpu.max")).split() + ["100000"])[1]
                self._add(w, "cpu.max", f"{quota} {period}", f + ".cpu.quota")
            if c.burst is not None:
                self._add(w, "cpu.max.burst", str(c.burst), f + ".cpu.burst", optional=True)
            if c.idle is not None:
                self._add(w, "cpu.idle", str(c.idle), f + ".cpu.idle", optional=True)
            if c.realtime_runtime not in (None, 0) or c.realtime_period not in (None, 0):
                self._warn(f"{f}.cpu.realtimeRuntime: cgroup v2 has no realtime bandwidth; "
                           "ignored")
            parent = os.path.dirname(self.path)
            for key in ("cpus", "mems"):
                value = getattr(c, key)
                if value:
                    check_cpuset(value, try_read(os.path.join(parent, f"cpuset.{key}.effective")),
                                 key)
                    self._add(w, f"cpuset.{key}", value, f"{f}.cpu.{key}")
        m = res.memory
        if m is not None:
            limit = None if m.limit in (None, 0) else m.limit
            if m.check_before_update:
                base.check_before_update(limit, self._f("memory.current"))
            try:
                swap = swap_to_v2(m.swap, limit if limit is not None else
                                  _current_limit(self._f("memory.max")))
            except ValueError as err:
                raise InvalidArgument(f"{f}.memory.swap: {err}, got {m.swap}") from err
            # memory.swap.max is independent of memory.max on v2: no ordering needed.
            if limit is not None:
                self._add(w, "memory.max", "max" if limit == -1 else str(limit),
                          f + ".memory.limit")
            if swap is not None:
                self._add(w, "memory.swap.max", "max" if swap == -1 else str(swap),
                          f + ".memory.swap", optional=True)  # swapaccount=0
            if m.reservation not in (None, 0):
                self._add(w, "memory.low", "max" if m.reservation == -1 else str(m.reservation),
                          f + ".memory.reservation")
            for name, val in (("kernel", m.kernel), ("kernelTCP", m.kernel_tcp)):
                if val not in (None, 0):
                    self._warn(f"{f}.memory.{name}: cgroup v2 has no separate kernel memory "
                               "limit; ignored")
            if m.swappiness is not None:
                self._warn(f"{f}.memory.swappiness: cgroup v2 has no per-cgroup swappiness; "
                           "ignored")
            if m.disable_oom_killer:
                self._warn(f"{f}.memory.disableOOMKiller: cgroup v2 cannot disable the oom "
                           "killer; ignored")
        if res.pids is not None and res.pids.limit is not None:
            lim = res.pids.limit
            self._add(w, "pids.max", "max" if lim <= 0 else str(lim), f + ".pids.limit")
        self._plan_io(res, w)
        if res.network is not None and (res.network.class_id is not None
                                        or res.network.priorities):
            self._warn(f"{f}.network: cgroup v2 has no net_cls/net_prio (use eBPF or "
                       "nftables socket cgroup matching); ignored")
        for hp in res.hugepage_limits:
            self._add(w, f"hugetlb.{hp.page_size}.max", str(hp.limit), f + ".hugepageLimits")
        for r in res.rdma:
            parts = [r.device]
            if r.hca_handles is not None:
                parts.append(f"hca_handle={r.hca_handles}")
            if r.hca_objects is not None:
                parts.append(f"hca_object={r.hca_objects}")
            self._add(w, "rdma.max", " ".join(parts), f + ".rdma", restore=False)
        # Raw unified keys come last so they override the converted values.
        for key, value in res.unified:
            path = self._f(key)
            if not os.path.exists(path):
                raise InvalidArgument(f"{f}.unified.{key}: no such file in {self.path} "
                                      "(controller not enabled?)")
            w.append(Write(path, value, restore="\n" not in try_read(path)))
        return w

    def _plan_io(self, res: Resources, w: list[Write]) -> None:
        b = res.block_io
        if b is None:
            return
        f = "linux.resources.blockIO"
        if b.weight:
            # io.bfq.weight takes the blkio scale unchanged (runc prefers it).
            if os.path.exists(self._f("io.bfq.weight")):
                self._add(w, "io.bfq.weight", str(b.weight), f + ".weight")
            else:
                self._add(w, "io.weight", f"default {blkio_weight_to_io_weight(b.weight)}",
                          f + ".weight", restore=False)
        if b.leaf_weight:
            self._warn(f"{f}.leafWeight: cgroup v2 has no leaf weight; ignored")
        for wd in b.weight_device:
            if wd.weight:
                if os.path.exists(self._f("io.bfq.weight")):
                    self._add(w, "io.bfq.weight", f"{wd.major}:{wd.minor} {wd.weight}",
                              f + ".weightDevice", restore=False)
                else:
                    self._add(w, "io.weight",
                              f"{wd.major}:{wd.minor} {blkio_weight_to_io_weight(wd.weight)}",
                              f + ".weightDevice", restore=False)
        for attr, key in (("throttle_read_bps_device", "rbps"),
                          ("throttle_write_bps_device", "wbps"),
                          ("throttle_read_iops_device", "riops"),
                          ("throttle_write_iops_device", "wiops")):
            for t in getattr(b, attr):
                dev = f"{t.major}:{t.minor}"
                old = _io_max_value(self._f("io.max"), dev, key)
                self._add(w, "io.max", f"{dev} {key}={t.rate or 'max'}",
                          f + "." + attr, restore=False, undo=f"{dev} {key}={old}")

    # ---- statistics --------------------------------------------------------------
    def stats(self) -> dict:
        self.require()
        st = read_keyed(self._f("cpu.stat"))
        out: dict = {"cpu": {
            "usage": {"total": st.get("usage_usec", 0) * 1000,
                      "kernel": st.get("system_usec", 0) * 1000,
                      "user": st.get("user_usec", 0) * 1000},
            "throttling": {"periods": st.get("nr_periods", 0),
                           "throttledPeriods": st.get("nr_throttled", 0),
                           "throttledTime": st.get("throttled_usec", 0) * 1000}}}
        if os.path.exists(self._f("memory.current")):
            events = read_keyed(self._f("memory.events"))
            raw = read_keyed(self._f("memory.stat"))
            out["memory"] = {
                "cache": raw.get("file", 0),
                "usage": {"limit": read_int(self._f("memory.max")),
                          "usage": read_int(self._f("memory.current")),
                          "max": read_int(self._f("memory.peak")),
                          "failcnt": events.get("max", 0)},
                "swap": {"limit": read_int(self._f("memory.swap.max")),
                         "usage": read_int(self._f("memory.swap.current")),
                         "max": read_int(self._f("memory.swap.peak")),
                         "failcnt": read_keyed(self._f("memory.swap.events")).get("max", 0)},
                "raw": raw,
                "oom_kill": events.get("oom_kill", 0),
                "oom": events.get("oom", 0),
            }
        if os.path.exists(self._f("pids.current")):
            out["pids"] = {"current": read_int(self._f("pids.current")),
                           "limit": read_int(self._f("pids.max")),
                           "max_events": read_keyed(self._f("pids.events")).get("max", 0)}
        if os.path.exists(self._f("io.stat")):
            by, ios = [], []
            for line in try_read(self._f("io.stat")).splitlines():
                dev, *kvs = line.split()
                major, _, minor = dev.partition(":")
                vals = dict(kv.split("=", 1) for kv in kvs if "=" in kv)
                for op, k in (("Read", "rbytes"), ("Write", "wbytes")):
                    by.append({"major": int(major), "minor": int(minor), "op": op,
                               "value": int(vals.get(k, 0))})
                for op, k in (("Read", "rios"), ("Write", "wios")):
                    ios.append({"major": int(major), "minor": int(minor), "op": op,
                                "value": int(vals.get(k, 0))})
            out["blkio"] = {"ioServiceBytesRecursive": by, "ioServicedRecursive": ios}
        sizes = [n.split(".")[1] for n in _listdir(self.path)
                 if n.startswith("hugetlb.") and n.endswith(".max") and n.count(".") == 2]
        if sizes:
            out["hugetlb"] = {s: {"usage": read_int(self._f(f"hugetlb.{s}.current")),
                                  "max": read_int(self._f(f"hugetlb.{s}.max")),
                                  "failcnt": read_keyed(self._f(f"hugetlb.{s}.events"))
                                  .get("max", 0)} for s in sizes}
        return out


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _current_limit(path: str) -> int | None:
    text = try_read(path)
    return None if text in ("", "max") else int(text)


def _io_max_value(path: str, dev: str, key: str) -> str:
    for line in try_read(path).splitlines():
        parts = line.split()
        if parts and parts[0] == dev:
            for kv in parts[1:]:
                k, _, v = kv.partition("=")
                if k == key:
                    return v
    return "max"
