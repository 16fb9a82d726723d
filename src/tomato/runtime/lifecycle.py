"""start, state, kill, delete, pause/resume and friends on existing containers.

Each operation has one shape: load the record → compute the true status
(from /proc, the exec fifo and the freezer, never from the record alone) →
check the transition table → act → persist.
"""

from __future__ import annotations

import _signal  # the signal module's numbers without its enum (~2 ms of imports)
import errno
import os
import time

from tomato import fastjson as json
from tomato.errors import Conflict, NotFound, TomatoError
from tomato.oci.state import Status, check_transition
from tomato.runtime.log import RuntimeLog
from tomato.runtime.statedir import Record, StateDir, alive, oci_state, signal_pinned

TYPE_CHECKING = False  # importing typing costs ~2 ms on the start path
if TYPE_CHECKING:
    from typing import Any

    from tomato.explain.trace import Explainer
    from tomato.oci.spec import Spec

SIGKILL = _signal.SIGKILL


def spec_of(rec: Record) -> Spec:
    """The container's parsed config, parsed once per process."""
    spec = rec._spec
    if spec is None:
        from tomato.oci.spec import parse_spec

        spec = rec._spec = parse_spec(rec.config)
    return spec


def has_hooks(rec: Record, kind: str) -> bool:
    """Whether config.hooks holds hooks of ``kind``, read from the raw config as the
    C front end reads it (anything odd counts as hooks: parse_spec then words it)."""
    hooks = rec.config.get("hooks")
    if hooks is None:
        return False
    if not isinstance(hooks, dict):
        return True
    return bool(hooks.get(kind))


def shares_pid_ns(rec: Record) -> bool:
    """No pid namespace of its own, or one joined by path (as front/state.c reads it)."""
    linux = rec.config.get("linux")
    namespaces = linux.get("namespaces") if isinstance(linux, dict) else None
    if not isinstance(namespaces, list):
        return True
    for ns in namespaces:
        if isinstance(ns, dict) and ns.get("type") == "pid":
            path = ns.get("path")
            return isinstance(path, str) and path != ""
    return True


def manager_of(rec: Record, explain: Explainer | None = None) -> Any:
    """The record's cgroup manager, or None; ``explain`` (--explain) is told of its writes."""
    if not rec.cgroup:
        return None
    from tomato import cgroups

    return cgroups.load_manager(rec.cgroup, explain)


def status_of(states: StateDir, rec: Record) -> str:
    if rec.status == "creating":
        # Creation in progress only while the creating runtime still lives.
        if alive(rec.creator_pid, rec.creator_start) and rec.creator_pid != os.getpid():
            return Status.CREATING
        return Status.STOPPED
    if not alive(rec.pid, rec.pid_start):
        return Status.STOPPED
    if os.path.exists(states.fifo(rec.id)):
        return Status.CREATED
    mgr = manager_of(rec)
    if mgr is not None and mgr.frozen():
        return Status.PAUSED
    return Status.RUNNING


def load(states: StateDir, container_id: str,
         rec: Record | None = None) -> tuple[Record, str]:
    """The record (read from disk unless the caller holds it) and its true status."""
    if rec is None:
        rec = states.load(container_id)
    return rec, status_of(states, rec)


def state(states: StateDir, container_id: str) -> dict[str, Any]:
    rec, status = load(states, container_id)
    return oci_state(rec, status)


def start(states: StateDir, container_id: str, log: RuntimeLog,
          rec: Record | None = None) -> Record:
    rec, status = load(states, container_id, rec)
    check_transition("start", container_id, status)
    fifo = states.fifo(container_id)
    # With startContainer hooks, the init reports their failure on start.fifo
    # (opened before the go, so its writer is surely still there): see hooks.py.
    outcome = _open_start_outcome(states, container_id) \
        if has_hooks(rec, "startContainer") else None
    try:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            if err.errno == errno.ENXIO:
                raise Conflict(f"container {container_id} init is not waiting to start") from err
            raise
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
        os.unlink(fifo)
        rec.status = "running"
        states.save(rec)
        if outcome is not None:
            _await_start_outcome(outcome)
    finally:
        if outcome is not None:
            os.close(outcome)
    log.debug(f"start: container {container_id} started (pid {rec.pid})")
    if has_hooks(rec, "poststart"):
        from tomato.runtime.hooks import run_hooks_warning

        spec = spec_of(rec)
        run_hooks_warning("poststart", spec.hooks["poststart"],
                          json.dumps(oci_state(rec, "running")), log.warning)
    return rec


def _open_start_outcome(states: StateDir, container_id: str) -> int | None:
    from tomato.runtime.statedir import START_FIFO

    path = os.path.join(states.path(container_id), START_FIFO)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    os.unlink(path)
    return fd


def _await_start_outcome(fd: int) -> None:
    """Read until the init execs (EOF: its end is close-on-exec) or reports why not."""
    os.set_blocking(fd, True)
    report = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not chunk:
            break
        report += chunk
    if report:
        raise TomatoError(report.decode(errors="replace").strip())


def parse_signal(value: str) -> int:
    """A signal by number or name (signal.Signals' names, SIG optional, any case);
    0 is valid: it only asks whether the target is there."""
    value = value.strip()
    if value.isdigit():
        num = int(value)
        if 0 <= num < _signal.NSIG:
            return num
        raise TomatoError(f"invalid signal {value}")
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    found = None if name.startswith("SIG_") else getattr(_signal, name, None)
    if type(found) is not int:
        raise TomatoError(f"unknown signal {value!r}")
    return found


def kill(states: StateDir, container_id: str, sig: int, all_processes: bool = False,
         explain: Explainer | None = None) -> None:
    rec, status = load(states, container_id)
    if status == Status.STOPPED:
        if all_processes:
            # As runc 1.1: --all signals whatever the cgroup still holds (a child of an
            # init that shared the host's pid namespace, or nothing) and succeeds.
            # containerd's shim runs `kill --all ID 9` after every exit and retries
            # the exit's handling for as long as it fails (stop and rm then hang).
            mgr = manager_of(rec, explain)
            if mgr is not None and mgr.exists():
                mgr.kill_all(sig)
            return
        if sig == 0:
            # "Is it there?": it is, stopped (runc 1.1 says "container not running";
            # the spec's kill only sends signals, and 0 sends none).
            return
        # runc's words: containerd's shim matches "container not running" to learn
        # that the process is already gone.
        raise Conflict(f"container not running: {container_id}")
    check_transition("kill", container_id, status)
    mgr = manager_of(rec, explain)
    if all_processes and mgr is not None:
        mgr.kill_all(sig)
        return
    if not signal_pinned(rec.pid, rec.pid_start, sig):  # died since load(): its pid is
        if sig == 0:                                     # not its own any more
            return
        raise Conflict(f"container not running: {container_id}")
    if status == Status.PAUSED and mgr is not None and sig == SIGKILL:
        mgr.thaw()


def _wait_gone(rec: Record, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(rec.pid, rec.pid_start):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def delete(states: StateDir, container_id: str, force: bool, log: RuntimeLog,
           rec: Record | None = None, explain: Explainer | None = None) -> None:
    try:
        rec, status = load(states, container_id, rec)
    except NotFound:
        if force:
            # No record, or one nobody can read (corrupt): what it still names is
            # stopped and removed as far as it can be, and its directory must not keep
            # the id taken forever.
            _delete_unreadable(states, container_id)
            states.remove(container_id)
            return
        raise
    if status in (Status.RUNNING, Status.PAUSED, Status.CREATING) and not force:
        raise Conflict(f"cannot delete container {container_id} that is not stopped: "
                       f"{status}")
    try:
        mgr = manager_of(rec, explain)
    except TomatoError:
        if not force:
            raise
        mgr = None  # a malformed cgroup record: its cgroups are unknown, the record goes
    if status != Status.STOPPED:
        if mgr is not None and (shares_pid_ns(rec) or status == Status.PAUSED):
            mgr.kill_all(SIGKILL)
        signal_pinned(rec.pid, rec.pid_start, SIGKILL)  # (gone already: as well)
        if mgr is not None and status == Status.PAUSED:
            mgr.thaw()
        if not _wait_gone(rec):
            raise TomatoError(f"container {container_id} init (pid {rec.pid}) did not die")
    elif mgr is not None and (shares_pid_ns(rec) or rec.status == "creating") \
            and mgr.exists():
        # The init is gone but, sharing the host pid namespace, its children may not
        # be; or the runtime creating the container was killed, and its init, already
        # in the cgroup, waits for a word (or a start) that will never come.
        mgr.kill_all(SIGKILL)
    if has_hooks(rec, "poststop"):
        from tomato.runtime.hooks import run_hooks_warning

        try:
            hooks = spec_of(rec).hooks.get("poststop", ())
        except TomatoError as err:  # a poststop hook's failure is a warning; so is this
            log.warning(f"poststop hooks not run: {err}")
        else:
            run_hooks_warning("poststop", hooks, json.dumps(oci_state(rec, "stopped")),
                              log.warning)
    if mgr is not None:
        mgr.destroy()
    if rec.host_mounts:
        from tomato.runtime import hostmounts

        hostmounts.remove(rec.host_mounts, log.warning)
    states.remove(container_id)
    log.debug(f"delete: container {container_id} removed")


def _delete_unreadable(states: StateDir, container_id: str) -> None:
    """delete --force of a record statedir.load refuses (a member it does not know, a
    lone surrogate, a wrong type): the init it names (with its start time) is killed
    and the cgroups it names removed, when those parts can be read; else nothing, as
    before.  Otherwise an init waiting on exec.fifo and its cgroups stay, and no
    command can reach them any more (review 14, #6)."""
    from tomato.runtime.statedir import MAX_STATE_SIZE, STATE_FILE

    try:
        fd = os.open(os.path.join(states.path(container_id), STATE_FILE),
                     os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            import stat

            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return
            data = os.read(fd, MAX_STATE_SIZE + 1)
        finally:
            os.close(fd)
        raw = json.loads(data)
    except (OSError, ValueError, RecursionError, SystemError):
        return
    if not isinstance(raw, dict):
        return
    pid, start = raw.get("pid"), raw.get("pid_start")
    if type(pid) is int and type(start) is int and pid > 0 and signal_pinned(pid, start, SIGKILL):
        _wait_gone(Record(id=container_id, bundle="", rootfs="", created="", pid=pid,
                          pid_start=start))
    cgroup = raw.get("cgroup")
    if isinstance(cgroup, dict):
        from tomato import cgroups

        try:
            mgr = cgroups.load_manager(cgroup)
            if mgr.exists():
                mgr.kill_all(SIGKILL)
                mgr.destroy()
        except (TomatoError, OSError, KeyError, TypeError, ValueError, AttributeError):
            pass  # a part that cannot be read: left, as before


def pause(states: StateDir, container_id: str, explain: Explainer | None = None) -> None:
    rec, status = load(states, container_id)
    check_transition("pause", container_id, status)
    mgr = manager_of(rec, explain)
    if mgr is None:
        raise Conflict(f"container {container_id} has no cgroup to freeze")
    mgr.freeze()


def resume(states: StateDir, container_id: str, explain: Explainer | None = None) -> None:
    rec, status = load(states, container_id)
    check_transition("resume", container_id, status)
    mgr = manager_of(rec, explain)
    if mgr is None:
        raise Conflict(f"container {container_id} has no cgroup to thaw")
    mgr.thaw()


def pids(states: StateDir, container_id: str) -> list[int]:
    rec, status = load(states, container_id)
    mgr = manager_of(rec)
    if mgr is None:
        return [rec.pid] if status != Status.STOPPED else []
    return sorted(mgr.pids())


def update(states: StateDir, container_id: str, resources: dict[str, Any],
           explain: Explainer | None = None) -> list[str]:
    rec, status = load(states, container_id)
    check_transition("update", container_id, status)
    mgr = manager_of(rec, explain)
    if mgr is None:
        raise Conflict(f"container {container_id} has no cgroups to update")
    from tomato import cgroups

    merged = dict((rec.config.get("linux") or {}).get("resources") or {})
    for key, value in resources.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    if resources.get("devices") is not None:
        from tomato.runtime.create import with_default_devices

        resources = with_default_devices(resources, spec_of(rec).linux.devices) or {}
    res = cgroups.Resources.from_oci(resources)
    mgr.set(res)  # a paused container stays paused: nothing here thaws it
    rec.config.setdefault("linux", {})["resources"] = merged
    states.save(rec)
    return list(getattr(mgr, "warnings", []))


def stats(states: StateDir, container_id: str) -> dict[str, Any]:
    rec, status = load(states, container_id)
    if status == Status.STOPPED:
        raise Conflict(f"container {container_id} is not running")
    mgr = manager_of(rec)
    if mgr is None:
        raise Conflict(f"container {container_id} has no cgroups")
    result: dict[str, Any] = mgr.stats()
    return result


def list_all(states: StateDir) -> list[dict[str, Any]]:
    out = []
    for cid in states.ids():
        try:
            rec, status = load(states, cid)
        except NotFound:
            continue
        out.append(oci_state(rec, status))
    return out
