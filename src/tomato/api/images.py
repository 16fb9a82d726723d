"""Image endpoints: pull (streamed JSON progress), list, inspect, history, tag, push,
delete, prune, save/load, import, commit; search answers 501."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from tomato.api.http import ClientGone, HttpError, Request, docker_message
from tomato.engine import images as im
from tomato.errors import InvalidArgument, TomatoError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.api.server import Api


def _ts(created: str | None) -> int:
    if not created:
        return 0
    text = re.sub(r"(\.\d{6})\d+", r"\1", created.replace("Z", "+00:00"))
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return 0


def _name(image: str, tag: str) -> str:
    if not tag:
        return image
    if tag.startswith("sha256:"):
        return f"{image}@{tag}"
    last = image.rsplit("/", 1)[-1]
    if ":" in last or "@" in last:
        return image
    return f"{image}:{tag}"


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000.0
    return f"{n:.3g}TB"


class ProgressStream:
    """Engine progress callbacks → Docker's JSON progress messages (from any thread).
    A client that goes away stops the messages, not the pull."""

    TEXT = {"waiting": "Waiting", "exists": "Already exists", "done": "Pull complete",
            "retrying": "Retrying", "pushed": "Pushed"}

    def __init__(self, req: Request, push: bool = False) -> None:
        self.req = req
        self.push = push
        self.lock = threading.Lock()
        self.gone = False
        self.seen: set[str] = set()

    def send(self, obj: dict[str, Any]) -> None:
        with self.lock:
            if self.gone:
                return
            try:
                self.req.json_chunk(obj)
            except ClientGone:
                self.gone = True

    def __call__(self, p: Any) -> None:
        short = p.layer.removeprefix("sha256:")[:12]
        if short not in self.seen and not self.push:
            self.seen.add(short)
            self.send({"status": "Pulling fs layer", "progressDetail": {}, "id": short})
        if p.status in ("downloading", "pushing"):
            total = p.total or 0
            width = 50
            filled = int(width * p.current / total) if total else 0
            bar = "[" + "=" * max(filled - 1, 0) + (">" if filled else "") + \
                " " * (width - filled) + "]"
            self.send({"status": "Pushing" if self.push else "Downloading",
                       "progressDetail": {"current": p.current, "total": total},
                       "progress": f"{bar} {_human(p.current)}/{_human(total)}", "id": short})
            return
        if p.status == "done" and not self.push:
            self.send({"status": "Download complete", "progressDetail": {}, "id": short})
        text = "Pushed" if self.push and p.status == "done" else \
            self.TEXT.get(p.status, p.status.capitalize())
        self.send({"status": text, "progressDetail": {}, "id": short})

    def error(self, err: BaseException) -> None:
        message = docker_message(err)
        self.send({"errorDetail": {"message": message}, "error": message})


def registry_auth(req: Request) -> Any:
    """The X-Registry-Auth header: base64url JSON of docker's AuthConfig (username and
    password, or ``auth``: base64 of user:pass).  As dockerd, one that cannot be read is
    as none (the credentials `login` stored are used then)."""
    import base64
    import binascii
    import json

    from tomato.images.auth import Credentials

    raw = req.header("X-Registry-Auth").strip()
    if not raw:
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_")))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    user, password = doc.get("username") or "", doc.get("password") or ""
    if not user and isinstance(doc.get("auth"), str) and doc["auth"]:
        try:
            user, _, password = base64.b64decode(doc["auth"]).decode().partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
    if not isinstance(user, str) or not isinstance(password, str) or not user:
        return None
    return Credentials(user, password)


def create(api: Api, req: Request) -> None:
    """POST /images/create: fromImage (pull) or fromSrc (import)."""
    from tomato.images.reference import parse

    if req.arg("fromSrc"):
        _import(api, req)
        return
    image = req.arg("fromImage")
    if not image:
        raise InvalidArgument("fromImage or fromSrc is required")
    name = _name(image, req.arg("tag"))
    ref = parse(name)  # a bad reference is a 400 before the stream starts
    platform = None
    if req.arg("platform"):
        from tomato.images.manifest import parse_platform

        platform = parse_platform(req.arg("platform"))
    req.start_stream()
    progress = ProgressStream(req)
    path = ref.repository.split("/", 1)[1] if "/" in ref.repository else ref.repository
    progress.send({"status": f"Pulling from {path}",  # Docker's: the path in the registry
                   "id": ref.tag or ref.digest})
    try:
        try:
            before = im.get_image(api.cfg, name).id
        except TomatoError:
            before = None
        img = im.pull(api.cfg, name, platform=platform, progress=progress,
                      credentials=registry_auth(req))
    except TomatoError as err:
        progress.error(err)  # Docker reports pull errors inside the 200 stream
    else:
        progress.send({"status": f"Digest: {img.target_digest}"})
        status = "Image is up to date" if before == img.id else "Downloaded newer image"
        progress.send({"status": f"Status: {status} for {ref.familiar()}"})
        api.events.record("image", "pull", str(ref), {"name": str(ref)})
    if not progress.gone:
        req.end_stream()


def _import(api: Api, req: Request) -> None:
    repo = req.arg("repo")
    reference = _name(repo, req.arg("tag")) if repo else None
    src = req.arg("fromSrc")
    if src != "-":
        raise HttpError(501, "importing from a URL is not supported; send the tarball "
                             "as the request body (fromSrc=-)")
    changes: dict[str, Any] = {}
    if req.query.get("changes"):
        from tomato.engine import image_changes

        changes = image_changes.parse(req.query["changes"])
    img = im.import_image(api.cfg, None, reference=reference, config=changes or None,
                          message=req.arg("message"), stream=_Unclosed(req.body_stream()))
    req.start_stream()
    req.json_chunk({"status": img.id})
    req.end_stream()


class _Unclosed:
    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.stream.read(n)
        return data

    def __enter__(self) -> _Unclosed:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def summary(img: Any) -> dict[str, Any]:
    return {"Id": img.id, "ParentId": "", "RepoTags": list(img.repo_tags) or None,
            "RepoDigests": list(img.repo_digests) or None, "Created": _ts(img.created),
            "Size": img.size, "VirtualSize": img.size, "SharedSize": -1, "Labels": None,
            "Containers": -1}


def list_json(api: Api, req: Request) -> None:
    from tomato.engine import buildcache, listfilters

    filters = req.filters()
    found = listfilters.images(
        im.list_images(api.cfg), filters, lambda ref: im.get_image(api.cfg, ref),
        lambda iid: im.inspect(api.cfg, iid).config.get("Labels") or {})
    if not req.flag("all"):  # the build cache's untagged step images: with all=1 only
        found = buildcache.visible(api.cfg, found)
    out = [summary(i) for i in found]
    if filters.get("reference"):  # dockerd: only the names that match are listed
        for row in out:
            for key in ("RepoTags", "RepoDigests"):
                kept = [n for n in row[key] or []
                        if listfilters.reference_matches(n, filters["reference"])]
                row[key] = kept or None
    req.json_response(out)


def inspect(api: Api, req: Request, name: str) -> None:
    data = im.inspect(api.cfg, name).to_docker()
    data.update({"Parent": "", "Comment": "", "Container": "", "DockerVersion": "",
                 "Author": data.get("Author", ""), "VirtualSize": data["Size"],
                 "ContainerConfig": data.get("Config") or {},
                 "GraphDriver": {"Name": "overlay2", "Data": None}})
    req.json_response(data)


def history(api: Api, req: Request, name: str) -> None:
    img = im.get_image(api.cfg, name)
    out = []
    for i, h in enumerate(im.history(api.cfg, name)):
        out.append({"Id": h.id or "<missing>", "Created": _ts(h.created),
                    "CreatedBy": h.created_by, "Tags": list(img.repo_tags) if i == 0 else None,
                    "Size": h.size, "Comment": h.comment})
    req.json_response(out)


def tag(api: Api, req: Request, name: str) -> None:
    repo = req.arg("repo")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    target = _name(repo, req.arg("tag") or "latest")
    im.tag(api.cfg, name, target)
    api.events.record("image", "tag", target, {"name": target})
    req.send(201, b"", "text/plain")


def push(api: Api, req: Request, name: str) -> None:
    target = _name(name, req.arg("tag"))
    req.start_stream()
    progress = ProgressStream(req, push=True)
    from tomato.images.reference import parse

    try:
        progress.send({"status": f"The push refers to repository [{parse(target).repository}]"})
        pushed = im.push(api.cfg, target, progress=progress, credentials=registry_auth(req))
    except TomatoError as err:
        progress.error(err)
    else:
        tag_ = parse(target).tag or "latest"
        progress.send({"status": f"{tag_}: digest: {pushed.digest} size: {pushed.size}"})
        progress.send({"progressDetail": {},  # an aux message is read, not printed
                       "aux": {"Tag": tag_, "Digest": pushed.digest, "Size": pushed.size}})
        api.events.record("image", "push", target, {"name": target})
    if not progress.gone:
        req.end_stream()


def delete(api: Api, req: Request, name: str) -> None:
    res = im.remove(api.cfg, name, force=req.flag("force"))
    out = [{"Untagged": u} for u in res.untagged] + [{"Deleted": d} for d in res.deleted]
    for u in res.untagged:
        api.events.record("image", "untag", u, {"name": u})
    for d in res.deleted:
        api.events.record("image", "delete", d, {"name": d})
    req.json_response(out)


def prune(api: Api, req: Request) -> None:
    from tomato.engine.listfilters import image_prune_all

    res = im.prune(api.cfg, all_images=image_prune_all(req.filters()))
    out = [{"Untagged": u} for u in res.untagged] + [{"Deleted": d} for d in res.deleted]
    req.json_response({"ImagesDeleted": out or None, "SpaceReclaimed": res.reclaimed})


def _save(api: Api, req: Request, names: list[str]) -> None:
    if not names:
        raise InvalidArgument("no images named")
    tmp = Path(tempfile.mkdtemp(prefix="save-", dir=api.cfg.root))
    try:
        out = tmp / "images.tar"
        im.save(api.cfg, names, out)
        req.start_stream("application/x-tar")
        with open(out, "rb") as f:
            while chunk := f.read(1 << 20):
                req.chunk(chunk)
        req.end_stream()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def get_one(api: Api, req: Request, name: str) -> None:
    _save(api, req, [name])


def get_many(api: Api, req: Request) -> None:
    _save(api, req, req.query.get("names", []))


def load(api: Api, req: Request) -> None:
    # read as it comes, into the engine's own scratch space (which a killed load's
    # successor collects), never a copy a kill -9 would leave in ROOT/load-*
    loaded = im.load(api.cfg, None, stream=req.body_stream())
    req.start_stream()
    for img in loaded:
        for t in img.repo_tags or (img.id,):
            label = "Loaded image" if t != img.id else "Loaded image ID"
            req.json_chunk({"stream": f"{label}: {t}\n"})
            api.events.record("image", "load", t, {"name": t})
    req.end_stream()


def search(api: Api, req: Request) -> None:
    raise HttpError(501, "image search is not supported by tomato")


def commit(api: Api, req: Request) -> None:
    from tomato.engine import filesystem, service

    c = service.get(api.cfg, req.arg("container"))
    body = req.fields()
    reference = _name(req.arg("repo"), req.arg("tag") or "latest") if req.arg("repo") else None
    changes: dict[str, Any] = {}
    if req.query.get("changes"):
        from tomato.engine import image_changes

        changes = image_changes.parse(req.query["changes"])
    for key, value in (("Cmd", body.texts("Cmd", lone=True)),
                       ("Entrypoint", body.texts("Entrypoint", lone=True)),
                       ("Env", body.texts("Env")), ("WorkingDir", body.text("WorkingDir")),
                       ("User", body.text("User")), ("Labels", body.text_map("Labels")),
                       ("ExposedPorts", {p: {} for p in body.names("ExposedPorts")})):
        if value:
            changes[key] = value
    image_id = filesystem.commit(api.cfg, c, reference, comment=req.arg("comment"),
                                 author=req.arg("author"), changes=changes,
                                 pause=req.flag("pause", True))
    api.events.record("container", "commit", c.id, {"name": c.name, "image": c.image})
    req.json_response({"Id": image_id}, 201)


ROUTES = [
    ("POST", "/images/create", create),
    ("GET", "/images/json", list_json),
    ("POST", "/images/prune", prune),
    ("GET", "/images/search", search),
    ("GET", "/images/get", get_many),
    ("POST", "/images/load", load),
    ("POST", "/commit", commit),
    ("GET", "/images/{name*}/json", inspect),
    ("GET", "/images/{name*}/history", history),
    ("GET", "/images/{name*}/get", get_one),
    ("POST", "/images/{name*}/tag", tag),
    ("POST", "/images/{name*}/push", push),
    ("DELETE", "/images/{name*}", delete),
]

_ = os
