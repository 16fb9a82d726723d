"""`tomato` image commands: pull, push, images, inspect, tag, rmi, prune, history,
save, load, import, login, logout -- at the top level and under ``image``, as
docker has them.  Each parses, calls one use case of engine/images.py, renders
(cli/render.py).  Errors of a daemon-side operation exit 1, as docker's image
commands do (cli/engine.py prints them)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tomato.cli.render import (
    ProgressView,
    created_ts,
    go_time,
    human_size,
)
from tomato.cli.usage import DockerParser
from tomato.engine.humanize import human_duration
from tomato.errors import InvalidArgument, NotFound, TomatoError

TYPE_CHECKING = False  # typing, tempfile, shutil: imported where used
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig

FAIL_EXIT = 1


def _images() -> Any:
    from tomato.engine import images  # imported lazily: keeps `tomato --help` fast
    return images


def cmd_pull(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.images.manifest import parse_platform
    from tomato.images.reference import parse
    im = _images()
    ref = parse(args.name)
    if not args.quiet and not ref.digest:
        print(f"{ref.tag}: Pulling from {ref.familiar_repository}", flush=True)
    plat = parse_platform(args.platform) if args.platform else None
    try:
        before = im.get_image(cfg, args.name).id
    except NotFound:
        before = None
    img = im.pull(cfg, args.name, platform=plat, progress=None if args.quiet else ProgressView())
    if not args.quiet:
        print(f"Digest: {img.target_digest}")
        status = "Image is up to date" if before == img.id else "Downloaded newer image"
        print(f"Status: {status} for {ref.familiar()}")
    print(str(ref))
    return 0


def cmd_push(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.images.reference import parse
    ref = parse(args.name)
    if not args.quiet:
        print(f"The push refers to repository [{ref.repository}]", flush=True)
    pushed = _images().push(cfg, args.name, progress=None if args.quiet else ProgressView())
    print(f"{ref.tag}: digest: {pushed.digest} size: {pushed.size}")
    return 0


def _image_rows(imgs: list[Any], digests: bool) -> list[dict[str, Any]]:
    """docker's image rows (formatter.imageFormatTaggedAndDigest): a row a tag (with
    --digests, a row a tag and digest of its repository), then a row for each repository
    known only by digest (tag <none>); an image with neither is <none> <none>."""
    rows = []
    now = time.time()
    for img in imgs:
        ts = created_ts(img.created)
        common = {"ID": img.id, "CreatedAt": go_time(ts) if ts else "",
                  "CreatedSince": human_duration(now - ts) + " ago" if ts else "N/A",
                  "Size": human_size(img.size), "VirtualSize": human_size(img.size, 4),
                  "Containers": "N/A", "SharedSize": "N/A", "UniqueSize": "N/A"}
        by_repo: dict[str, list[str]] = {}
        for d in img.repo_digests:
            repo, _, digest = d.partition("@")
            by_repo.setdefault(_familiar(repo), []).append(digest)
        if not img.repo_tags and not img.repo_digests:
            rows.append({"Repository": "<none>", "Tag": "<none>", "Digest": "<none>", **common})
            continue
        for name in img.repo_tags:
            repo, _, tag = name.rpartition(":")
            repo = _familiar(repo)
            for digest in (by_repo.get(repo) or ["<none>"]) if digests else ["<none>"]:
                rows.append({"Repository": repo, "Tag": tag, "Digest": digest, **common})
        tagged = {_familiar(t.rpartition(":")[0]) for t in img.repo_tags}
        for repo, found in by_repo.items():
            if repo in tagged:
                continue
            for digest in found if digests else [""]:
                rows.append({"Repository": repo, "Tag": "<none>", "Digest": digest, **common})
    return rows


def _familiar(repo: str) -> str:
    """docker.io/library/busybox -> busybox, as docker's FamiliarName."""
    return repo.removeprefix("docker.io/").removeprefix("library/") \
        if repo.startswith("docker.io/") else repo


#: docker/cli's image context: each field's column
IMAGE_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                 "Containers": "CONTAINERS", "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE",
                 "UniqueSize": "UNIQUE SIZE"}


def cmd_images(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli.render import show
    from tomato.engine import listfilters

    filters = listfilters.parse(args.filter)
    if args.reference:
        filters.setdefault("reference", []).append(args.reference)
    im = _images()
    imgs = listfilters.images(im.list_images(cfg), filters, lambda ref: im.get_image(cfg, ref),
                              lambda iid: im.inspect(cfg, iid).config.get("Labels") or {})
    if not args.all:  # the build cache's untagged step images: with -a only
        from tomato.engine import buildcache

        imgs = buildcache.visible(cfg, imgs)
    rows = _image_rows(imgs, args.digests)
    if filters.get("reference"):  # a row a tag: only the tags that match
        import fnmatch
        pats = filters["reference"]
        rows = [r for r in rows if any(fnmatch.fnmatch(r["Repository"], p)
                                       or fnmatch.fnmatch(f"{r['Repository']}:{r['Tag']}", p)
                                       for p in pats)]
    def short(image_id: str) -> str:
        return image_id if args.no_trunc else image_id.removeprefix("sha256:")[:12]

    if args.quiet:
        for r in rows:  # docker: an id a row (an image with two names: twice)
            print(short(r["ID"]))
        return 0
    default = "table {{.Repository}}\t{{.Tag}}\t" + ("{{.Digest}}\t" if args.digests else "") \
        + "{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    return show(args.format, [{**r, "ID": short(r["ID"])} for r in rows], IMAGE_HEADERS,
                default, "*formatter.imageContext")


def cmd_inspect(args: argparse.Namespace, cfg: EngineConfig) -> int:
    out, missing = [], []
    for name in args.names:
        try:
            out.append(_images().inspect(cfg, name).to_docker())
        except NotFound:
            missing.append(name)
    from tomato.cli.render import inspect_each

    code = inspect_each(args.format, out)
    for name in missing:
        print(f"tomato: no such image: {name}", file=sys.stderr)
    return code or (FAIL_EXIT if missing else 0)


def cmd_tag(args: argparse.Namespace, cfg: EngineConfig) -> int:
    _images().tag(cfg, args.source, args.target)
    return 0


def cmd_rmi(args: argparse.Namespace, cfg: EngineConfig) -> int:
    rc = 0
    for name in args.names:
        try:
            res = _images().remove(cfg, name, force=args.force)
        except TomatoError as err:
            print(f"tomato: {err}", file=sys.stderr)
            rc = FAIL_EXIT
            continue
        for u in res.untagged:
            print(f"Untagged: {u}")
        for d in res.deleted:
            print(f"Deleted: {d}")
    return rc


def cmd_prune(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine.listfilters import image_prune_all, parse

    args.all = image_prune_all(parse(args.filter)) or args.all
    if not args.force and sys.stdin.isatty():
        what = "all images without at least one container associated to them" if args.all \
            else "all dangling images"
        answer = input(f"WARNING! This will remove {what}.\nAre you sure you want to "
                       "continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    res = _images().prune(cfg, all_images=args.all)
    if res.untagged or res.deleted:
        print("Deleted Images:")
        for u in res.untagged:
            print(f"untagged: {u}")
        for d in res.deleted:
            print(f"deleted: {d}")
        print()
    print(f"Total reclaimed space: {human_size(res.reclaimed)}")
    return 0


def cmd_history(args: argparse.Namespace, cfg: EngineConfig) -> int:
    entries = _images().history(cfg, args.name)
    now = time.time()
    if args.quiet:
        for e in entries:
            print(e.id if args.no_trunc else e.id.removeprefix("sha256:")[:12])
        return 0
    rows = []
    for e in entries:
        ts = created_ts(e.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else ""
        created = (human_duration(now - ts) + " ago") if ts and args.human else stamp
        by = e.created_by.replace("\t", " ")
        by = by if args.no_trunc or len(by) <= 45 else by[:44] + "…"
        ident = e.id if args.no_trunc or e.id == "<missing>" else e.id[7:19]
        rows.append({"ID": ident, "CreatedSince": created,
                     "CreatedAt": stamp, "CreatedBy": by,
                     "Size": human_size(e.size) if args.human else str(e.size),
                     "Comment": e.comment})
    from tomato.cli.render import show

    return show(args.format, rows, HISTORY_HEADERS, "table {{.ID}}\t{{.CreatedSince}}\t"
                "{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}", "*formatter.historyContext")


#: docker/cli's history context
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


def cmd_save(args: argparse.Namespace, cfg: EngineConfig) -> int:
    if args.output:
        _images().save(cfg, args.names, Path(args.output), args.format)
        return 0
    if sys.stdout.isatty():
        raise InvalidArgument("cowardly refusing to save to a terminal; use -o or redirect")
    if args.format == "oci":
        raise InvalidArgument("--format oci writes a directory: give it with -o")
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tomato-save-") as tmp:
        out = Path(tmp) / "image.tar"
        _images().save(cfg, args.names, out, args.format)
        with open(out, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
    return 0


def cmd_load(args: argparse.Namespace, cfg: EngineConfig) -> int:
    if args.input:
        loaded = _images().load(cfg, Path(args.input))
    else:
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty")
        # read as it comes, into the engine's root (never a copy in the host's /tmp)
        loaded = _images().load(cfg, None, stream=sys.stdin.buffer)
    for img in loaded:
        if img.repo_tags:
            for t in img.repo_tags:
                print(f"Loaded image: {t}")
        else:
            print(f"Loaded image ID: {img.id}")
    return 0


def cmd_import(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.engine import image_changes

    config = image_changes.parse(args.change or [])
    if args.file == "-":
        img = _images().import_image(cfg, None, reference=args.reference, config=config,
                                     message=args.message or "", stream=sys.stdin.buffer)
    else:
        img = _images().import_image(cfg, Path(args.file), reference=args.reference,
                                     config=config, message=args.message or "")
    print(img.id)
    return 0


def cmd_login(args: argparse.Namespace, cfg: EngineConfig) -> int:
    import getpass
    server = args.server or "docker.io"
    user = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
              file=sys.stderr)
        password = args.password
    else:
        password = getpass.getpass("Password: ")
    if not user or not password:
        raise InvalidArgument("username and password are required")
    _images().login(cfg, server, user, password)
    print("Login Succeeded")
    return 0


def cmd_logout(args: argparse.Namespace, cfg: EngineConfig) -> int:
    server = args.server or "docker.io"
    if _images().logout(cfg, server):
        print(f"Removing login credentials for {server}")
    else:
        print(f"Not logged in to {server}")
    return 0


def _add_images_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", nargs="?")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.add_argument("-a", "--all", action="store_true", help="show all images")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--digests", action="store_true")
    p.add_argument("-f", "--filter", action="append")
    p.add_argument("--format", help="table, json or a template like '{{.Repository}}'")
    p.set_defaults(func=cmd_images)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """The image commands, top level (``pull``, ``rmi``...) and under ``image``."""
    def add(container: Any, name: str, func: Callable[..., int], help: str,
            aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = container.add_parser(name, help=help,
                                                          aliases=list(aliases), parents=[common])
        p.set_defaults(func=func)
        return p

    def pull_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("name")
        p.add_argument("--platform", help="os/arch[/variant], default the host's")
        p.add_argument("-q", "--quiet", action="store_true")

    def push_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("name")
        p.add_argument("-q", "--quiet", action="store_true")

    def rm_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("names", nargs="+", metavar="IMAGE")
        p.add_argument("-f", "--force", action="store_true")

    def tag_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("source")
        p.add_argument("target")

    def history_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("name")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("-H", "--human", action=argparse.BooleanOptionalAction, default=True)
        p.add_argument("--format")

    def save_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("names", nargs="+", metavar="IMAGE")
        p.add_argument("-o", "--output")
        p.add_argument("--format", default="docker-archive",
                       choices=["docker-archive", "oci-archive", "oci"])

    def load_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("-i", "--input")
        p.add_argument("-q", "--quiet", action="store_true")

    def import_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("file", metavar="FILE|-")
        p.add_argument("reference", nargs="?")
        p.add_argument("-c", "--change", action="append")
        p.add_argument("-m", "--message")

    def inspect_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("names", nargs="+", metavar="IMAGE")
        p.add_argument("-f", "--format")

    def prune_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("-f", "--force", action="store_true")
        p.add_argument("--filter", action="append", default=[])

    for container, prefix in ((sub, ""), (None, "image")):
        if container is None:
            img = sub.add_parser("image", help="manage images", parents=[common])
            container = img.add_subparsers(dest="image_command", metavar="COMMAND",
                                           parser_class=DockerParser, required=True)
            _add_images_args(add(container, "ls", cmd_images, "list images", ("list",)))
            inspect_args(add(container, "inspect", cmd_inspect, "show image details"))
            prune_args(add(container, "prune", cmd_prune, "remove unused images"))
            rm_args(add(container, "rm", cmd_rmi, "remove images", ("remove",)))
        else:
            _add_images_args(add(container, "images", cmd_images, "list images"))
            rm_args(add(container, "rmi", cmd_rmi, "remove images"))
        pull_args(add(container, "pull", cmd_pull, "pull an image from a registry"))
        push_args(add(container, "push", cmd_push, "push an image to a registry"))
        tag_args(add(container, "tag", cmd_tag, "add a name to an image"))
        history_args(add(container, "history", cmd_history, "show an image's layers"))
        save_args(add(container, "save", cmd_save, "write images to an archive"))
        load_args(add(container, "load", cmd_load, "read images from an archive"))
        import_args(add(container, "import", cmd_import, "make an image from a rootfs tarball"))
        del prefix
    p = add(sub, "login", cmd_login, "store credentials for a registry")
    p.add_argument("server", nargs="?")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    p = add(sub, "logout", cmd_logout, "remove stored credentials")
    p.add_argument("server", nargs="?")
