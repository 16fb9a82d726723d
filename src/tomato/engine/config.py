"""What every use case of the engine is given: ``EngineConfig`` (the root, registry
credentials and settings, the supervision of the monitors it forks, and --explain's
explainer when the command was given it).  The
CLI makes one per command (cli/engine.py make_config), the API one per server;
nothing in the engine reads a default root or keeps module state behind the
caller's back."""

from __future__ import annotations

import os
from pathlib import Path

from tomato.engine.supervision import Supervision
from tomato.records import field, record

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from tomato.engine.userns_remap import Remap
    from tomato.explain.trace import Explainer
    from tomato.images.manifest import Platform

DEFAULT_ROOT = Path("/var/lib/tomato")


def default_root() -> str:
    """$TOMATO_ROOT, else root's /var/lib/tomato, else (an ordinary user, the rootless
    engine: engine/rootless.py) $XDG_DATA_HOME/tomato or ~/.local/share/tomato."""
    env = os.environ.get("TOMATO_ROOT")
    if env:
        return env
    if os.geteuid() == 0:
        return str(DEFAULT_ROOT)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    return os.path.join(base, "tomato")


def default_auth_file() -> Path:
    """Registry credentials: $TOMATO_CONFIG/config.json, else ~/.tomato/config.json."""
    env = os.environ.get("TOMATO_CONFIG")
    base = Path(env) if env else Path.home() / ".tomato"
    return base / "config.json"


@record(frozen=True)
class EngineConfig:
    root: Path = DEFAULT_ROOT
    auth_file: Path = field(default_factory=default_auth_file)
    insecure_registries: tuple[str, ...] = ()
    platform: Platform | None = None
    #: --userns-remap (engine/userns_remap.py): every container in a user namespace of
    #: this mapping, and ``root`` is then the remapped storage (BASE/UID.GID); None: off
    userns_remap: Remap | None = None
    #: the monitors this engine user forked and its cgroup primer (supervision.py)
    supervision: Supervision = field(default_factory=Supervision, compare=False, hash=False,
                                     repr=False)
    #: --explain: told of each step of the use cases that make a container (its network
    #: devices, the runtime's config, cgroups and execve, in the monitor too); None: off
    explain: Explainer | None = field(default=None, compare=False, hash=False, repr=False)
