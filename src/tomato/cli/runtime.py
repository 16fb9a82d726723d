"""tomato-runtime: an OCI runtime with runc's command line.

Kept to the stdlib and Tomato's low layers: this is the hot path that
containerd forks for every container.  Commands import what they need
lazily so `state` does not pay for `create`'s modules.
"""

from __future__ import annotations

import os
import sys

from tomato import fastjson as json
from tomato.cli.flags import BOOL, MULTI, OPTIONAL, VALUE, Flag, Parsed, parse, usage
from tomato.errors import InvalidArgument, TomatoError

TYPE_CHECKING = False  # typing and collections cost the start path ~3 ms
if TYPE_CHECKING:
    from collections.abc import Callable

    from tomato.explain.trace import Explainer

DEFAULT_ROOT = "/run/tomato-runtime"
VERSION = "0.1.0"

GLOBAL_FLAGS = (
    Flag("root", VALUE, help=f"root directory for container state (default {DEFAULT_ROOT})"),
    Flag("log", VALUE, default="", help="log file (default: stderr)"),
    Flag("log-format", VALUE, default="text", help="text or json"),
    Flag("debug", BOOL, help="debug logging"),
    Flag("systemd-cgroup", BOOL, help="cgroups as systemd scopes (cgroupsPath "
         "\"slice:prefix:name\", e.g. \"system.slice:tomato:ID\")"),
    Flag("rootless", VALUE, help="ignored: rootless mode is detected"),
    Flag("criu", VALUE, help="ignored: checkpointing is not supported"),
    Flag("explain", OPTIONAL, help="print the kernel steps grouped, with their shell "
         "equivalents (=full: every step)"),
    Flag("help", BOOL, aliases=("h",)),
    Flag("version", BOOL, aliases=("v",)),
)

CREATE_FLAGS = (
    Flag("bundle", VALUE, aliases=("b",), default="."),
    Flag("pid-file", VALUE, default=""),
    Flag("console-socket", VALUE, default=""),
    Flag("no-pivot", BOOL),
    Flag("no-new-keyring", BOOL),
    Flag("preserve-fds", VALUE, default="0"),
)
RUN_FLAGS = CREATE_FLAGS + (Flag("detach", BOOL, aliases=("d",)), Flag("keep", BOOL))


# exec's and update's flags are made when those commands run: ~35 records fewer
# to build on every other command's start.
def _exec_flags() -> tuple[Flag, ...]:
    """exec's flags."""
    return (
        Flag("process", VALUE, aliases=("p",), default=""),
        Flag("detach", BOOL, aliases=("d",)),
        Flag("tty", BOOL, aliases=("t",)),
        Flag("pid-file", VALUE, default=""),
        Flag("console-socket", VALUE, default=""),
        Flag("cwd", VALUE, default=""),
        Flag("env", MULTI, aliases=("e",)),
        Flag("user", VALUE, aliases=("u",), default=""),
        Flag("cap", MULTI, aliases=("c",)),
        Flag("additional-gids", MULTI, aliases=("g",)),
        Flag("no-new-privs", BOOL),
        Flag("preserve-fds", VALUE, default="0"),
        Flag("process-label", VALUE, default=""),
        Flag("apparmor", VALUE, default=""),
        Flag("ignore-paused", BOOL),
        Flag("cgroup", MULTI),
    )


def _update_flags() -> tuple[Flag, ...]:
    """update's flags."""
    return (
        Flag("resources", VALUE, aliases=("r",), default=""),
        Flag("blkio-weight", VALUE),
        Flag("cpu-period", VALUE),
        Flag("cpu-quota", VALUE),
        Flag("cpu-burst", VALUE),
        Flag("cpu-share", VALUE),
        Flag("cpu-rt-period", VALUE),
        Flag("cpu-rt-runtime", VALUE),
        Flag("cpuset-cpus", VALUE),
        Flag("cpuset-mems", VALUE),
        Flag("memory", VALUE),
        Flag("memory-reservation", VALUE),
        Flag("memory-swap", VALUE),
        Flag("pids-limit", VALUE),
        Flag("kernel-memory", VALUE),
        Flag("kernel-memory-tcp", VALUE),
        Flag("l3-cache-schema", VALUE),
        Flag("mem-bw-schema", VALUE),
    )


class Context:
    def __init__(self, g: Parsed) -> None:
        from tomato.runtime.log import RuntimeLog
        from tomato.runtime.statedir import StateDir

        fmt = g.str("log-format", "text")
        if fmt not in ("text", "json"):
            raise InvalidArgument(f"invalid --log-format {fmt!r}: use text or json")
        self.log = RuntimeLog(g.str("log"), fmt, g.bool("debug"))
        root = g.str("root", "")
        if not root:
            if os.geteuid() == 0:
                root = DEFAULT_ROOT
            else:
                from tomato.runtime.rootless import default_root

                root = default_root()
        self.states = StateDir(root)
        # create/run make a systemd unit; later commands follow the state's record.
        self.systemd_cgroup = g.bool("systemd-cgroup")
        #: --explain: handed to each runtime operation that reports a step
        self.explain: Explainer | None = None


def _one_id(p: Parsed, cmd: str) -> str:
    if len(p.args) < 1:
        raise InvalidArgument(f'"{cmd}" requires a container id')
    return p.args[0]


def _int_flag(p: Parsed, name: str) -> int:
    value = p.str(name, "0")
    try:
        n = int(value)
    except ValueError:
        raise InvalidArgument(f"invalid --{name} {value!r}: not a number") from None
    if n < 0:
        raise InvalidArgument(f"invalid --{name} {value!r}: must not be negative")
    return n


def cmd_spec(ctx: Context, argv: list[str]) -> int:
    """runc's default config.json with Docker's default capabilities and seccomp profile."""
    p = parse(argv, (Flag("bundle", VALUE, aliases=("b",), default="."), Flag("rootless", BOOL)))
    import json as stdjson

    from tomato.oci.defaults import default_spec
    from tomato.oci.security_defaults import docker_default_seccomp

    path = os.path.join(p.str("bundle", "."), "config.json")
    if os.path.exists(path):
        raise TomatoError("file config.json exists: remove it first")
    from tomato.oci.security_defaults import DOCKER_DEFAULT_CAPS

    spec = default_spec(rootless=p.bool("rootless"))
    # Docker's default capability set (runc's spec grants only three) and the
    # seccomp profile Docker resolves for exactly those capabilities.
    caps = list(DOCKER_DEFAULT_CAPS)
    spec["process"]["capabilities"] = {k: list(caps) for k in
                                       ("bounding", "effective", "permitted")}
    spec["linux"]["seccomp"] = docker_default_seccomp(caps)
    with open(path, "w") as f:
        stdjson.dump(spec, f, indent="\t")
        f.write("\n")
    return 0


def _create_options(p: Parsed, ctx: Context) -> object:
    from tomato.runtime.create import CreateOptions

    return CreateOptions(bundle=p.str("bundle", "."), pid_file=p.str("pid-file"),
                         console_socket=p.str("console-socket"), no_pivot=p.bool("no-pivot"),
                         preserve_fds=_int_flag(p, "preserve-fds"),
                         no_new_keyring=p.bool("no-new-keyring"),
                         systemd_cgroup=ctx.systemd_cgroup, explain=ctx.explain)


def cmd_create(ctx: Context, argv: list[str]) -> int:
    p = parse(argv, CREATE_FLAGS)
    cid = _one_id(p, "create")
    from tomato.runtime.create import create

    create(ctx.states, cid, _create_options(p, ctx), ctx.log)  # type: ignore[arg-type]
    return 0


def cmd_start(ctx: Context, argv: list[str]) -> int:
    p = parse(argv, ())
    from tomato.runtime.lifecycle import start

    start(ctx.states, _one_id(p, "start"), ctx.log)
    return 0


def _forward_signals(pid: int) -> None:
    from tomato.runtime.waiting import forward_signals

    forward_signals(pid)


def _wait(pid: int, master: int | None) -> int:
    import gc

    from tomato.runtime.waiting import wait_for

    gc.enable()  # the launcher's start-up switch-off: this wait may last for days
    return wait_for(pid, master)


def cmd_run(ctx: Context, argv: list[str]) -> int:
    p = parse(argv, RUN_FLAGS)
    cid = _one_id(p, "run")
    from tomato.runtime.create import create
    from tomato.runtime.lifecycle import delete, start

    detach = p.bool("detach")
    opts = _create_options(p, ctx)
    created = create(ctx.states, cid, opts, ctx.log,  # type: ignore[arg-type]
                     keep_master=not detach)
    rec = created.record
    try:
        _forward_signals(rec.pid)
        start(ctx.states, cid, ctx.log, rec)
    except BaseException:
        delete(ctx.states, cid, True, ctx.log, rec, ctx.explain)
        raise
    if detach:
        return 0
    code = _wait(rec.pid, created.console_master)
    if not p.bool("keep"):
        delete(ctx.states, cid, True, ctx.log, rec, ctx.explain)
    return code


def cmd_state(ctx: Context, argv: list[str]) -> int:
    p = parse(argv, ())
    from tomato.runtime.lifecycle import state

    print(json.dumps_pretty(state(ctx.states, _one_id(p, "state"))))
    return 0


def cmd_kill(ctx: Context, argv: list[str]) -> int:
    p = parse(argv, (Flag("all", BOOL, aliases=("a",)),))
    cid = _one_id(p, "kill")
    from tomato.runtime.lifecycle import kill, parse_signal

    sig = parse_signal(p.args[1] if len(p.args) > 1 else "SIGTERM")
    kill(ctx.states, cid, sig, p.bool("all"), ctx.explain)
    return 0


def cmd_delete(ctx: Context, argv: list[str]) -> int:
    p = parse(argv, (Flag("force", BOOL, aliases=("f",)),))
    from tomato.runtime.lifecycle import delete

    delete(ctx.states, _one_id(p, "delete"), p.bool("force"), ctx.log, explain=ctx.explain)
    return 0


def cmd_list(ctx: Context, argv: list[str]) -> int:
    from tomato.cli.runtime_views import list_containers

    return list_containers(ctx.states, argv)


def cmd_exec(ctx: Context, argv: list[str]) -> int:
    p = parse(argv, _exec_flags())
    cid = _one_id(p, "exec")
    from tomato.cli.runtime_values import sub_cgroups
    from tomato.runtime.exec import ExecOptions, build_process, exec_process
    from tomato.runtime.lifecycle import load

    rec = None
    if p.str("process"):
        try:
            with open(p.str("process")) as f:
                process = json.loads(f.read())
        except FileNotFoundError:
            raise InvalidArgument(f"process file {p.str('process')} does not exist") from None
        # SystemError: _json's for a bad string when json.decoder is not imported
        except (ValueError, RecursionError, SystemError) as err:
            raise InvalidArgument(f"process file {p.str('process')} is not valid JSON") from err
        from tomato.runtime.statedir import lone_surrogate

        if lone_surrogate(process):  # valid JSON, but no text to exec or to print
            raise InvalidArgument(f"process file {p.str('process')} holds a lone surrogate")
    else:
        if len(p.args) < 2:
            raise InvalidArgument("exec needs a command (or --process FILE)")
        rec, _ = load(ctx.states, cid)
        base = dict(rec.config.get("process") or {})
        process = build_process(base, p.args[1:], p.list("env"), p.str("cwd"), p.str("user"),
                                p.list("cap"), p.bool("tty"),
                                True if p.bool("no-new-privs") else None)
        if p.list("additional-gids"):
            process.setdefault("user", {})["additionalGids"] = [
                int(g) for g in p.list("additional-gids")]
        if p.str("apparmor"):
            process["apparmorProfile"] = p.str("apparmor")
        if p.str("process-label"):
            process["selinuxLabel"] = p.str("process-label")
    detach = p.bool("detach")
    opts = ExecOptions(process=process, detach=detach, pid_file=p.str("pid-file"),
                       console_socket=p.str("console-socket"),
                       preserve_fds=_int_flag(p, "preserve-fds"),
                       sub_cgroups=sub_cgroups(p.list("cgroup")), explain=ctx.explain)
    result = exec_process(ctx.states, cid, opts, ctx.log, keep_master=not detach, rec=rec)
    if detach:
        return 0
    _forward_signals(result.pid)
    return _wait(result.pid, result.console_master)


def cmd_ps(ctx: Context, argv: list[str]) -> int:
    from tomato.cli.runtime_views import ps

    return ps(ctx.states, argv)


def cmd_pause(ctx: Context, argv: list[str]) -> int:
    from tomato.runtime.lifecycle import pause

    pause(ctx.states, _one_id(parse(argv, ()), "pause"), ctx.explain)
    return 0


def cmd_resume(ctx: Context, argv: list[str]) -> int:
    from tomato.runtime.lifecycle import resume

    resume(ctx.states, _one_id(parse(argv, ()), "resume"), ctx.explain)
    return 0


def cmd_update(ctx: Context, argv: list[str]) -> int:
    p = parse(argv, _update_flags())
    cid = _one_id(p, "update")
    from tomato.cli.runtime_values import update_resources
    from tomato.runtime.lifecycle import update

    for w in update(ctx.states, cid, update_resources(p), ctx.explain):
        ctx.log.warning(w)
    return 0


def cmd_events(ctx: Context, argv: list[str]) -> int:
    p = parse(argv, (Flag("stats", BOOL), Flag("interval", VALUE, default="5s")))
    cid = _one_id(p, "events")
    from tomato.runtime.lifecycle import stats
    from tomato.runtime.units import parse_duration

    def emit() -> None:
        print(json.dumps({"type": "stats", "id": cid, "data": stats(ctx.states, cid)}),
              flush=True)

    if p.bool("stats"):
        emit()
        return 0
    import time

    interval = parse_duration(p.str("interval", "5s"))
    import gc

    gc.enable()  # see _wait
    while True:
        try:
            emit()
        except TomatoError:
            return 0  # the container stopped: the stream ends
        time.sleep(interval)


def cmd_features(ctx: Context, argv: list[str]) -> int:
    from tomato.runtime.features import features

    print(json.dumps_pretty(features()))
    return 0


COMMANDS: dict[str, Callable[[Context, list[str]], int]] = {
    "spec": cmd_spec, "create": cmd_create, "start": cmd_start, "run": cmd_run,
    "state": cmd_state, "kill": cmd_kill, "delete": cmd_delete, "list": cmd_list,
    "exec": cmd_exec, "ps": cmd_ps, "pause": cmd_pause, "resume": cmd_resume,
    "update": cmd_update, "events": cmd_events, "features": cmd_features,
}

HELP = """usage: tomato-runtime [global options] command [command options] [arguments...]

An OCI runtime with runc's command line.

commands:
   spec      create a new specification file (config.json)
   create    create a container, its process blocked before execve
   start     start the user process of a created container
   run       create and start a container, waiting for it unless --detach
   state     output the state of a container (OCI state JSON)
   kill      send a signal to the container's init (or --all processes)
   delete    delete a container and everything it held
   list      list containers
   exec      run a new process inside a container
   ps        show the processes of a container
   pause     freeze every process of a container
   resume    thaw a paused container
   update    change a container's resource limits
   events    resource usage statistics (--stats for one sample)
   features  show what this runtime supports

global options:
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log = None
    name = ""
    try:
        g = parse(argv, GLOBAL_FLAGS)
        if g.bool("version"):
            print(f"tomato-runtime version {VERSION}\nspec: 1.2.0")
            return 0
        if g.bool("help") or not g.args:
            print(HELP + usage(GLOBAL_FLAGS))
            return 0
        ctx = Context(g)
        log = ctx.log
        if g.get("explain"):
            ctx.explain = enable_explain(g.get("explain"))
        name, rest = g.args[0], g.args[1:]
        cmd = COMMANDS.get(name)
        if cmd is None:
            raise InvalidArgument(f"no such command: {name}")
        if rest and rest[0] in ("-h", "--help"):
            print(f"usage: tomato-runtime {name} [options] <container-id>")
            return 0
        log.debug(f"{name}: {' '.join(rest)}".rstrip(": "))
        code = cmd(ctx, rest)
        log.debug(f"{name}: exit status {code}")
        return code
    except TomatoError as err:
        return _fail(str(err), log, name)
    except OSError as err:
        where = f" {err.filename}" if err.filename else ""
        return _fail(f"{err.strerror or err}{where}", log, name)
    except KeyboardInterrupt:
        return 130


def enable_explain(mode: object = True) -> Explainer:
    """--explain (a grouped summary) or --explain=full (every kernel step) on (a copy
    of) stderr, with shell equivalents: the explainer, which the caller hands to what
    it calls, and which _sys's kernel calls tell from now on (libc.explain_syscalls).

    A copy, because the container's init writes its steps until execve, when
    the copy closes (it is close-on-exec) and stderr belongs to the container.
    """
    from tomato._sys import libc
    from tomato.explain import for_mode

    explainer = for_mode(mode, os.dup(2))
    libc.explain_syscalls(explainer)
    return explainer


def _fail(msg: str, log: object, command: str = "") -> int:
    msg = msg.splitlines()[0] if msg else "unknown error"
    if log is not None and getattr(log, "path", None):
        # runc's words in the log ("exec failed: ..."), which containerd reads back
        log.error(f"{command} failed: {msg}" if command else msg)  # type: ignore[attr-defined]
    sys.stderr.write(f"tomato-runtime: {msg}\n")
    # exec, as runc's: 255 is the runtime's own failure, any other code the process's
    return 255 if command == "exec" else 1


if __name__ == "__main__":
    sys.exit(main())
