"""cgroups v1 and v2 behind one Manager interface.

    mgr = new_manager(spec_linux.get("cgroupsPath", ""), container_id)
    mgr.create(); mgr.set(Resources.from_oci(spec_linux.get("resources")))
    mgr.apply(pid)                     # then: stats(), freeze()/thaw(), pids(),
    state["cgroups"] = mgr.to_dict()   #       kill_all(sig), destroy()
    mgr = load_manager(state["cgroups"])

Path semantics follow runc's cgroupfs driver: an absolute ``cgroupsPath`` is
relative to each hierarchy's root; a relative one, or an empty one (which
becomes ``tomato/<container_id>``), is relative to the calling process's own
cgroup in that hierarchy (/proc/self/cgroup).  Unified hosts get the v2
backend; legacy and hybrid hosts get the v1 backend (which on a hybrid host
also joins the cgroup2 hierarchy for ``unified`` keys and v2-only hugetlb).

With ``systemd=True`` (``tomato-runtime --systemd-cgroup``) the cgroup is a
transient systemd scope named by ``slice:prefix:name`` (:mod:`.systemd`, which
alone imports the D-Bus client); its state carries ``driver: "systemd"``.

Things accepted but not applied (kernel memory limits, net_cls where it is not
mounted...) are listed in ``manager.warnings``.  Stdlib only; the eBPF device
code (ctypes) is imported only when a v2 manager sets device rules.
"""

from __future__ import annotations

import os

from tomato.errors import InvalidArgument, NotFound, Unavailable

from .base import Manager
from .detect import Hierarchy, hierarchies, mode
from .resources import DEFAULT_ALLOWED_DEVICES, Resources

TYPE_CHECKING = False  # typing costs the runtime's start ~2 ms to import
if TYPE_CHECKING:
    from tomato.explain.trace import Explainer


def _cgroup_for(h: Hierarchy, cgroups_path: str) -> str:
    if cgroups_path.startswith("/"):
        # Relative to the hierarchy's root: the mount point shows that root.
        return os.path.normpath(h.mountpoint + "/" + cgroups_path.strip("/"))
    return os.path.normpath(h.directory(h.own_path) + "/" + cgroups_path)


def new_manager(cgroups_path: str, container_id: str,
                found: list[Hierarchy] | None = None, systemd: bool = False,
                annotations: dict[str, str] | None = None,
                explain: Explainer | None = None) -> Manager:
    """A manager for this container (nothing is created until ``create()``);
    ``systemd``: systemd's unit, with ``annotations``' org.systemd.property.* set;
    ``explain`` (--explain) is told of each directory it makes and file it writes."""
    return _told(_new_manager(cgroups_path, container_id, found, systemd, annotations),
                 explain)


def _told(manager: Manager, explain: Explainer | None) -> Manager:
    manager.explain = explain
    fs = getattr(manager, "fs", None)  # the systemd driver's files are its fs manager's
    if fs is not None:
        fs.explain = explain
    return manager


def _new_manager(cgroups_path: str, container_id: str, found: list[Hierarchy] | None,
                 systemd: bool, annotations: dict[str, str] | None) -> Manager:
    if systemd:
        from .systemd import is_running_systemd, new_systemd_manager

        if not is_running_systemd():  # before reading the hierarchies: runc's words
            from .systemd import NOT_RUNNING

            raise Unavailable(NOT_RUNNING)
        return new_systemd_manager(cgroups_path, container_id,
                                   hierarchies() if found is None else found, annotations)
    if cgroups_path == "":
        if not container_id or "/" in container_id:
            raise InvalidArgument(f"container id {container_id!r} cannot name a cgroup")
        cgroups_path = f"tomato/{container_id}"
    if ".." in cgroups_path.split("/") or ":" in cgroups_path:
        # "slice:prefix:name" is the systemd driver's syntax (--systemd-cgroup).
        raise InvalidArgument(f"linux.cgroupsPath {cgroups_path!r}: must be a plain path")
    if found is None:
        found = hierarchies()
    m = _mode(found)
    if m == "none":
        raise Unavailable("no cgroup hierarchy is mounted")
    if m == "unified":
        from .v2 import V2Manager

        h = next(h for h in found if h.version == 2)
        return V2Manager(_cgroup_for(h, cgroups_path), h.mountpoint, 0, cgroups_path,
                         container_id)
    from .v1 import V1Manager

    paths: dict[str, str] = {}
    unified = None
    for h in found:
        if h.version == 1:
            d = _cgroup_for(h, cgroups_path)
            for c in sorted(h.controllers):
                paths.setdefault(c, d)
        elif unified is None:
            unified = _cgroup_for(h, cgroups_path)
    return V1Manager(paths, unified, {}, cgroups_path, container_id)


class Primer:
    """A ``prime_migration`` in progress: one write to cgroup.procs, blocked in the
    kernel until its grace period is over, on a thread of ours or in a helper."""

    def __init__(self, procs: str, in_thread: bool) -> None:
        self._helper = 0
        self._done = None
        if not in_thread:
            try:
                self._helper = os.posix_spawn(
                    "/bin/sh", ["sh", "-c", 'exec 2>/dev/null; echo 0 > "$1"', "sh", procs],
                    {})
            except OSError:
                pass
            return
        import _thread

        done = self._done = _thread.allocate_lock()
        done.acquire()

        def rejoin() -> None:
            try:
                fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)
            except OSError:
                pass  # only an optimisation
            finally:
                done.release()

        try:
            _thread.start_new_thread(rejoin, ())
        except RuntimeError:  # no thread to be had: no priming, nothing lost
            done.release()

    def finished(self, wait: bool = True) -> bool:
        """Whether its write is over (waiting for it with ``wait``); reaps the helper."""
        if self._done is not None:
            if self._done.acquire(wait):
                self._done.release()
                return True
            return False
        if self._helper:
            try:
                pid, _ = os.waitpid(self._helper, 0 if wait else os.WNOHANG)
            except ChildProcessError:
                pid = self._helper
            if pid != self._helper:
                return False
            self._helper = 0
        return True


def prime_migration(in_thread: bool = True) -> Primer | None:
    """Start, in the background, the grace period the container's first cgroup move
    would wait for; None when there is nothing to prime.

    Moving a task between cgroups takes a global percpu rwsem for writing, and the
    first writer after a quiet spell waits for an RCU grace period (5-15 ms here)
    that later writers, for about one more grace period, do not.  So we re-join our
    own current cgroup (``echo 0 > cgroup.procs``: we move nowhere, nothing else is
    touched) at the start of a creation; its grace period passes while the bundle,
    rootfs and init are made, and the init's real move a few milliseconds later is
    quick.  On a thread (no exec to pay) when the caller forks only with os.fork;
    ``in_thread=False`` spawns a helper process instead, for the runtime, which clones
    through ctypes: a child cloned while another thread may hold the GIL would hang.
    """
    try:
        found = hierarchies()
    except OSError:
        return None
    pick = next((h for h in found if h.version == 1 and "pids" in h.controllers),
                found[0] if found else None)
    if pick is None:
        return None
    try:
        procs = os.path.join(pick.directory(pick.own_path), "cgroup.procs")
    except ValueError:
        return None
    return Primer(procs, in_thread)


def _mode(found: list[Hierarchy]) -> str:
    from .detect import mode_of

    return mode_of(found)


def load_manager(saved: dict, explain: Explainer | None = None) -> Manager:
    """Reopen the cgroups recorded by ``Manager.to_dict()`` (``explain``: as new_manager's)."""
    return _told(_load_manager(saved), explain)


def _load_manager(saved: dict) -> Manager:
    try:
        version = saved["version"]
        if saved.get("driver") == "systemd":
            from .systemd import SystemdManager

            return SystemdManager.from_dict(saved)
        if version == 1:
            from .v1 import V1Manager

            return V1Manager.from_dict(saved)
        if version == 2:
            from .v2 import V2Manager

            return V2Manager.from_dict(saved)
    except (KeyError, TypeError) as err:
        raise InvalidArgument(f"saved cgroup state is malformed: missing {err}") from err
    raise NotFound(f"saved cgroup state has unknown version {saved.get('version')!r}")


__all__ = [
    "DEFAULT_ALLOWED_DEVICES",
    "Hierarchy",
    "Manager",
    "Resources",
    "hierarchies",
    "load_manager",
    "mode",
    "new_manager",
]
