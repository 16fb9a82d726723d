"""The summary's groups: recorded kernel steps in, a screen of text out.

Pure functions of the steps ((kind, args) tuples, as ``summary.Summary``
records them), so they are unit tested without a kernel.  A step goes to one
group by what it is for::

    [net]      the netns pinned to a file, the veth pair, addresses, routes
    [rootfs]   the overlay (or bind) root, pivot_root/chroot into it
    [cgroup]   mkdir, limits, the files read (cgroup get/stats)
    [ns]       namespaces made (unshare, clone) and joined (setns), forks, hostname
    [user]     a user namespace's uid/gid maps
    [mounts]   what the container gets mounted before pivot_root (/proc, /dev, ...)
    [mask]     paths hidden or made read-only after it
    [security] capabilities, seccomp, no_new_privs (from the config and /proc/self/status)
    [exec]     the program
    [step]     anything else, as the full trace shows it

Imported with ``summary`` (at ``--explain``), never later: the container's init
renders after pivot_root, when nothing can be imported.
"""

from __future__ import annotations

from tomato.explain import groups as g
from tomato.explain.shell import shell_join, shell_quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The groups in the order a container is made (and a reader follows it).
ORDER = ("net", "rootfs", "cgroup", "ns", "user", "mounts", "mask", "step", "security", "exec")


def render(steps: list[tuple[str, tuple[Any, ...]]], status: dict[str, str] | None = None,
           spec: dict[str, Any] | None = None,
           caller: dict[str, str] | None = None) -> list[str]:
    """The summary lines of ``steps`` (in the order they happened); when a program is
    exec'd, ``status`` is the process's /proc/self/status, ``spec`` the container's
    OCI config and ``caller`` the status of the command explaining (for [security])."""
    story = g.Story(steps)
    grouped: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
    pivoted = False
    for kind, args in steps:
        name = classify(kind, args, story, pivoted)
        pivoted = pivoted or kind in ("pivot", "chroot")
        grouped.setdefault(name, []).append((kind, args))
    lines: list[str] = []
    for name in ORDER:
        if name == "security" and "exec" in grouped:
            lines += g.security(spec or {}, status or {}, caller or {}).lines()
        elif name in grouped:
            lines += RENDER[name](grouped[name], story).lines()
    return lines


def classify(kind: str, args: tuple[Any, ...], story: g.Story, pivoted: bool) -> str:
    """The group a step belongs to."""
    if kind == "link":
        return "net"
    if kind == "mount":
        pinned = g.ns_pin(args)
        if pinned is not None:
            return "net" if pinned == "net" else "ns"
        if args[2] == "overlay" or (args[1] == story.rootfs and args[0] == args[1]):
            return "rootfs"
        if pivoted:
            return "rootfs" if args[1] == "." else "mask"
        return "mounts"
    if kind == "umount":
        return "rootfs" if args[0] == "." else "step"
    if kind in ("pivot", "chroot", "chdir"):
        return "rootfs"
    if kind == "unshare":
        return "net" if args[0] == g.CLONE_NEWNET and story.net_pins else "ns"
    if kind == "setns":
        if g.is_return(args[0]) and args[1] == g.CLONE_NEWNET and story.net_pins:
            return "net"
        return "ns"
    if kind in ("clone", "fork", "hostname"):
        return "ns"
    if kind in ("mkdir", "rmdir", "write", "read"):
        if g.cgroup_path(args[0]) is not None:
            return "cgroup"
        if kind == "write" and args[0].rsplit("/", 1)[-1] in ("uid_map", "gid_map",
                                                              "setgroups"):
            return "user"
        return "step"
    if kind == "exec":
        return "exec"
    return "step"


def exec_group(items: list[tuple[str, tuple[Any, ...]]], story: g.Story) -> g.Group:
    out = g.Group("exec")
    out.text(shell_join(list(items[-1][1][0])))
    return out


def steps_group(items: list[tuple[str, tuple[Any, ...]]], story: g.Story) -> g.Group:
    """What no group explains, one step at a time as the full trace would."""
    out = g.Group("step")
    for kind, args in items:
        if kind == "step":
            out.text(args[0])
            if args[1]:
                out.shell(args[1], exact=True)
        elif kind == "umount":
            out.text(f"unmount {args[0]}")
            out.shell(f"umount{' -l' if args[1] & 2 else ''} {shell_quote(args[0])}", exact=True)
        elif kind in ("mkdir", "rmdir"):
            out.text(f"{kind} {args[0]}")
            out.shell(f"{kind} {shell_quote(args[0])}", exact=True)
        elif kind == "write":
            out.text(f"write {args[1]} to {args[0]}")
            out.shell(f"echo {shell_quote(args[1])} > {shell_quote(args[0])}", exact=True)
        elif kind == "read":
            out.text(f"{args[0]} holds {args[1]}")
            out.shell(f"cat {shell_quote(args[0])}", exact=True)
    return out


RENDER = {"net": g.net, "ns": g.namespaces, "user": g.user, "cgroup": g.cgroup,
          "rootfs": g.rootfs, "mounts": g.mounts, "mask": g.mask, "exec": exec_group,
          "step": steps_group}

__all__ = ["RENDER", "classify", "render"]
