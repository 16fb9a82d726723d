"""Which cgroup hierarchies this host mounts, and where we live in each.

Everything comes from /proc/self/mountinfo (mount points, v1 controllers from
the super options) and /proc/self/cgroup (our own cgroup per hierarchy).
Mount points and co-mounting (cpu,cpuacct) are never assumed: on the
development machine cpu and cpuacct are separate hierarchies and net_cls is
not mounted at all.
"""

from __future__ import annotations

import os

from tomato.records import record as dataclass  # no dataclasses import on the start path

#: Controllers a v1 hierarchy can carry (named hierarchies such as
#: ``name=systemd`` carry none and are not used for resource control).
V1_CONTROLLERS = frozenset({
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory",
    "net_cls", "net_prio", "perf_event", "pids", "rdma", "misc",
})


@dataclass
class Hierarchy:
    """One mounted cgroup hierarchy.

    ``root`` is the cgroup (as seen from our cgroup namespace) that is mounted
    at ``mountpoint``; ``own_path`` is the cgroup of the calling process in
    this hierarchy, in the same namespace view.
    """

    mountpoint: str
    root: str
    controllers: frozenset[str]
    version: int
    own_path: str

    def directory(self, cgroup: str) -> str:
        """The directory of an absolute cgroup path, or raise ValueError when the
        cgroup lies outside what this mount shows."""
        cgroup = "/" + cgroup.strip("/")
        root = "/" + self.root.strip("/")
        if root == "/":
            rel = cgroup
        elif cgroup == root or cgroup.startswith(root + "/"):
            rel = cgroup[len(root):]
        else:
            raise ValueError(f"cgroup {cgroup} is outside the mount of {root} at {self.mountpoint}")
        return self.mountpoint.rstrip("/") + ("/" + rel.strip("/") if rel.strip("/") else "")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _own_paths(cgroup_text: str) -> tuple[dict[frozenset[str], str], str | None]:
    """/proc/self/cgroup → (v1 controller set → path, v2 path)."""
    v1: dict[frozenset[str], str] = {}
    v2 = None
    for line in cgroup_text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, ctrls, path = parts
        if hid == "0" and ctrls == "":
            v2 = path
        else:
            v1[frozenset(c for c in ctrls.split(",") if c)] = path
    return v1, v2


def _read_v2_controllers(mountpoint: str) -> frozenset[str]:
    try:
        with open(os.path.join(mountpoint, "cgroup.controllers")) as f:
            return frozenset(f.read().split())
    except OSError:
        return frozenset()


def parse_hierarchies(mountinfo_text: str, cgroup_text: str,
                      v2_controllers=_read_v2_controllers) -> list[Hierarchy]:
    """Pure parser behind :func:`hierarchies` (``v2_controllers(mountpoint)`` is
    the only I/O, injectable for tests)."""
    v1_own, v2_own = _own_paths(cgroup_text)
    found: list[Hierarchy] = []
    seen: set[tuple[int, frozenset[str]]] = set()
    for line in mountinfo_text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 3:
            continue
        fstype = fields[sep + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        if fstype == "cgroup2":
            version, ctrls = 2, v2_controllers(mountpoint)
            own = v2_own
            key = frozenset({"<v2>"})
        else:
            opts = fields[sep + 3].split(",") if len(fields) > sep + 3 else []
            ctrls = frozenset(o for o in opts if o in V1_CONTROLLERS)
            names = frozenset(o for o in opts if o.startswith("name="))
            own = v1_own.get(ctrls | names)
            version, key = 1, ctrls | names
            if not ctrls:
                continue  # named hierarchy (name=systemd): no resources to control
        if own is None:
            continue  # not a hierarchy of our cgroup namespace view
        # A hierarchy may be mounted more than once (bind mounts): keep the first
        # mount that shows our own cgroup.
        if (version, key) in seen:
            continue
        hier = Hierarchy(mountpoint, root, ctrls, version, own)
        try:
            hier.directory(own)
        except ValueError:
            continue
        seen.add((version, key))
        found.append(hier)
    return found


def hierarchies(mountinfo: str = "/proc/self/mountinfo",
                cgroup: str = "/proc/self/cgroup") -> list[Hierarchy]:
    """Every cgroup hierarchy mounted in our mount namespace that shows our cgroup."""
    with open(mountinfo) as f:
        mi = f.read()
    with open(cgroup) as f:
        cg = f.read()
    return parse_hierarchies(mi, cg)


def mode_of(found: list[Hierarchy]) -> str:
    has_v1 = any(h.version == 1 for h in found)
    has_v2 = any(h.version == 2 for h in found)
    if has_v1 and has_v2:
        return "hybrid"
    if has_v1:
        return "legacy"
    if has_v2:
        return "unified"
    return "none"


def mode() -> str:
    """"unified" (cgroup2 only), "legacy" (v1 only), "hybrid" (v1 controllers plus
    a cgroup2 mount, usually holding few or no controllers) or "none"."""
    return mode_of(hierarchies())
