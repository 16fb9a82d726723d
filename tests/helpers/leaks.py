"""Snapshot what tests may leak on the host (mounts, cgroups, containerised
processes, network namespaces, links) and describe the difference."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


#: The session's storage tmpfs.  Several test sessions may run at once on a
#: development machine; mounts under another session's storage are its own.
OWN_STORAGE = ""
STORAGE_PREFIX = "/tmp/tomato-test-"


def _mounts() -> set[str]:
    points = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            ours = bool(OWN_STORAGE) and point.startswith(OWN_STORAGE + "/")
            # Scratch mounts under /tmp belong to whoever made them (another
            # session, a benchmark): only ours there are our business.
            if point.startswith("/tmp/") and not ours:
                continue
            # ...and so are the cgroup v2 lane's image build's (mmdebstrap, run beside
            # the suite on a development machine): never ours to unmount
            if point.startswith("/var/tmp/tomato-cgroup2-vm/"):
                continue
            points.add(point)
    return points


def _cgroup_dirs() -> set[str]:
    """Every cgroup directory whose name mentions tomato (ours are all named so)."""
    found = set()
    if not CGROUP_ROOT.is_dir():
        return found
    for top in CGROUP_ROOT.iterdir():
        if not top.is_dir() or top.is_symlink():
            continue
        for dirpath, dirnames, _ in os.walk(top):
            if dirpath.count("/") - str(top).count("/") > 6:
                dirnames[:] = []
                continue
            for d in dirnames:
                # The runtime's default parent is "tomato"; other names
                # ("tomato-test-*", ...) are parents other test sessions own
                # while they run at the same time on a development machine.
                if os.path.basename(dirpath) == "tomato":
                    found.add(os.path.join(dirpath, d))
    return found


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError):
        return 0


def _descends_from_us(pid: int) -> bool:
    me = os.getpid()
    for _ in range(64):
        pid = _parent(pid)
        if pid == me:
            return True
        if pid <= 1:
            return False
    return False


def _foreign_pidns_processes() -> set[int]:
    """Our descendants living in another pid namespace: container processes.

    The test session is the subreaper of the containers it starts, so an
    orphaned container is still its descendant; other sessions' are not.
    """
    ours = os.readlink("/proc/self/ns/pid")
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != ours and _descends_from_us(int(entry)):
                pids.add(int(entry))
        except OSError:
            continue
    return pids


def _netns() -> set[str]:
    p = Path("/run/netns")
    return {n.name for n in p.iterdir()} if p.is_dir() else set()


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


@dataclass
class Snapshot:
    mounts: set[str] = field(default_factory=set)
    cgroups: set[str] = field(default_factory=set)
    processes: set[int] = field(default_factory=set)
    netns: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return any((self.mounts, self.cgroups, self.processes, self.netns, self.links))

    def describe(self) -> list[str]:
        out = []
        for name in ("mounts", "cgroups", "processes", "netns", "links"):
            items = getattr(self, name)
            if items:
                out.append(f"{name}: {sorted(items)[:5]}")
        return out


def snapshot() -> Snapshot:
    return Snapshot(_mounts(), _cgroup_dirs(), _foreign_pidns_processes(), _netns(), _links())


def _cgroup_is_ours(path: str) -> bool:
    """A new cgroup is this session's leak if its processes descend from us, or if
    it stays empty: another session's container cgroup holds that session's
    processes, and is empty only for a moment while it is made or removed."""
    def procs() -> list[int]:
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    found = procs()
    if found:
        return any(_descends_from_us(p) for p in found)
    import time

    time.sleep(0.2)
    return os.path.isdir(path) and not procs()


def _is_default_bridge(link: str) -> bool:
    """An engine root's default bridge ("tomato0", "tomato0-<tag>"): it stays when
    its last container goes, as Docker's docker0 (the session removes it at the end)."""
    return link == "tomato0" or link.startswith("tomato0-")


def difference(before: Snapshot, after: Snapshot) -> Snapshot:
    return Snapshot(
        after.mounts - before.mounts,
        {cg for cg in after.cgroups - before.cgroups if _cgroup_is_ours(cg)},
        after.processes - before.processes,
        after.netns - before.netns,
        {link for link in after.links - before.links if not _is_default_bridge(link)},
    )


def cleanup(left: Snapshot) -> None:
    """Best effort, so one leaking test does not fail every test after it."""
    for pid in left.processes:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for point in sorted(left.mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    # Cgroups are only reported, never removed here: on a development machine
    # another test session may be about to put a container in one.
    for ns in left.netns:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
    for link in left.links:
        subprocess.run(["ip", "link", "delete", link], capture_output=True)
