"""Each group of the ``--explain`` summary: what its steps did, and the shell doing it
(laid out by ``tomato.explain.layout``).  Paths the text names in full once are
ROOTFS and NETNS after that, so lines do not move with the length of a root.
"""

from __future__ import annotations

from tomato.explain.layout import Group, short, tail
from tomato.explain.shell import _NS, mount_shell, shell_join, shell_quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Items = list[tuple[str, tuple[Any, ...]]]

DETAILED = 8     # a cgroup group touching at most this many files lists each one

CLONE_NEWNET = 0x40000000
_SHORT = {bit: short for bit, _name, _opt, short in _NS}
_ORDER = ("mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time")
_NSENTER_OPT = {"mnt": "-m", "uts": "-u", "ipc": "-i", "net": "-n", "pid": "-p", "user": "-U",
                "cgroup": "-C", "time": "-T"}
# v1 hierarchies as mounted under /sys/fs/cgroup (anything else there is cgroup2's tree)
_V1 = frozenset({"cpu", "cpuacct", "cpu,cpuacct", "cpuset", "memory", "devices", "freezer",
                 "blkio", "pids", "net_cls", "net_prio", "net_cls,net_prio", "perf_event",
                 "hugetlb", "rdma", "misc", "systemd", "unified"})
MS_RDONLY, MS_REMOUNT, MS_BIND = 0x1, 0x20, 0x1000
MS_PROPAGATION = 0x20000 | 0x40000 | 0x80000 | 0x100000


# -- what the groups need to know about the whole set -----------------------------------------
def is_return(path: str) -> bool:
    """setns back into our own namespace (after a fork, or a netns made on the side)."""
    return path.startswith(("/proc/self/ns/", "/proc/thread-self/ns/"))


def ns_pin(args: tuple[Any, ...]) -> str | None:
    """A bind mount of /proc/X/ns/TYPE pins a namespace to a file: its TYPE."""
    source, _target, _fstype, flags, _data = args
    if flags & MS_BIND and source and source.startswith("/proc/") and "/ns/" in source:
        return str(source.rsplit("/", 1)[-1])
    return None


def cgroup_path(path: str) -> tuple[str, list[str]] | None:
    """(hierarchy, path parts below it) of a file under /sys/fs/cgroup; "" is cgroup2's."""
    if not path.startswith("/sys/fs/cgroup/"):
        return None
    parts = path[len("/sys/fs/cgroup/"):].split("/")
    if parts[0] in _V1:
        return parts[0], parts[1:]
    return "", parts


class Story:
    """Facts about all the steps that single groups need: the container's root, the
    netns files, whether an init was cloned."""

    def __init__(self, steps: Items) -> None:
        mounts = [a for k, a in steps if k == "mount"]
        self.cloned = any(k == "clone" for k, _a in steps)
        self.net_pins = [a[1] for a in mounts if ns_pin(a) == "net"]
        overlay = [a[1] for a in mounts if a[2] == "overlay"]
        # a runtime's root is bound onto itself before pivot_root (runc does the same)
        itself = [a[1] for a in mounts if a[3] & MS_BIND and a[0] == a[1]
                  and not a[3] & MS_REMOUNT]
        self.rootfs: str | None = (overlay or itself or [None])[0]

    def in_root(self, path: str) -> str:
        """A path under the rootfs as the container will see it."""
        root = self.rootfs
        if root and (path == root or path.startswith(root + "/")):
            return path[len(root):] or "/"
        return path

    def named(self, path: str) -> str:
        """A path under the rootfs written as ROOTFS/..."""
        root = self.rootfs
        if root and (path == root or path.startswith(root + "/")):
            return "ROOTFS" + path[len(root):]
        return path


# -- the groups ---------------------------------------------------------------------------------
def net(items: Items, story: Story) -> Group:
    """The engine's network: a netns pinned to a file, a veth pair into it, addresses.

    Devices are named by index in the steps (``dev #728``): the veth's master is the
    bridge, ``#1`` in the netns is lo, and an address after the veth is its peer's.
    Each part is a line of its own, and the netns file is NETNS after the first
    line, so the lines do not move with the length of the engine's root."""
    cmds = [list(args[0]) for kind, args in items if kind == "link"]
    pin = story.net_pins[0] if story.net_pins else None
    master = next((c[c.index("master") + 1] for c in cmds
                   if c[1:3] == ["link", "add"] and "master" in c), "")
    made = next((c[3] for c in cmds if c[1:3] == ["link", "add"] and "bridge" in c), "")
    named = next((args[1] for kind, args in items if kind == "link" and len(args) > 1
                  and args[1]), "")  # the bridge's name, when it was made before
    bridge = made or named or (f"#{master}" if master else "")
    host: list[str] = [f"ip link add {made} type bridge"] if made else []
    inside: list[str] = []    # ip commands in the netns
    veth = gateway = ""
    addresses: list[str] = []
    for c in cmds:
        if c[1:3] == ["link", "add"] and "veth" in c:
            veth = f"{c[3]} ⇄ {c[c.index('name') + 1] if 'name' in c else 'eth0'}"
            host.append(f"ip link add {c[3]}{' master ' + bridge if bridge else ''} "
                        f"type veth peer name {veth.split()[-1]}{' netns NETNS' if pin else ''}")
        elif c[1:3] == ["addr", "add"] and master and c[5:6] == [f"#{master}"]:
            gateway = c[3]
            if made:  # made now (else only made sure of)
                host.insert(1, f"ip addr add {c[3]} dev {bridge}")
        elif c[1:3] == ["addr", "add"]:
            addresses.append(c[3])
            inside.append(f"ip addr add {c[3]} dev {veth.split()[-1] if veth else c[5]}")
        elif c[1:3] == ["link", "set"]:
            inside.append(f"ip link set {veth.split()[-1] if veth else 'lo'} up")
        elif c[1:3] == ["route", "add"]:
            addresses.append(f"route {' '.join(c[3:])}")
            inside.append(f"ip route add {' '.join(c[3:])}")
        elif c[1:3] == ["link", "delete"]:
            host.append(shell_join(c))
    out = Group("net")
    if pin:
        out.text(f"a netns pinned to a file: NETNS = {pin}")
    if bridge:
        out.text(f"bridge {bridge}{' made' if made else ''}" +
                 (f", the gateway {gateway} on it" if gateway else ""))
    if veth:
        out.text(f"veth pair {veth} (in NETNS): " + ", ".join(addresses))
    if pin:
        out.shell("touch NETNS", "unshare --net=NETNS true")
    out.shell(*host)
    if inside:
        script = shell_quote(" && ".join(inside))
        out.shell(f"nsenter --net=NETNS sh -c {script}" if pin else " && ".join(inside))
    return out


def _ns_names(flags: int) -> list[str]:
    return [s for s in _ORDER if any(flags & bit and short_ == s for bit, _n, _o, short_ in _NS)]


def namespaces(items: Items, story: Story) -> Group:
    new: list[str] = []
    joined: list[tuple[str, str]] = []   # (type, path)
    shells: list[str] = []               # in the order the steps happened
    forked = hostname = ""
    returned = False
    for kind, args in items:
        if kind in ("unshare", "clone"):
            names = _ns_names(args[0])
            new += [n for n in names if n not in new]
            opts = " ".join(f"--{'mount' if n == 'mnt' else n}" for n in names)
            shells.append(f"unshare {'--fork ' if kind == 'clone' else ''}{opts}".rstrip())
            if kind == "clone" and "pid" in names:
                forked = "the init is pid 1 there"
        elif kind == "setns":
            path, nstype = args
            if is_return(path):
                returned = True
                continue
            name = _SHORT.get(nstype) or path.rsplit("/", 1)[-1]
            joined.append((name, path))
            shown = "NETNS" if path in story.net_pins else shell_quote(path)  # see [net]
            shells.append(f"nsenter --{name}={shown}")
        elif kind == "fork" and args[1] == "unshare --fork" and shells and \
                shells[-1].startswith("unshare "):
            shells[-1] += " --fork"
            forked = "forked: the child is pid 1 of the new pid namespace" if "pid" in new \
                else "forked"
        elif kind == "fork":  # nsenter forks by itself after joining a pid namespace
            shells += [] if (args[1] or "").startswith("nsenter") else [args[1] or "fork"]
            forked = ("forked: the child is pid 1 of the new pid namespace" if "pid" in new
                      else "forked: a pid namespace holds only the children")
        elif kind == "mount":  # another namespace pinned to a file
            shells.append(mount_shell(*args))
        elif kind == "hostname":
            hostname = args[0]
            shells.append(f"hostname {shell_quote(args[0])}")
    words = ["new: " + " ".join(new)] if new else []
    pids = {p.split("/")[2] for _k, p in joined if p.startswith("/proc/")}
    if joined and len(pids) == 1 and all(p.startswith("/proc/") for _k, p in joined):
        # every namespace of one process: nsenter -t PID, in one command
        pid = pids.pop()
        kinds = [k for k, _p in joined]
        words.append(f"joined: {' '.join(kinds)} of pid {pid}")
        nsenter = f"nsenter -t {pid} " + " ".join(_NSENTER_OPT.get(k, k) for k in kinds)
        shells = [s for s in shells if not s.startswith("nsenter --")]
        shells.insert(len(shells) if new else 0, nsenter)
    elif joined:
        words.append("joined: " + ", ".join(
            f"{k} (NETNS)" if p in story.net_pins else f"{k} ({p})"
            for k, p in joined))
    if forked:
        words.append(forked)
    if hostname:
        words.append(f"hostname {hostname}")
    if returned and "pid" in [k for k, _p in joined]:
        words.append("pid: for the forked child only, then back to ours")
    out = Group("ns")
    out.text(*words)
    out.shell(*shells)
    return out


def user(items: Items, story: Story) -> Group:
    writes = [args for kind, args in items if kind == "write"]
    maps = {path.rsplit("/", 1)[-1]: value for path, value in writes}
    words = []
    for name, what in (("uid_map", "uid"), ("gid_map", "gid")):
        fields = maps.get(name, "").split()
        if len(fields) == 3:
            words.append(f"{what} {fields[0]} inside is {what} {fields[1]} outside")
    if "setgroups" in maps:
        words.append(f"setgroups {maps['setgroups']}")
    out = Group("user")
    out.text(*words)
    out.shell(*(f"echo {shell_quote(value)} > {path}" for path, value in writes))
    return out


def cgroup(items: Items, story: Story) -> Group:
    """Few files (the lab's create/set/get/stats): each one.  Many (a container's
    groups in every hierarchy): counted, with the limits written."""
    seen: dict[tuple[str, str], str] = {}
    for kind, args in items:
        seen[(kind, args[0])] = args[1] if len(args) > 1 else ""
    if len(seen) <= DETAILED or all(kind == "read" for kind, _p in seen):
        return _cgroup_each(seen)  # (the files cgroup get/stats read: each one, always)
    hierarchies: list[str] = []
    groups: dict[str, int] = {}
    limits: list[str] = []
    devices = {"devices.allow": 0, "devices.deny": 0}
    deny_all = False
    made = removed = joined = read = 0
    for kind, args in items:  # every device rule counts (devices.allow is one file)
        name = args[0].rsplit("/", 1)[-1]
        if kind == "write" and name in devices:
            devices[name] += 1
            deny_all = deny_all or (name == "devices.deny" and args[1] == "a")
    for (kind, path), value in seen.items():
        hier, parts = cgroup_path(path) or ("", [])
        if kind in ("mkdir", "rmdir"):
            rel = "/".join(parts)
            groups[rel] = groups.get(rel, 0) + 1
            if (hier or "cgroup2") not in hierarchies:
                hierarchies.append(hier or "cgroup2")
            made += kind == "mkdir"
            removed += kind == "rmdir"
        elif kind == "read":
            read += 1
        elif parts[-1] == "cgroup.procs":
            joined += 1
        elif parts[-1] not in devices and parts[-1] != "cgroup.subtree_control":
            limits.append(f"{parts[-1]}={value}")
    # the group: the path made in most hierarchies (ours may sit deeper in some of them)
    group = max(groups, key=lambda k: (groups[k], len(k))) if groups else ""
    v1 = [h for h in hierarchies if h not in ("unified", "cgroup2")]
    v2 = [h for h in hierarchies if h in ("unified", "cgroup2")]
    out = Group("cgroup")
    if hierarchies:
        verb = "removed from" if removed and not made else "in"
        kinds = ([f"{' '.join(v1)} (v1)"] if v1 else []) + ([f"{' '.join(v2)} (v2)"] if v2
                                                             else [])
        out.text(f"{group} {verb} {len(hierarchies)} hierarchies: {', '.join(kinds)}")
    if story.cloned and made:
        joined = joined or len(hierarchies)  # the runtime moves the init in after the clone
    out.text("limits: " + " ".join(limits) if limits else "",
             f"devices: {'deny all, ' if deny_all else ''}allow {devices['devices.allow']} "
             f"rules" if any(devices.values()) else "",
             ("the init joins each (cgroup.procs)" if story.cloned
              else f"a process joins {joined} (cgroup.procs)") if joined else "",
             f"{read} files read" if read else "")
    if hierarchies:
        brace = "{" + ",".join(hierarchies) + "}" if len(hierarchies) > 1 else hierarchies[0]
        out.shell(f"{'rmdir' if removed and not made else 'mkdir'} "
                  f"/sys/fs/cgroup/{brace}/{group}")
    writes = [f"echo {shell_quote(lim.split('=', 1)[1])} > …/{lim.split('=', 1)[0]}"
              for lim in limits[:3]]
    out.shell(*writes, "echo a > …/devices.deny" if deny_all else "",
              "echo PID > …/cgroup.procs" if joined else "")
    return out


def _cgroup_each(seen: dict[tuple[str, str], str]) -> Group:
    """Each file on a ``$`` line; the text says what happened in few words (directories
    by their path, then the hierarchies they were made in)."""
    out = Group("cgroup")
    dirs: dict[str, tuple[list[str], list[str]]] = {}  # mkdir/rmdir -> (paths, hierarchies)
    words: list[str] = []
    for (kind, path), value in seen.items():
        hier, parts = cgroup_path(path) or ("", [])
        if kind in ("mkdir", "rmdir"):
            paths, hiers = dirs.setdefault(kind, ([], []))
            rel, where = "/".join(parts), hier or "cgroup2"
            paths += [] if rel in paths else [rel]
            hiers += [] if where in hiers else [where]
            out.shell(f"{kind} {shell_quote(path)}", exact=True)
        elif kind == "write" and parts[-1] == "cgroup.procs":
            words.append(f"pid {value} joins {'/'.join(parts[:-1])} ({hier or 'cgroup2'})")
            out.shell(f"echo {shell_quote(value)} > {shell_quote(path)}", exact=True)
        elif kind == "write":
            words.append(f"{parts[-1]}={value}")
            out.shell(f"echo {shell_quote(value)} > {shell_quote(path)}", exact=True)
        else:
            words.append(f"{parts[-1]} is {value}")
            out.shell(f"cat {shell_quote(path)}", exact=True)
    made = [f"{'made' if kind == 'mkdir' else 'removed'} {', '.join(paths)} in "
            f"{', '.join(hiers)}" for kind, (paths, hiers) in dirs.items()]
    out.text(*made, *words)
    return out


def rootfs(items: Items, story: Story) -> Group:
    words: list[str] = []
    shells: list[str] = []
    for kind, args in items:
        if kind == "mount" and args[2] == "overlay":
            opts = dict(o.partition("=")[::2] for o in (args[4] or "").split(","))
            lowers = [p for p in opts.get("lowerdir", "").split(":") if p]
            words.append(f"overlay: {len(lowers)} lowerdir{'s' if len(lowers) != 1 else ''}"
                         f"{' + upperdir' if opts.get('upperdir') else ''} on ROOTFS")
            shown = ",".join(f"{k}={tail(v)}" for k, v in opts.items() if v)
            shells.append(f"mount -t overlay overlay -o {shown} ROOTFS")
        elif kind == "mount" and args[1] == story.rootfs:
            words += [] if words else ["ROOTFS bound onto itself"]
            shells.append("mount --rbind ROOTFS ROOTFS")
        elif kind == "pivot":
            words.append("pivot_root into it")
            shells.append("cd ROOTFS && pivot_root . .")
        elif kind == "umount":  # of "."
            words.append("the old root detached")
            shells.append("umount -l .")
        elif kind == "mount":  # propagation of the stacked old root (mount --make-rslave .)
            shells.append(mount_shell(*args))
        elif kind == "chroot":
            words.append(f"chroot into {args[0]}")
            shells.append(f"chroot {shell_quote(args[0])}")
        elif kind == "chdir" and not any(k == "chroot" for k, _a in items):
            shells.append(f"cd {shell_quote(args[0])}")
    out = Group("rootfs")
    out.text(", ".join(words))
    if story.rootfs:
        out.text(f"ROOTFS = {story.rootfs}")
    out.shell(*shells)
    return out


def mounts(items: Items, story: Story) -> Group:
    words: list[str] = []
    made: list[str] = []
    shells: list[str] = []
    cgroup_binds = 0
    for _kind, args in items:
        source, target, fstype, flags, data = args
        shown = story.in_root(target)
        if flags & MS_PROPAGATION and not flags & MS_BIND:
            if target == "/":  # what the namespace shares with the host's mounts
                words.append("/ " + mount_shell(*args).split()[1].removeprefix("--make-"))
            else:
                continue  # a bind mount's own propagation: a detail of it
        elif flags & MS_REMOUNT:
            continue  # the read-only remount of a bind just made: a detail of it
        elif shown.startswith("/sys/fs/cgroup/"):
            cgroup_binds += 1
            continue
        elif story.rootfs:
            made.append(shown)
        else:
            made.append(f"{fstype or 'a bind of ' + (source or '')} on {shown}")
        shells.append(mount_shell(source, story.named(target), fstype, flags, data))
    if cgroup_binds and "/sys/fs/cgroup" in made:
        made[made.index("/sys/fs/cgroup")] += f" (+{cgroup_binds} ro)"
    out = Group("mounts")
    if made and story.rootfs:
        out.text(*words, f"{len(made)} mounts in ROOTFS:")
        out.text(" ".join(made))
    else:
        out.text(*words, *made)
    if len(shells) > 3:
        shells = shells[:3] + [f"… ({len(items)} mount calls in all)"]
    out.shell(*shells)
    return out


def mask(items: Items, story: Story) -> Group:
    hidden: list[str] = []
    readonly: list[str] = []
    examples: dict[str, str] = {}  # one shell command of each kind
    for _kind, args in items:
        source, target, fstype, flags, data = args
        if flags & MS_REMOUNT and flags & MS_RDONLY:
            readonly += [] if target in readonly else [target]
            examples.setdefault("ro", f"mount -o remount,bind,ro {target}")
        elif flags & MS_BIND and source == target:
            continue  # the bind a read-only path is remounted on
        else:
            hidden.append(target)
            examples.setdefault(fstype or source or "", mount_shell(*args))
    out = Group("mask")
    if hidden:
        out.text(f"{len(hidden)} paths hidden: {' '.join(hidden)}")
    if readonly:
        out.text(f"{len(readonly)} made read-only: {' '.join(readonly)}")
    out.shell(*examples.values(), "…")
    return out


def security(raw: dict[str, Any], status: dict[str, str], caller: dict[str, str]) -> Group:
    """From the container's config (caps, seccomp, no_new_privs, user) or, for a process
    joining one, from /proc/self/status right before its execve (``caller``: the status
    of the command that was asked to explain, to tell what changed)."""
    proc = raw.get("process") or {}
    bounding = _hex(status.get("CapBnd", ""))
    out = Group("security")
    before = _hex(caller.get("CapBnd", ""))
    narrowed = bounding is not None and before is not None and bounding & ~before == 0 \
        and bounding != before
    if not raw and not narrowed and status.get("NoNewPrivs") == caller.get("NoNewPrivs"):
        return out  # no config, nothing taken away: nothing to tell
    caps = (proc.get("capabilities") or {}).get("bounding") if raw else None
    words = []
    if caps is not None:
        words.append(f"caps: {len(caps)}")
    elif bounding is not None:
        words.append(f"caps: {bin(bounding).count('1')} (bounding set)")
    seccomp = (raw.get("linux") or {}).get("seccomp")
    if seccomp:
        rules = sum(len(s.get("names") or []) for s in seccomp.get("syscalls") or [])
        default = str(seccomp.get("defaultAction", "")).removeprefix("SCMP_ACT_").lower()
        words.append(f"seccomp: {rules} rules (default {default})")
    elif raw:
        words.append("no seccomp")
    nnp = proc.get("noNewPrivileges") if raw else status.get("NoNewPrivs") == "1"
    if nnp:
        words.append("no_new_privs")
    who = proc.get("user") or {}
    if who:
        words.append(f"uid {who.get('uid', 0)} gid {who.get('gid', 0)}")
    out.text(", ".join(words))
    shell = ["setpriv"] + (["--no-new-privs"] if nnp else [])
    if caps is not None:
        names = [c.lower().removeprefix("cap_") for c in caps]
        shown = ",".join("+" + n for n in names[:3]) + (",…" if len(names) > 3 else "")
        shell.append(f"--bounding-set=-all,{shown}" if names else "--bounding-set=-all")
    if who:
        shell.append(f"--reuid={who.get('uid', 0)} --regid={who.get('gid', 0)}")
    if len(shell) > 1:
        out.shell(" ".join(shell) + " CMD" + ("   (seccomp: no shell tool)" if seccomp else ""))
    return out


def _hex(mask_text: str) -> int | None:
    try:
        return int(mask_text, 16)
    except ValueError:
        return None


__all__ = ["Group", "Story", "cgroup", "cgroup_path", "is_return", "mask", "mounts",
           "namespaces", "net", "ns_pin", "rootfs", "security", "short", "tail", "user"]
