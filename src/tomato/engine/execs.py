"""`exec`: another process in a running container, by the runtime's exec (which
joins the container's namespaces for its one fork, see runtime/exec.py).

The process gets the container's own process settings (env, user, cwd,
capabilities...) with the caller's changes.  `exec -d` gives it a parent that
stays to reap it: orphaned, it would be reparented outside the container's pid
namespace, and while it sat there unreaped the container's init could not
finish dying.
"""

from __future__ import annotations

import json
import os

from tomato.engine.containers import Containers
from tomato.engine.runtime_ops import runtime_root
from tomato.engine.state import get
from tomato.engine.status import RUNNING
from tomato.errors import Conflict, InvalidArgument, TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig
    from tomato.runtime.statedir import StateDir


def exec_in(cfg: EngineConfig, ref: str, command: list[str], *, tty: bool = False,
            detach: bool = False, env: list[str] | None = None, user: str = "",
            workdir: str = "", privileged: bool = False) -> int:
    """Run a command in the container with our stdio; returns its exit code (or 0 if -d)."""
    from tomato.runtime.exec import ExecOptions, exec_process
    from tomato.runtime.log import RuntimeLog
    from tomato.runtime.statedir import StateDir

    c = get(cfg, ref)
    if c.state.status != RUNNING:
        raise Conflict(f"Container {c.id} is not running")
    if not command:
        raise InvalidArgument("exec needs a command")
    _same_user_namespace(c.id, c.name, c.state.pid)
    proc = json.loads(json.dumps(c.spec["process"]))
    proc["args"] = command
    proc["terminal"] = tty
    base_env = {e.partition("=")[0]: e for e in proc.get("env", [])}
    for e in env or []:
        base_env[e.partition("=")[0]] = e
    proc["env"] = list(base_env.values())
    if workdir:
        proc["cwd"] = workdir
    if user:
        from tomato.engine.specgen import lookup_user

        uid, gid, extra = lookup_user(Containers(cfg.root).bundle(c.id) / "rootfs", user)
        proc["user"] = {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})}
    proc.pop("consoleSize", None)
    states = StateDir(str(runtime_root(cfg)))
    if detach:
        _exec_detached(states, c.id, proc)
        return 0
    result = exec_process(states, c.id, ExecOptions(process=proc, explain=cfg.explain),
                          RuntimeLog(), keep_master=True)
    from tomato.runtime.waiting import forward_signals, wait_for

    forward_signals(result.pid)
    return wait_for(result.pid, result.console_master)


def _same_user_namespace(cid: str, name: str, pid: int) -> None:
    """A rootless container lives in the user namespace its engine had when it started
    (engine/rootless.py); one whose keeper was killed since is out of reach of the new
    one (setns needs capabilities over the container's namespaces): say what to do."""
    from tomato._sys import userns

    if not userns.rootless() or pid <= 0:
        return
    try:
        theirs = os.readlink(f"/proc/{pid}/ns/user")
    except PermissionError:  # (a non-dumpable init of a namespace we hold no rights in)
        theirs = ""
    except OSError:
        return  # gone: the runtime says so
    if theirs != os.readlink("/proc/self/ns/user"):
        raise Conflict(f"container {cid[:12]} runs in an earlier user namespace of yours "
                       f"(its keeper was killed): restart it to exec into it "
                       f"(tomato restart {name.lstrip('/') or cid[:12]})")


def _exec_detached(states: StateDir, cid: str, proc: dict[str, Any]) -> None:
    """`exec -d`: a small session leader of ours execs the process and waits for it;
    errors from the runtime still come back to the caller through a pipe."""
    from tomato.runtime.exec import ExecOptions, exec_process
    from tomato.runtime.log import RuntimeLog

    r, w = os.pipe2(os.O_CLOEXEC)
    reaper = os.fork()
    if reaper == 0:  # pragma: no cover — runs in the forked reaper
        code = 1
        try:
            os.close(r)
            os.setsid()
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            result = exec_process(states, cid, ExecOptions(process=proc, detach=True),
                                  RuntimeLog())
            os.write(w, b"ok")
            os.close(w)
            os.waitpid(result.pid, 0)
            code = 0
        except BaseException as err:  # noqa: BLE001 — told to the caller
            try:
                os.write(w, (str(err) or type(err).__name__).encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(w)
    answer = b""
    while chunk := os.read(r, 4096):
        answer += chunk
    os.close(r)
    if answer != b"ok":
        os.waitpid(reaper, 0)
        raise TomatoError(answer.decode(errors="replace") or "exec failed")
