"""What every use case of the engine is given: ``EngineConfig`` (the root, registry
credentials and settings).  The CLI makes one per command (cli/engine.py
make_config), the API one per server; nothing in the engine reads a default root
or the environment behind the caller's back."""

from __future__ import annotations

import os
from pathlib import Path

from tomato.records import field, record

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from tomato.images.manifest import Platform

DEFAULT_ROOT = Path("/var/lib/tomato")


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
