"""``tomato ns show``: which namespaces (and cgroups) processes are in, and who shares them.

Each /proc/PID/ns/TYPE is a link to ``TYPE:[INODE]``: two processes are in the same
namespace exactly when the inodes are equal (``lsns`` works the same way).  The
table lists each namespace once with every process in it, and "the host" where
the command's own process is in it too (a container shares the host's user and
time namespaces unless asked otherwise).  ``--png`` draws the same data:
processes on the left, their namespaces in the middle (a shared one in colour),
their cgroups on the right.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from tomato.errors import NotFound, PermissionDenied

#: The namespace types, in the order util-linux's unshare lists them.
TYPES = ("mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time")
HOST = "the host"


@dataclass(frozen=True)
class Namespace:
    type: str
    inode: int
    members: tuple[str, ...]   # labels of the processes in it (HOST: our own process)

    @property
    def shared(self) -> bool:
        return len(self.members) > 1


@dataclass
class View:
    processes: list[tuple[str, int]]                       # (label, pid)
    namespaces: list[Namespace] = field(default_factory=list)
    cgroups: dict[str, dict[str, str]] = field(default_factory=dict)  # label -> ctrl -> path

    def of(self, label: str) -> dict[str, int]:
        """type -> inode of one process."""
        return {ns.type: ns.inode for ns in self.namespaces if label in ns.members}


def ns_inode(pid: int | str, kind: str) -> int | None:
    """The inode of /proc/PID/ns/KIND (None: this kernel has no such namespace)."""
    try:
        link = os.readlink(f"/proc/{pid}/ns/{kind}")
    except FileNotFoundError:
        if not os.path.exists(f"/proc/{pid}"):
            raise NotFound(f"no such process: {pid}") from None
        return None
    except PermissionError as err:
        raise PermissionDenied(f"cannot read /proc/{pid}/ns/{kind}: permission denied") from err
    return int(link.split("[", 1)[1].rstrip("]"))


def cgroups_of(pid: int) -> dict[str, str]:
    """controller -> cgroup path of ``pid`` ("cgroup2" for the unified hierarchy)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            text = f.read()
    except FileNotFoundError as err:
        raise NotFound(f"no such process: {pid}") from err
    out: dict[str, str] = {}
    for line in text.splitlines():
        _hid, ctrls, path = line.split(":", 2)
        for c in (ctrls.split(",") if ctrls else ["cgroup2"]):
            if c and not c.startswith("name="):
                out[c] = path
    return out


def inspect(processes: list[tuple[str, int]], with_host: bool = True) -> View:
    """The namespaces of each (label, pid), the host's (our own) beside them."""
    view = View(list(processes))
    found: dict[tuple[str, int], list[str]] = {}
    everyone = list(processes) + ([(HOST, os.getpid())] if with_host else [])
    for kind in TYPES:
        for label, pid in everyone:
            inode = ns_inode(pid, kind)
            if inode is None:
                continue
            members = found.setdefault((kind, inode), [])
            if label not in members:
                members.append(label)
    for (kind, inode), members in found.items():
        if members != [HOST]:  # namespaces of ours nobody asked about are left out
            view.namespaces.append(Namespace(kind, inode, tuple(members)))
    for label, pid in processes:
        view.cgroups[label] = cgroups_of(pid)
    return view


def table_lines(view: View) -> list[str]:
    """TYPE, INODE, SHARED BY: each namespace once, in unshare's order of types."""
    rows = [("TYPE", "INODE", "SHARED BY")]
    for ns in view.namespaces:
        rows.append((ns.type, str(ns.inode), ", ".join(ns.members)))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]


def draw(view: View, out: str) -> dict[str, Any]:
    """Write a PNG of processes -> namespaces -> cgroups; returns what it drew."""
    from tomato.lab.plot import pyplot

    plt = pyplot()
    labels = [label for label, _pid in view.processes]
    spaces = view.namespaces
    # one cgroup node per distinct path, with the controllers (of each process) there
    groups: dict[str, list[str]] = {}
    for label in labels:
        for ctrl, path in sorted(view.cgroups.get(label, {}).items()):
            groups.setdefault(path, [])
            if ctrl not in groups[path]:
                groups[path].append(ctrl)
    rows = max(len(spaces), len(groups), len(labels), 1)
    fig, ax = plt.subplots(figsize=(13, 1.2 + 0.42 * rows))
    ax.set_xlim(-0.1, 3.9)
    ax.set_ylim(-0.8, rows)
    ax.axis("off")

    def ys(n: int) -> list[float]:
        step = rows / max(n, 1)
        return [rows - step * (i + 0.5) for i in range(n)]

    proc_y = dict(zip(labels, ys(len(labels)), strict=True))
    ns_y = dict(zip(range(len(spaces)), ys(len(spaces)), strict=True))
    cg_y = dict(zip(groups, ys(len(groups)), strict=True))
    colours = plt.get_cmap("tab10")
    edges = []
    for i, ns in enumerate(spaces):
        for m in ns.members:
            if m in proc_y:
                ax.plot([0.32, 1.15], [proc_y[m], ns_y[i]], color=colours(labels.index(m)),
                        alpha=0.6, linewidth=1.2)
                edges.append((m, ns.type, ns.inode))
        face = "#ffd27f" if ns.shared else "#eeeeee"
        others = [m for m in ns.members if m not in proc_y]
        text = f"{ns.type} {ns.inode}" + (f"  (+ {', '.join(others)})" if others else "")
        ax.text(1.2, ns_y[i], text, va="center", ha="left", fontsize=8, family="monospace",
                bbox={"boxstyle": "round", "facecolor": face, "edgecolor": "#888888"})
    for path, y in cg_y.items():
        members = [label for label in labels if path in view.cgroups.get(label, {}).values()]
        for k, m in enumerate(members):
            ax.plot([2.35, 2.45], [y + 0.12 * k, y + 0.12 * k], color=colours(labels.index(m)),
                    linewidth=3)
        ctrls = groups[path]
        shown = ",".join(ctrls[:4]) + (f",… ({len(ctrls)})" if len(ctrls) > 4 else "")
        ax.text(2.5, y, f"{_short_path(path)}  [{shown}]", va="center",
                ha="left", fontsize=8, family="monospace",
                bbox={"boxstyle": "round", "facecolor": "#dff0d8", "edgecolor": "#888888"})
    for label, y in proc_y.items():
        pid = dict(view.processes)[label]
        ax.text(0.0, y, f"{label}\npid {pid}", va="center", ha="left", fontsize=10,
                bbox={"boxstyle": "round", "facecolor": colours(labels.index(label)),
                      "alpha": 0.35})
    ax.text(0.0, rows - 0.1, "processes", fontsize=11, weight="bold", va="bottom")
    ax.text(1.2, rows - 0.1, "namespaces (shared: orange)", fontsize=11, weight="bold",
            va="bottom")
    ax.text(2.5, rows - 0.1, "cgroups", fontsize=11, weight="bold", va="bottom")
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)
    return {"processes": labels, "namespaces": [(n.type, n.inode, n.members) for n in spaces],
            "edges": edges, "cgroups": {p: tuple(c) for p, c in groups.items()}}


def _short_path(path: str) -> str:
    """A cgroup path short enough to draw: 64-hex ids cut to 12, deep paths to their end."""
    from tomato.explain.layout import short
    path = short(path) or "/"
    return path if len(path) <= 34 else "…/" + "/".join(path.split("/")[-2:])


__all__ = ["HOST", "TYPES", "Namespace", "View", "cgroups_of", "draw", "inspect", "ns_inode",
           "table_lines"]
