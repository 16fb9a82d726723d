"""Docker's list filters (``--filter key=value``, the API's ``filters`` JSON) for
containers, images, networks and volumes: one place, used by the CLI and the API.

As dockerd: values of one key are OR'ed (label: AND'ed), keys are AND'ed; an unknown
key is ``invalid filter 'KEY'``; ``before``/``since`` name an object that must exist.
"""

from __future__ import annotations

import fnmatch
import re

from tomato.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from tomato.engine.config import EngineConfig
    from tomato.engine.containers import Container
    from tomato.engine.image_store import ImageSummary



def parse(items: list[str] | None) -> dict[str, list[str]]:
    """The CLI's ``-f key=value`` flags as the API's filters."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        out.setdefault(key.strip().lower(), []).append(value)
    return out


def _labels_match(labels: dict[str, str], values: list[str]) -> bool:
    return all((labels.get(v.partition("=")[0]) == v.partition("=")[2]) if "=" in v
               else v in labels for v in values)


def _bool(key: str, values: list[str]) -> bool:
    value = values[-1].lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"invalid filter '{key}={values[-1]}'")
    return value in ("true", "1")


# -- prunes ----------------------------------------------------------------------------
def prune_matches(created: float, labels: dict[str, str],
                  filters: dict[str, list[str]]) -> bool:
    """The prunes' filters: until (made before it: docker's time forms), label and
    label! (with or without a value)."""
    from tomato.engine.timestamps import parse as parse_time

    for key, values in filters.items():
        if not values:
            continue
        if key == "until":
            if not all(created < parse_time(v) for v in values):
                return False
        elif key == "label":
            if not _labels_match(labels, values):
                return False
        elif key == "label!":
            if any(_labels_match(labels, [v]) for v in values):
                return False
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    return True


def image_prune_all(filters: dict[str, list[str]]) -> bool:
    """An image prune's filters: dangling=false is -a (every unused image).  until and
    label are refused, never ignored: ignoring them would remove more than was asked."""
    for key in filters:
        if key in ("until", "label", "label!"):
            raise InvalidArgument(f"image prune's '{key}' filter is not supported by this "
                                  "engine yet")
        if key != "dangling":
            raise InvalidArgument(f"invalid filter '{key}'")
    return any(not _bool("dangling", [v]) for v in filters.get("dangling", []))


# -- containers ------------------------------------------------------------------------
def container_matches(cfg: EngineConfig, c: Container, filters: dict[str, list[str]]) -> bool:
    from tomato.engine.containers import Containers

    labels = c.options.get("labels") or {}
    for key, values in filters.items():
        if not values:
            continue
        if key == "id":
            ok = any(c.id.startswith(v) for v in values)
        elif key == "name":
            ok = any(_search(v.lstrip("/"), c.name) for v in values)
        elif key == "label":
            ok = _labels_match(labels, values)
        elif key == "status":
            for v in values:
                if v not in ("created", "restarting", "running", "removing", "paused",
                             "exited", "dead"):
                    raise InvalidArgument(f"invalid filter 'status={v}'")
            ok = c.state.status in values
        elif key == "exited":
            ok = c.state.status == "exited" and str(c.state.exit_code) in values
        elif key == "ancestor":
            ok = any(v in (c.image, c.image_id, c.image_id.removeprefix("sha256:")[:12]) or
                     c.image.startswith(v + ":") for v in values)
        elif key == "network":
            ok = c.options.get("network") in values
        elif key == "volume":
            ok = any(any(v in m.get("source", "") or v == m.get("destination")
                         for m in c.spec.get("mounts", [])) for v in values)
        elif key in ("before", "since"):
            refs = [Containers(cfg.root).get(v) for v in values]
            ok = all(c.created < r.created if key == "before" else c.created > r.created
                     for r in refs)
        elif key in ("publish", "expose"):
            ports = _port_keys(c, exposed=key == "expose")
            ok = any((v if "/" in v else f"{v}/tcp") in ports for v in values)
        elif key == "health":
            from tomato.engine.health import check_filter, of_container

            for value in values:
                check_filter(value)
            ok = of_container(cfg.root, c) in values
        elif key == "isolation":
            ok = "default" in values  # the only isolation on Linux
        elif key == "is-task":
            ok = "false" in values  # no swarm: never a task
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return pattern in text


def _port_keys(c: Container, exposed: bool) -> set[str]:
    """"80/tcp" for each published container port (and each exposed one if asked)."""
    keys = {f"{p.get('container_port')}/{p.get('proto', 'tcp')}"
            for p in c.options.get("publish") or []}
    if exposed:
        for item in c.options.get("expose") or []:
            keys.add(item if "/" in str(item) else f"{item}/tcp")
    return keys


# -- images ----------------------------------------------------------------------------
def images(found: list[ImageSummary], filters: dict[str, list[str]],
           get_image: Callable[[str], ImageSummary],
           labels_of: Callable[[str], dict[str, str]]) -> list[ImageSummary]:
    """dangling, reference (a glob on repo or repo:tag), label, before, since (the
    caller's ``get_image`` names the pivot, ``labels_of`` reads an image's labels: the
    engine's image use cases, which this module, imported by them, cannot import)."""
    for key in filters:
        if key not in ("dangling", "reference", "label", "before", "since"):
            raise InvalidArgument(f"invalid filter '{key}'")
    out = list(found)
    if filters.get("dangling"):
        dangling = _bool("dangling", filters["dangling"])
        out = [i for i in out if (not i.repo_tags) == dangling]
    if filters.get("reference"):
        pats = filters["reference"]
        out = [i for i in out if any(reference_matches(t, pats) for t in i.repo_tags)]
    for key in ("before", "since"):
        for ref in filters.get(key) or []:
            pivot = get_image(ref)
            out = [i for i in out if (i.added < pivot.added if key == "before"
                                      else i.added > pivot.added)]
    if filters.get("label"):
        out = [i for i in out if _labels_match(labels_of(i.id), filters["label"])]
    return out


def reference_matches(name: str, patterns: list[str]) -> bool:
    """docker's FamiliarMatch: a glob on ``busybox:latest`` (or ``repo@digest``), or on
    its name alone (``busybox``); docker.io/library/ is not part of either."""
    if name.startswith("docker.io/"):
        name = name.removeprefix("docker.io/").removeprefix("library/")
    bare = name.split("@", 1)[0]
    bare = bare.rsplit(":", 1)[0] if ":" in bare.rsplit("/", 1)[-1] else bare
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(bare, p) for p in patterns)


# -- networks and volumes -------------------------------------------------------------
def network_matches(n: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """``n``: a network's inspect document."""
    labels = n.get("Labels") or {}
    for key, values in filters.items():
        if not values:
            continue
        if key == "name":
            ok = any(_search(v, n["Name"]) for v in values)
        elif key == "id":
            ok = any(n["Id"].startswith(v) for v in values)
        elif key == "label":
            ok = _labels_match(labels, values)
        elif key == "driver":
            ok = n.get("Driver") in values
        elif key == "type":
            builtin = n["Name"] in ("bridge", "host", "none")
            ok = ("builtin" in values and builtin) or ("custom" in values and not builtin)
        elif key == "scope":
            ok = "local" in values
        elif key == "dangling":
            builtin = n["Name"] in ("bridge", "host", "none")
            unused = not builtin and not n.get("Containers")
            ok = unused == _bool(key, values)
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


def volume_matches(v: Any, filters: dict[str, list[str]], in_use: Callable[[str], bool]
                   ) -> bool:
    """``in_use(name)``: whether a container mounts it (engine/volumes.py's users)."""
    for key, values in filters.items():
        if not values:
            continue
        if key == "name":
            ok = any(_search(x, v.name) for x in values)
        elif key == "label":
            ok = _labels_match(v.labels, values)
        elif key == "dangling":
            ok = in_use(v.name) != _bool(key, values)
        elif key == "driver":
            ok = "local" in values
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
        if not ok:
            return False
    return True
