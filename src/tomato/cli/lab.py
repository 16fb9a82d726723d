"""The study note's lab as `tomato` commands: rootfs, chroot, unshare, nsenter, cgroup, layers.

Each handler parses, calls one function of tomato.lab, and renders.  ``--explain``
prints the kernel steps grouped, with the equivalent shell commands, on stderr
(``--explain=full``: every step as it happens).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tomato.errors import Conflict, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.engine.config import EngineConfig
    from tomato.explain.trace import Explainer
    from tomato.lab.cgtool import CgroupTool


def _explainer(args: argparse.Namespace) -> Explainer:
    from tomato.lab.explain import NULL, for_mode
    mode = getattr(args, "explain", None)
    return for_mode(mode, sys.stderr) if mode else NULL


def _command(args: argparse.Namespace) -> list[str]:
    cmd = list(args.command or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    return cmd


def _flush() -> None:
    sys.stdout.flush()
    sys.stderr.flush()


# -- rootfs ------------------------------------------------------------------------------
def cmd_rootfs_from_host(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.lab import rootfs
    plan = rootfs.resolve(args.programs)
    for line in rootfs.tree_lines(plan):
        print(line)
    if any(plan.needs.values()):
        print(f"{rootfs.VDSO} is not copied: the kernel maps it into every process")
    copied = rootfs.copy_into(plan, args.into)
    print(f"copied {len(copied)} files into {os.path.abspath(args.into)}")
    if args.image:
        img = _import_dir(cfg, args.into, args.image, plan.programs)
        print(f"imported {args.image}: {img.id}")
    return 0


def _import_dir(cfg: EngineConfig, directory: str, name: str, programs: list[str]) -> Any:
    """The directory as an image of one layer; its history says what made it (the
    line ``tomato history`` and ``tomato layers`` show)."""
    import tarfile
    import tempfile
    from pathlib import Path

    from tomato.engine import images
    with tempfile.TemporaryFile(prefix="tomato-rootfs-") as tmp:
        with tarfile.open(fileobj=tmp, mode="w") as tar:
            for entry in sorted(os.listdir(directory)):
                tar.add(os.path.join(directory, entry), arcname=entry)
        tmp.seek(0)
        made_by = "rootfs from-host " + " ".join(os.path.basename(p) for p in programs)
        return images.import_image(cfg, Path(made_by), stream=tmp, reference=name,
                                   config={"Cmd": [programs[0]]},
                                   message="tomato rootfs from-host")


# -- chroot ------------------------------------------------------------------------------
def cmd_chroot(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.lab import chroot
    ex = _explainer(args)
    if args.try_escape:
        for kind in ("chroot", "pivot_root"):
            _flush()
            r = chroot.try_escape(args.directory, kind, ex)
            what = ("chroot(DIR)" if kind == "chroot"
                    else "unshare(mnt|pid) + pivot_root(DIR) + umount old root")
            print(f"{what}:")
            for (name, how), escaped in zip(chroot.ESCAPES, (r.dotdot_escaped, r.proc_escaped),
                                            strict=True):
                print(f"  {name:7} {how}: {'ESCAPED to the host' if escaped else 'stayed inside'}")
        return 0
    _flush()
    chroot.chroot_exec(args.directory, _command(args), ex)
    return 0


# -- unshare / nsenter -----------------------------------------------------------------------
_NS_OPTS = (("mount", "-m", "mnt"), ("uts", "-u", "uts"), ("ipc", "-i", "ipc"),
            ("net", "-n", "net"), ("pid", "-p", "pid"), ("user", "-U", "user"),
            ("cgroup", "-C", "cgroup"), ("time", "-T", "time"))


def _id(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        import grp
        import pwd
        try:
            return pwd.getpwnam(text).pw_uid if what == "user" else grp.getgrnam(text).gr_gid
        except KeyError as err:
            raise InvalidArgument(f"no such {what}: {text}") from err


def cmd_unshare(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.lab.namespaces import UnshareOptions, unshare
    names = frozenset(short for long, _o, short in _NS_OPTS if getattr(args, long))
    opts = UnshareOptions(
        namespaces=names, fork=args.fork,
        mount_proc=args.mount_proc_at or ("/proc" if args.mount_proc else None),
        map_root=args.map_root_user,
        map_user=_id(args.map_user, "user") if args.map_user else None,
        map_group=_id(args.map_group, "group") if args.map_group else None,
        propagation=args.propagation)
    _flush()
    return _status(unshare(opts, _command(args), _explainer(args)))


def _status(rc: int) -> int:
    """A child killed by a signal: die of the same signal, as util-linux does."""
    if rc < 0:
        import signal
        sys.stdout.flush()
        signal.signal(-rc, signal.SIG_DFL)
        os.kill(os.getpid(), -rc)
        return 128 - rc
    return rc


def _target_pid(cfg: EngineConfig, target: str) -> int:
    if target.isdigit():
        pid = int(target)
        if not os.path.exists(f"/proc/{pid}"):
            raise NotFound(f"no such process: {pid}")
        return pid
    from tomato.engine import service
    c = service.get(cfg, target)
    if not c.state.pid or c.state.status not in ("running", "paused"):
        raise Conflict(f"container {target} is not running")
    return int(c.state.pid)


def cmd_nsenter(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.lab.namespaces import NsenterOptions, nsenter
    names = frozenset(short for long, _o, short in _NS_OPTS if getattr(args, long))
    opts = NsenterOptions(target=_target_pid(cfg, args.target), namespaces=names,
                          all=args.all, root=args.root_dir, wd=args.wd, fork=not args.no_fork,
                          preserve_credentials=args.preserve_credentials)
    _flush()
    return _status(nsenter(opts, _command(args), _explainer(args)))


# -- cgroup ---------------------------------------------------------------------------------
def _tool(args: argparse.Namespace) -> CgroupTool:
    from tomato.lab import cgtool
    return cgtool.CgroupTool(ex=_explainer(args))


def _groups(args: argparse.Namespace) -> list[tuple[tuple[str, ...], str]]:
    from tomato.lab.cgtool import DEFAULT_CONTROLLERS, check_path, parse_group
    out = [parse_group(g) for g in args.group or []]
    out += [(DEFAULT_CONTROLLERS, check_path(p)) for p in getattr(args, "paths", None) or []]
    if not out:
        raise InvalidArgument("name a group: -g CONTROLLERS:PATH or PATH")
    return out


def cmd_cgroup_create(args: argparse.Namespace, cfg: EngineConfig) -> int:
    tool = _tool(args)
    for ctrls, path in _groups(args):
        tool.create(ctrls, path)
    return 0


def cmd_cgroup_delete(args: argparse.Namespace, cfg: EngineConfig) -> int:
    tool = _tool(args)
    for ctrls, path in _groups(args):
        tool.delete(ctrls, path, recursive=args.recursive)
    return 0


def cmd_cgroup_set(args: argparse.Namespace, cfg: EngineConfig) -> int:
    tool = _tool(args)
    for path in args.paths:
        for item in args.r:
            name, sep, value = item.partition("=")
            if not sep:
                raise InvalidArgument(f"-r {item!r}: expected NAME=VALUE")
            tool.set(path, name.strip(), value)
    return 0


def cmd_cgroup_get(args: argparse.Namespace, cfg: EngineConfig) -> int:
    if args.container or args.pid:
        tool, path, label = _stats_target(args, cfg)
        paths = [(path, label)]
    elif args.paths:
        tool = _tool(args)
        paths = [(p, p) for p in args.paths]
    else:
        raise InvalidArgument("name a group: PATH, --pid PID or --container NAME")
    for i, (path, label) in enumerate(paths):
        if i:
            print()
        if not args.n and not args.v:
            print(f"{label}:")
        for name in args.r:
            value = tool.get(path, name).rstrip("\n")
            print(value if args.v else f"{name}: {value}")
    return 0


def cmd_cgroup_exec(args: argparse.Namespace, cfg: EngineConfig) -> int:
    tool = _tool(args)
    cmd = _command(args)
    if not cmd:
        raise InvalidArgument("cgroup exec needs a command")
    for ctrls, path in _groups(args):
        tool.attach(ctrls, path, os.getpid())
    tool.ex.execve(cmd)
    _flush()
    try:
        os.execvp(cmd[0], cmd)
    except FileNotFoundError as err:
        raise NotFound(f"{cmd[0]}: command not found") from err
    return 0  # not reached


def _stats_target(args: argparse.Namespace, cfg: EngineConfig) -> tuple[Any, str, str]:
    """(tool, group path, label) for PATH, --pid or --container: a process's groups are
    found per hierarchy (it may sit in different ones per v1 controller)."""
    from tomato.lab.cgtool import CgroupTool, cgroups_of_pid, check_path
    pid = _target_pid(cfg, args.container) if args.container else args.pid
    if pid:
        pinned = cgroups_of_pid(pid)
        tool = CgroupTool(ex=_explainer(args), pinned=pinned)
        return tool, pinned.get("cpuacct") or pinned.get("") or "/", \
            args.container or f"pid {pid}"
    paths = getattr(args, "paths", None) or ([args.path] if getattr(args, "path", None)
                                             else [])
    if len(paths) != 1:
        raise InvalidArgument("name a group: PATH, --pid PID or --container NAME")
    return _tool(args), check_path(paths[0]), paths[0]


def cmd_cgroup_stats(args: argparse.Namespace, cfg: EngineConfig) -> int:
    tool, path, label = _stats_target(args, cfg)
    st = tool.stats(path)
    if not args.plot:
        for k, v in st.items():
            print(f"{k}: {'-' if v is None else v}")
        return 0
    from tomato.lab.plot import plot_usage
    quota = st.get("cpu_quota_us")
    period = st.get("cpu_period_us") or 100000
    cap = quota / period if quota is not None and quota > 0 else None
    samples = tool.sample(path, args.duration, args.interval)
    plot_usage(samples, args.plot, quota_cpus=cap, memory_limit=st.get("memory_limit_bytes"),
               has_memory=st.get("memory_bytes") is not None,
               title=f"cgroup of {label}"[:70])
    cpus = [s.cpus * 100 for s in samples] or [0.0]
    print(f"{len(samples)} samples over {args.duration:g} s, one every {args.interval:g} s; "
          f"wrote {args.plot}")
    print(f"CPU used: {sum(cpus) / len(cpus):.1f} % of one CPU on average, "
          f"{max(cpus):.1f} % in the busiest sample")
    if cap is not None:
        # CFS grants the quota per period: a sample spanning periods unevenly may
        # show a little more than the quota, never its average over many periods.
        print(f"the quota: {quota / 1000:g} ms of CPU time per {period / 1000:g} ms period, "
              f"{cap * 100:.0f} % on average")
    if st.get("memory_bytes") is not None:
        peak = max(s.memory_bytes for s in samples) / (1 << 20)
        limit = st.get("memory_limit_bytes")
        print(f"memory: at most {peak:.1f} MiB"
              + (f" under a {limit / (1 << 20):g} MiB limit" if limit else ", no limit"))
    return 0


# -- layers ---------------------------------------------------------------------------------
def _stack(cfg: EngineConfig, target: str) -> tuple[Any, str]:
    """The layer stack of a mount point, a container or an image, and what the merged
    view is (a directory, or a container's or image's root)."""
    from tomato.lab import layers
    if target.startswith("/") or os.path.isdir(target):
        return layers.stack_of_mountpoint(target), os.path.abspath(target)
    from tomato.engine import images
    try:
        from tomato.engine import service
        c = service.get(cfg, target)
        m = images.rootfs_mounts(cfg, c.id)[0]
        stack = layers.stack_from_options(m.type, m.source, m.options)
        return layers.with_names(stack, *_layer_names(cfg, c.image_id)), \
            f"the root of container {c.name}"
    except NotFound:
        pass
    img = images.get_image(cfg, target)
    if img.top_layer is None:
        raise NotFound(f"image {target} has no layers")
    m = images.rootfs_mounts(cfg, img.top_layer)[0]
    stack = layers.stack_from_options(m.type, m.source, m.options)
    return layers.with_names(stack, *_layer_names(cfg, img.id)), \
        f"the root of a container of image {target}"


def _layer_names(cfg: EngineConfig, image: str) -> tuple[dict[str, str], dict[str, str]]:
    """Snapshot directory → "layer i/n sha256:…" (the image's diff ids, bottom first),
    and → the history line that made the layer (``tomato history``'s CREATED BY)."""
    from tomato.engine import images
    from tomato.images.snapshots import Snapshotter
    try:
        detail = images.inspect(cfg, image)
    except NotFound:
        return {}, {}
    chains = detail.summary.chain_ids
    made = [h.get("created_by", "") for h in detail.history if not h.get("empty_layer")]
    snaps = Snapshotter(cfg.root / "snapshots")
    names, created_by = {}, {}
    for i, chain in enumerate(chains):
        try:
            info = snaps.stat(chain)
        except NotFound:
            continue
        diff = detail.diff_ids[i] if i < len(detail.diff_ids) else chain
        path = str(snaps.fs_path(info))
        names[path] = f"layer {i + 1}/{len(chains)} {diff.removeprefix('sha256:')[:12]}"
        if i < len(made) and len(made) == len(chains):
            created_by[path] = made[i]
    return names, created_by


def cmd_layers(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.lab import layers
    words = args.words
    if words and words[0] == "which":
        if len(words) != 3:
            raise InvalidArgument("usage: tomato layers which IMAGE|CONTAINER|MOUNTPOINT PATH")
        stack, _what = _stack(cfg, words[1])
        for line in layers.describe(stack, layers.which(stack, words[2])):
            print(line)
        return 0
    if len(words) != 1:
        raise InvalidArgument("usage: tomato layers IMAGE|CONTAINER|MOUNTPOINT")
    stack, merged = _stack(cfg, words[0])
    for line in layers.drawing(stack, merged):
        print(line)
    return 0


# -- ns show -------------------------------------------------------------------------------
def cmd_ns_show(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.lab import nsview
    targets = [(t if not t.isdigit() else f"pid {t}", _target_pid(cfg, t)) for t in args.targets]
    view = nsview.inspect(targets)
    for line in nsview.table_lines(view):
        print(line)
    if args.png:
        nsview.draw(view, args.png)
        print(f"wrote {args.png}")
    return 0


# -- registration ---------------------------------------------------------------------------
def register(sub: Any, common: argparse.ArgumentParser) -> None:
    def add(parent: Any, name: str, func: Any, help_text: str,
            add_help: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, parents=[common],
                                                       add_help=add_help)
        p.set_defaults(func=func)
        return p

    def explain(p: argparse.ArgumentParser) -> None:
        p.add_argument("--explain", action="store_const", const="summary",
                       help="print the kernel steps, grouped, and their shell equivalents on "
                            "stderr (--explain=full: every step as it happens)")
        p.add_argument("--explain=full", dest="explain", action="store_const", const="full",
                       help=argparse.SUPPRESS)

    rootfs = sub.add_parser("rootfs", help="make root filesystems", parents=[common])
    rsub = rootfs.add_subparsers(dest="rootfs_command", metavar="COMMAND", required=True)
    p = add(rsub, "from-host", cmd_rootfs_from_host,
            "copy host programs and the libraries their ELF headers need")
    p.add_argument("programs", nargs="+", metavar="PROGRAM")
    p.add_argument("--into", required=True, metavar="DIR")
    p.add_argument("--image", metavar="NAME", help="also import the directory as an image")

    p = add(sub, "chroot", cmd_chroot, "run a command with DIR as its root (plain chroot)")
    explain(p)
    p.add_argument("--try-escape", action="store_true",
                   help="show a root process escaping a plain chroot but not pivot_root")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("command", nargs=argparse.REMAINDER)

    p = add(sub, "unshare", cmd_unshare, "run a program in new namespaces (util-linux's flags)",
            add_help=False)
    p.add_argument("--help", action="help")
    explain(p)
    for long, opt, _short in _NS_OPTS:
        p.add_argument(opt, f"--{long}", action="store_true")
    p.add_argument("-f", "--fork", action="store_true")
    # util-linux spells a mount point --mount-proc=DIR; an optional value here would
    # swallow the program name, so the directory has its own option.
    p.add_argument("--mount-proc", action="store_true", help="mount a new proc on /proc")
    p.add_argument("--mount-proc-at", metavar="DIR")
    p.add_argument("-r", "--map-root-user", action="store_true")
    p.add_argument("--map-user", metavar="UID|NAME")
    p.add_argument("--map-group", metavar="GID|NAME")
    p.add_argument("--propagation", default="private",
                   choices=["private", "shared", "slave", "unchanged"])
    p.add_argument("command", nargs=argparse.REMAINDER)

    p = add(sub, "nsenter", cmd_nsenter, "run a program in the namespaces of a process",
            add_help=False)
    p.add_argument("--help", action="help")
    explain(p)
    p.add_argument("-t", "--target", required=True, metavar="PID|CONTAINER")
    p.add_argument("-a", "--all", action="store_true")
    for long, opt, _short in _NS_OPTS:
        p.add_argument(opt, f"--{long}", action="store_true")
    p.add_argument("-r", "--root", dest="root_dir", action="store_true")
    p.add_argument("-w", "--wd", action="store_true")
    p.add_argument("-F", "--no-fork", action="store_true")
    p.add_argument("--preserve-credentials", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER)

    cg = sub.add_parser("cgroup", help="libcgroup's tools over cgroup v1 and v2",
                        parents=[common])
    csub = cg.add_subparsers(dest="cgroup_command", metavar="COMMAND", required=True)
    for name, func, text in (("create", cmd_cgroup_create, "create a group (cgcreate)"),
                             ("delete", cmd_cgroup_delete, "remove a group (cgdelete)")):
        p = add(csub, name, func, text)
        explain(p)
        p.add_argument("-g", "--group", action="append", metavar="CONTROLLERS:PATH")
        p.add_argument("paths", nargs="*", metavar="PATH",
                       help="shorthand for -g cpu,cpuacct,memory,pids:PATH")
        if name == "delete":
            p.add_argument("-r", "--recursive", action="store_true")
    p = add(csub, "set", cmd_cgroup_set, "write knobs (cgset); v1 and v2 names both work")
    explain(p)
    p.add_argument("-r", action="append", required=True, metavar="NAME=VALUE")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p = add(csub, "get", cmd_cgroup_get, "read knobs (cgget)")
    explain(p)
    p.add_argument("-r", action="append", required=True, metavar="NAME")
    p.add_argument("-n", action="store_true", help="do not print the group name")
    p.add_argument("-v", action="store_true", help="print the values only")
    p.add_argument("--pid", type=int, help="the groups of this process")
    p.add_argument("--container", metavar="NAME", help="the groups of this container")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p = add(csub, "exec", cmd_cgroup_exec, "run a command in groups (cgexec)")
    explain(p)
    p.add_argument("-g", "--group", action="append", required=True, metavar="CONTROLLERS:PATH")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p = add(csub, "stats", cmd_cgroup_stats, "usage of a group; --plot draws it over time")
    explain(p)
    p.add_argument("path", nargs="?", metavar="PATH")
    p.add_argument("--pid", type=int)
    p.add_argument("--container", metavar="NAME")
    p.add_argument("--plot", metavar="FILE.png")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--interval", type=float, default=0.5)

    ns = sub.add_parser("ns", help="the namespaces of processes and containers",
                        parents=[common])
    nsub = ns.add_subparsers(dest="ns_command", metavar="COMMAND", required=True)
    p = add(nsub, "show", cmd_ns_show,
            "each namespace of the processes (type, inode, who shares it); --png draws it")
    p.add_argument("targets", nargs="+", metavar="CONTAINER|PID")
    p.add_argument("--png", metavar="FILE.png", help="draw processes, namespaces and cgroups")

    p = add(sub, "layers", cmd_layers,
            "the overlay stack of an image, container or mount point; 'which PATH' too")
    p.add_argument("words", nargs="+", metavar="[which] IMAGE|CONTAINER|MOUNTPOINT [PATH]")
