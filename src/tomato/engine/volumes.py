"""Named volumes (the "local" driver): ``ROOT/volumes/<name>/_data`` plus a small
``meta.json``.  A volume is in use while any container's spec mounts it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from tomato.errors import Conflict, InvalidArgument, NotFound
from tomato.records import field
from tomato.records import record as dataclass

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class Volume:
    name: str
    path: Path
    created: float
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def mountpoint(self) -> Path:
        return self.path / "_data"

    def to_docker(self) -> dict[str, Any]:
        return {"CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
                "Driver": "local", "Labels": self.labels or None,
                "Mountpoint": str(self.mountpoint), "Name": self.name, "Options": None,
                "Scope": "local"}


def _dir(root: Path) -> Path:
    d = root / "volumes"
    d.mkdir(parents=True, exist_ok=True, mode=0o711)
    return d


def _validate(name: str) -> str:
    if not name or not (name[0].isalnum() and all(c.isalnum() or c in "_.-" for c in name)):
        raise InvalidArgument(f'"{name}" includes invalid characters for a local volume name, '
                              'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed')
    return name


def _load(path: Path) -> Volume:
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    return Volume(path.name, path, meta.get("created", path.stat().st_mtime),
                  meta.get("labels", {}))


def ensure(root: Path, name: str, labels: dict[str, str] | None = None) -> Volume:
    path = _dir(root) / _validate(name)
    if not (path / "meta.json").exists():
        (path / "_data").mkdir(parents=True, exist_ok=True)
        tmp = path / "meta.json.tmp"
        tmp.write_text(json.dumps({"created": time.time(), "labels": labels or {}}))
        tmp.rename(path / "meta.json")
        _event(root, "create", name)
    return _load(path)


def _event(root: Path, action: str, name: str) -> None:
    from tomato.engine import events

    events.emit(root, "volume", action, name, {"driver": "local"})


def get(root: Path, name: str) -> Volume:
    path = _dir(root) / name
    if not (path / "meta.json").exists():
        raise NotFound(f"get {name}: no such volume")
    return _load(path)


def list_volumes(root: Path) -> list[Volume]:
    return [_load(p) for p in sorted(_dir(root).iterdir()) if (p / "meta.json").exists()]


def users(root: Path, name: str) -> list[str]:
    """Ids of containers whose spec mounts this volume."""
    from tomato.engine.containers import Containers

    data = str(_dir(root) / name / "_data")
    return [c.id for c in Containers(root).all()
            if any(m.get("source") == data for m in c.spec.get("mounts", []))]


def remove(root: Path, name: str, force: bool = False) -> None:
    vol = get(root, name)
    using = users(root, name)
    if using and not force:
        raise Conflict(f"remove {name}: volume is in use - [{', '.join(using)}]")
    shutil.rmtree(vol.path)
    _event(root, "destroy", name)


def prune(root: Path, filters: dict[str, list[str]] | None = None) -> list[str]:
    """Unused volumes (that ``filters``' label and label! allow; docker's ``all`` is
    accepted: every volume here is named)."""
    from tomato.engine.listfilters import prune_matches

    wanted = {k: v for k, v in (filters or {}).items() if k != "all"}
    removed = []
    for vol in list_volumes(root):
        if not users(root, vol.name) and prune_matches(vol.created, vol.labels, wanted):
            shutil.rmtree(vol.path)
            _event(root, "destroy", vol.name)
            removed.append(vol.name)
    return removed
