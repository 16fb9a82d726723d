"""`tomato system` (df, prune, check), `tomato info` and `tomato version`: the engine
as a whole, and which of the installation's fast paths are active (the C client
and the CLI's fork server, the monitors' shim, the runtime's C front)."""

from __future__ import annotations

import argparse
import os
import sys

from tomato.cli.render import human_size
from tomato.cli.usage import DockerParser

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig
    from tomato.engine.install import FastPaths


def cmd_system_prune(args: argparse.Namespace, cfg: EngineConfig) -> int:
    """docker system prune: stopped containers, unused networks, dangling (or, with -a,
    unused) images and the Pull Cache, and with --volumes unused volumes."""
    if not args.force and sys.stdin.isatty():
        what = ["all stopped containers", "all networks not used by at least one container",
                *(["all volumes not used by at least one container"]
                  if args.volumes else []),
                "all images without at least one container associated to them" if args.all
                else "all dangling images", "unused pull cache"]
        answer = input("WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what)
                       + "\nAre you sure you want to continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    from tomato.engine import images
    from tomato.engine.listfilters import parse, prune_matches
    from tomato.engine.networks import Networks, sweep
    from tomato.engine.removal import prune_reclaiming

    filters = parse(args.filter)
    prune_matches(0, {}, filters)
    containers, written = prune_reclaiming(cfg, filters)
    sections = [("Deleted Containers", containers)]
    sweep(cfg.root)
    sections.append(("Deleted Networks", Networks(cfg.root).prune(filters)))
    if args.volumes:
        from tomato.engine import volumes

        sections.append(("Deleted Volumes", volumes.prune(cfg.root, filters)))
    res = images.prune(cfg, all_images=args.all)
    sections.append(("Deleted Images", [f"untagged: {u}" for u in res.untagged]
                     + [f"deleted: {d}" for d in res.deleted]))
    for title, lines in sections:
        if lines:
            print(f"{title}:")
            for line in lines:
                print(line)
            print()
    print(f"Total reclaimed space: {human_size(res.reclaimed + written)}")
    return 0


# -- version and info ------------------------------------------------------------------
def _fork_server(root: str, served: bool, paths: FastPaths) -> str:
    from tomato.cli import forkserver

    if os.environ.get("TOMATO_NO_FORKSERVER"):
        return "off (TOMATO_NO_FORKSERVER is set)"
    if not paths.client:
        return "unavailable: no tomato-client (every command starts Python)"
    pid = forkserver.server_pid(root)
    state = f"running (pid {pid})" if pid else "not running (the next command starts one)"
    return state + ("; this command was served by it" if served else "")


def _path_lines(args: argparse.Namespace, paths: FastPaths) -> list[tuple[str, str]]:
    launcher = paths.launcher_interpreter or "unknown"
    if paths.client_as_interpreter:
        launcher = f"{paths.launcher} through {paths.client or paths.launcher} (the C client)"
    elif launcher == paths.launcher:
        launcher = f"{paths.launcher} (the C client itself)"
    else:
        launcher = f"{paths.launcher} (interpreter {launcher}: the slow path)"
    shim = paths.shim or "none: every container's monitor stays a Python process"
    if paths.shim and paths.shim_disabled:
        shim += " (off: TOMATO_NO_SHIM is set)"
    return [
        ("Launcher", launcher),
        ("Fork server", _fork_server(args.root, bool(getattr(args, "served", None)), paths)),
        ("Monitor shim", shim),
        ("Runtime front", paths.runtime_front or "none: tomato-runtime is Python only"),
        ("Python", paths.python),
        ("Bytecode", "compiled" if paths.bytecode else "not compiled (each start compiles)"),
    ]


def version_line(args: argparse.Namespace) -> str:
    """`tomato --version`: one line, the fast paths included."""
    from tomato.engine.install import fast_paths

    paths = fast_paths()
    client = "client" if paths.client else "no client"
    server = _fork_server(args.root, bool(getattr(args, "served", None)), paths).split(" (")[0]
    return (f"Tomato version {paths.version} (python {sys.version.split()[0]}; {client}, "
            f"fork server {server}; shim {'yes' if paths.shim else 'no'}; "
            f"runtime front {'yes' if paths.runtime_front else 'no'})")


def cmd_version(args: argparse.Namespace, cfg: EngineConfig) -> int:
    import platform

    from tomato.engine.install import fast_paths

    paths = fast_paths()
    if args.format:
        return _version_format(args.format, paths)
    print("Client: Tomato")
    for key, value in [("Version", paths.version),
                       ("Python", f"{platform.python_version()} ({paths.python})"),
                       ("OS/Arch", f"linux/{platform.machine()}"),
                       *(line for line in _path_lines(args, paths) if line[0] != "Python")]:
        print(f" {key + ':':<15}{value}")
    print()
    print("Engine:")
    print(f" {'Root:':<15}{cfg.root}")
    print(f" {'Kernel:':<15}{platform.release()}")
    return 0


def _version_format(fmt: str, paths: FastPaths) -> int:
    """docker version's document: Client (this CLI) and Server (the engine, as /version)."""
    import platform

    from tomato.cli.render import show_one
    from tomato.engine import sysinfo

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    client = {"Platform": {"Name": "Tomato"}, "Version": paths.version, "ApiVersion": "1.43",
              "DefaultAPIVersion": "1.43", "GitCommit": "",
              "GoVersion": f"python{platform.python_version()}", "Os": "linux", "Arch": arch,
              "BuildTime": "", "Context": "default"}
    server = sysinfo.server_version("1.43", "1.24", paths.version)
    if fmt.strip() == "json":
        fmt = "{{json .}}"
    return show_one(fmt, {"Client": client, "Server": server}, "*types.Version")


def cmd_info(args: argparse.Namespace, cfg: EngineConfig) -> int:
    import platform

    from tomato.engine import images, service
    from tomato.engine.install import fast_paths

    if args.format:
        from tomato.cli.render import show_one
        from tomato.engine import sysinfo

        doc = {**sysinfo.info(cfg, fast_paths().version),
               "ClientInfo": {"Debug": False, "Version": fast_paths().version,
                              "Context": "default", "Plugins": [], "Warnings": None}}
        fmt = "{{json .}}" if args.format.strip() == "json" else args.format
        return show_one(fmt, doc, "system.dockerInfo")

    containers = service.list_containers(cfg, all_states=True)
    states = [c.state.status for c in containers]
    cgroup = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
    rootless = _rootless_lines()
    print("Server:")
    for key, value in [
            ("Containers", str(len(containers))),
            (" Running", str(sum(s in ("running", "restarting") for s in states))),
            (" Paused", str(states.count("paused"))),
            (" Stopped", str(sum(s not in ("running", "restarting", "paused")
                                 for s in states))),
            ("Images", str(len(images.list_images(cfg)))),
            ("Server Version", fast_paths().version), ("Storage Driver", "overlay2"),
            ("Logging Driver", "json-file"), ("Cgroup Driver", "cgroupfs"),
            ("Cgroup Version", cgroup), ("Default Runtime", "tomato-runtime"),
            ("Kernel Version", platform.release()), ("Architecture", platform.machine()),
            ("CPUs", str(os.cpu_count() or 1)), ("Tomato Root Dir", str(cfg.root))]:
        if key == "Cgroup Driver" and rootless is not None and "none" in rootless["Cgroups"]:
            value = "none"  # (docker's rootless word on cgroup v1)
        print(f" {key}: {value}")
    if rootless is not None:  # what a user's engine can and cannot do (engine/rootless.py)
        print(" Security Options:\n  seccomp\n   Profile: builtin\n  rootless")
        print(" Rootless: true")
        for key, value in rootless.items():
            if key != "Rootless":
                print(f"  {key}: {value}")
    elif cfg.userns_remap is not None:  # dockerd --userns-remap's (engine/userns_remap.py)
        r = cfg.userns_remap
        print(" Security Options:\n  seccomp\n   Profile: builtin\n  userns")
        print(f" User Namespace Remap: {r.user}:{r.group} (uid {r.uid_start}, gid "
              f"{r.gid_start}, {r.uid_count} ids)")
    print(" Fast paths:")
    for key, value in _path_lines(args, fast_paths()):
        print(f"  {key}: {value}")
    return 0


def _rootless_lines() -> dict[str, str] | None:
    from tomato._sys import userns

    if not userns.rootless():
        return None
    from tomato.engine import rootless

    return rootless.describe()


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from tomato.cli.supervise import register_system_check

    p = sub.add_parser("version", help="show the version and which fast paths are active",
                       parents=[common])
    p.set_defaults(func=cmd_version)
    p.add_argument("-f", "--format")
    p = sub.add_parser("info", help="show engine-wide information", parents=[common])
    p.set_defaults(func=cmd_info)
    p.add_argument("-f", "--format")
    system = sub.add_parser("system", help="engine-wide information", parents=[common])
    ssub = system.add_subparsers(dest="system_command", metavar="COMMAND",
                                 parser_class=DockerParser, required=True)
    from tomato.cli.diskusage import cmd_df

    p = ssub.add_parser("df", help="show disk usage", parents=[common])
    p.set_defaults(func=cmd_df)
    p.add_argument("--format")
    p.add_argument("-v", "--verbose", action="store_true")
    p = ssub.add_parser("prune", help="remove unused data", parents=[common])
    p.set_defaults(func=cmd_system_prune)
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--volumes", action="store_true", help="prune volumes")
    p.add_argument("--filter", action="append", default=[])
    p = ssub.add_parser("info", help="show engine-wide information", parents=[common])
    p.set_defaults(func=cmd_info)
    p.add_argument("-f", "--format")
    register_system_check(ssub, common)
    from tomato.cli.events import add_flags

    add_flags(ssub.add_parser("events", help="get real time events from the engine",
                              parents=[common]))
