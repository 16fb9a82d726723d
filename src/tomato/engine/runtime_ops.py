"""The engine's calls into the OCI runtime (tomato.runtime), in-process: each
container's runtime state lives under ``ROOT/runtime/<id>`` (a user's: runtime_root).
A container the runtime no longer knows is not an error here (its record may outlive it)."""

from __future__ import annotations

from pathlib import Path

from tomato.errors import Conflict, InvalidArgument, NotFound, TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from tomato.engine.config import EngineConfig

#: the cgroup parent of every container (below each controller's root)
CGROUP_PARENT = "tomato"


def runtime_root(cfg: EngineConfig) -> Path:
    """ROOT/runtime; a user's engine keeps it with its other runtime files under
    $XDG_RUNTIME_DIR/tomato (engine/rootless.py), one directory per root (so that the
    leftover sweep of one root never takes another's state)."""
    import os

    from tomato._sys import userns

    base = os.environ.get("XDG_RUNTIME_DIR") if userns.rootless() else None
    if base:
        from tomato.hashing import sha256_hex

        return Path(base) / "tomato" / f"runtime-{sha256_hex(str(cfg.root).encode())[:12]}"
    return cfg.root / "runtime"


def delete(cfg: EngineConfig, cid: str) -> None:
    """`runtime delete --force`: every process killed (thawed first), cgroup and state
    gone."""
    from tomato.runtime.lifecycle import delete as rt_delete
    from tomato.runtime.log import RuntimeLog
    from tomato.runtime.statedir import StateDir

    try:
        rt_delete(StateDir(str(runtime_root(cfg))), cid, True, RuntimeLog())
    except NotFound:
        pass


def kill(cfg: EngineConfig, cid: str, sig: int) -> None:
    from tomato.runtime.lifecycle import kill as rt_kill
    from tomato.runtime.statedir import StateDir

    try:
        rt_kill(StateDir(str(runtime_root(cfg))), cid, sig)
    except (NotFound, Conflict):
        pass


def pause(cfg: EngineConfig, cid: str) -> None:
    from tomato.runtime.lifecycle import pause as rt_pause
    from tomato.runtime.statedir import StateDir

    rt_pause(StateDir(str(runtime_root(cfg))), cid)


def resume(cfg: EngineConfig, cid: str) -> None:
    from tomato.runtime.lifecycle import resume as rt_resume
    from tomato.runtime.statedir import StateDir

    rt_resume(StateDir(str(runtime_root(cfg))), cid)


def is_paused(cfg: EngineConfig, cid: str) -> bool:
    """Whether the runtime finds the container frozen (its cgroup's freezer)."""
    from tomato.runtime.lifecycle import load
    from tomato.runtime.statedir import StateDir

    try:
        _, status = load(StateDir(str(runtime_root(cfg))), cid)
    except NotFound:
        return False
    return bool(status == "paused")


def signal_number(value: str | int) -> int:
    """A signal by number or name (KILL, SIGKILL, 9) as docker takes it."""
    from tomato.runtime.lifecycle import parse_signal

    try:
        return value if isinstance(value, int) else parse_signal(str(value))
    except TomatoError as err:
        raise InvalidArgument(f"invalid signal: {value}") from err
