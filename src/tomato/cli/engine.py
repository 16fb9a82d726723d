"""``tomato``: the Docker-like command line.  A thin edge: parse, call one use case, render.

Commands come from modules that each export ``register(sub, common)``: this
file registers the image commands and then every module named in
``COMMAND_MODULES`` (the engine adds run/ps/... there without touching the
image commands).  A command's handler is ``func(args, cfg) -> int``.

Errors: ``tomato: <message>`` on stderr, never a traceback for a TomatoError;
exit 1 for a failed daemon-side operation (as docker does for image
commands), 125 for bad usage.  ``--debug`` or ``TOMATO_DEBUG=1`` re-raises.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tomato.cli.common import describe, root_refusal
from tomato.cli.usage import DockerParser
from tomato.engine.humanize import human_duration  # noqa: F401 — used here and re-exported
from tomato.errors import InvalidArgument, NotFound, TomatoError

TYPE_CHECKING = False  # typing, tempfile, shutil, threading: imported where used
if TYPE_CHECKING:
    from typing import Any

#: modules that add more commands: each has ``register(sub, common)``.
COMMAND_MODULES: tuple[str, ...] = ("tomato.cli.containers", "tomato.cli.networks",
                                     "tomato.cli.lab", "tomato.cli.serve",
                                     "tomato.cli.supervise", "tomato.cli.build")

#: which module registers each command, so `tomato ps` imports the container
#: commands only (not the lab's or the server's); "" is this module's
#: register_images.  tests/unit/test_cli_commands.py keeps it true.
COMMAND_HOMES: dict[str, str] = {
    **dict.fromkeys(("attach", "commit", "container", "cp", "create", "diff", "exec", "export",
                     "inspect", "kill", "logs", "pause", "ps", "rename", "restart", "rm", "run",
                     "start", "stats", "stop", "top", "unpause", "update", "volume", "wait"),
                    "tomato.cli.containers"),
    **dict.fromkeys(("network", "port"), "tomato.cli.networks"),
    **dict.fromkeys(("cgroup", "chroot", "layers", "ns", "nsenter", "rootfs", "unshare"),
                    "tomato.cli.lab"),
    "serve": "tomato.cli.serve",
    "daemon": "tomato.cli.supervise",
    **dict.fromkeys(("build", "builder"), "tomato.cli.build"),
    **dict.fromkeys(("history", "image", "images", "import", "load", "login", "logout", "pull",
                     "push", "rmi", "save", "system", "tag"), ""),
}

USAGE_EXIT = 125
FAIL_EXIT = 1


#: argparse with docker's manners: no abbreviations, docker's errors (cli/usage.py)
_Parser = DockerParser


# -- rendering helpers -----------------------------------------------------------
def human_size(n: float) -> str:
    """docker's units.HumanSize: decimal units, 3 significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.3g}{units[i]}"


def _created_ts(created: str | None) -> float | None:
    if not created:
        return None
    from datetime import datetime
    text = re.sub(r"(\.\d{6})\d+", r"\1", created.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def render_template(template: str, obj: Any) -> str:
    """A subset of Go templates: ``{{.Field}}``, ``{{.A.B}}``, ``{{json .}}``, ``{{json .X}}``."""
    def value(path: str) -> Any:
        v = obj
        for part in [p for p in path.split(".") if p]:
            v = v.get(part) if isinstance(v, dict) else getattr(v, part, None)
        return v

    def sub(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(value(expr[5:].strip()))
        v = value(expr)
        if isinstance(v, (dict, list)):
            return json.dumps(v)
        return "" if v is None else str(v)

    text = template.replace("\\t", "\t").replace("\\n", "\n")
    return re.sub(r"\{\{(.*?)\}\}", sub, text)


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


class ProgressView:
    """Per-layer progress lines on a terminal; silent otherwise."""

    def __init__(self, stream: Any = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.lines: dict[str, str] = {}
        self.drawn = 0
        import threading

        self.lock = threading.Lock()
        self.last = 0.0

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        with self.lock:
            short = p.layer.removeprefix("sha256:")[:12]
            if p.status in ("downloading", "pushing") and p.total:
                pct = p.current * 100 // p.total
                text = f"{short}: {p.status.capitalize()} {human_size(p.current)}/" \
                       f"{human_size(p.total)} {pct}%"
            else:
                text = {"waiting": "Waiting", "exists": "Already exists", "done": "Complete",
                        "retrying": "Retrying"}.get(p.status, p.status)
                text = f"{short}: {text}"
            self.lines[p.layer] = text
            now = time.monotonic()
            if p.status in ("downloading", "pushing") and now - self.last < 0.1:
                return
            self.last = now
            out = "\x1b[1A\x1b[2K" * self.drawn
            out += "".join(line + "\n" for line in self.lines.values())
            self.drawn = len(self.lines)
            self.stream.write(out)
            self.stream.flush()


# -- image commands --------------------------------------------------------------------
def _images() -> Any:
    from tomato.engine import images  # imported lazily: keeps `tomato --help` fast
    return images


def cmd_pull(args: argparse.Namespace, cfg: Any) -> int:
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


def cmd_push(args: argparse.Namespace, cfg: Any) -> int:
    from tomato.images.reference import parse
    ref = parse(args.name)
    if not args.quiet:
        print(f"The push refers to repository [{ref.repository}]", flush=True)
    pushed = _images().push(cfg, args.name, progress=None if args.quiet else ProgressView())
    print(f"{ref.tag}: digest: {pushed.digest} size: {pushed.size}")
    return 0


def _image_rows(imgs: list[Any], digests: bool) -> list[dict[str, Any]]:
    rows = []
    now = time.time()
    for img in imgs:
        names = [t.rsplit(":", 1) for t in img.repo_tags] or \
            [[d.split("@", 1)[0], "<none>"] for d in img.repo_digests[:1]] or \
            [["<none>", "<none>"]]
        for repo, tag in names:
            digest = next((d.split("@", 1)[1] for d in img.repo_digests
                           if d.split("@", 1)[0] == repo), "<none>")
            ts = _created_ts(img.created)
            rows.append({
                "Repository": repo, "Tag": tag, "ID": img.id, "Digest": digest,
                "CreatedAt": img.created or "",
                "CreatedSince": human_duration(now - ts) + " ago" if ts else "N/A",
                "Size": human_size(img.size), "VirtualSize": human_size(img.size),
                "Containers": "N/A", "SharedSize": "N/A", "UniqueSize": "N/A",
            })
    return rows


def cmd_images(args: argparse.Namespace, cfg: Any) -> int:
    dangling = None
    reference = args.reference
    for f in args.filter or []:
        k, _, v = f.partition("=")
        if k == "dangling":
            dangling = v.lower() in ("true", "1")
        elif k == "reference":
            reference = v
        else:
            raise InvalidArgument(f"invalid filter {k!r}")
    imgs = _images().list_images(cfg, reference=reference, dangling=dangling)
    rows = _image_rows(imgs, args.digests)
    if reference:
        import fnmatch
        rows = [r for r in rows if fnmatch.fnmatch(r["Repository"], reference)
                or fnmatch.fnmatch(f"{r['Repository']}:{r['Tag']}", reference)]
    short = (lambda i: i) if args.no_trunc else (lambda i: i.removeprefix("sha256:")[:12])
    if args.quiet:
        for i in dict.fromkeys(short(r["ID"]) for r in rows):
            print(i)
        return 0
    fmt = args.format
    if fmt == "json":
        for r in rows:
            print(json.dumps({**r, "ID": short(r["ID"])}))
        return 0
    if fmt and fmt != "table":
        for r in rows:
            print(render_template(fmt.removeprefix("table "), {**r, "ID": short(r["ID"])}))
        return 0
    head = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else []) + \
        ["IMAGE ID", "CREATED", "SIZE"]
    table = [head]
    for r in rows:
        table.append([r["Repository"], r["Tag"]] + ([r["Digest"]] if args.digests else []) +
                     [short(r["ID"]), r["CreatedSince"], r["Size"]])
    print_table(table)
    return 0


def cmd_inspect(args: argparse.Namespace, cfg: Any) -> int:
    out, missing = [], []
    for name in args.names:
        try:
            out.append(_images().inspect(cfg, name).to_docker())
        except NotFound:
            missing.append(name)
    if args.format:
        for doc in out:
            print(render_template(args.format, doc))
    else:
        print(json.dumps(out, indent=4))
    for name in missing:
        print(f"tomato: no such image: {name}", file=sys.stderr)
    return FAIL_EXIT if missing else 0


def cmd_tag(args: argparse.Namespace, cfg: Any) -> int:
    _images().tag(cfg, args.source, args.target)
    return 0


def cmd_rmi(args: argparse.Namespace, cfg: Any) -> int:
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


def cmd_prune(args: argparse.Namespace, cfg: Any) -> int:
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


def cmd_system_prune(args: argparse.Namespace, cfg: Any) -> int:
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
    from tomato.engine import service
    from tomato.engine.networks import Networks, sweep

    sections = [("Deleted Containers", service.prune(cfg))]
    sweep(cfg.root)
    sections.append(("Deleted Networks", Networks(cfg.root).prune()))
    if args.volumes:
        from tomato.engine import volumes

        sections.append(("Deleted Volumes", volumes.prune(cfg.root)))
    res = _images().prune(cfg, all_images=args.all)
    sections.append(("Deleted Images", [f"untagged: {u}" for u in res.untagged]
                     + [f"deleted: {d}" for d in res.deleted]))
    for title, lines in sections:
        if lines:
            print(f"{title}:")
            for line in lines:
                print(line)
            print()
    print(f"Total reclaimed space: {human_size(res.reclaimed)}")
    return 0


def cmd_history(args: argparse.Namespace, cfg: Any) -> int:
    entries = _images().history(cfg, args.name)
    now = time.time()
    if args.quiet:
        for e in entries:
            print(e.id if args.no_trunc else e.id.removeprefix("sha256:")[:12])
        return 0
    table = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for e in entries:
        ts = _created_ts(e.created)
        created = (human_duration(now - ts) + " ago") if ts and args.human else (e.created or "")
        by = e.created_by if args.no_trunc or len(e.created_by) <= 45 \
            else e.created_by[:44] + "…"
        ident = e.id if args.no_trunc or e.id == "<missing>" else e.id[7:19]
        table.append([ident, created, by,
                      human_size(e.size) if args.human else str(e.size), e.comment])
    print_table(table)
    return 0


def cmd_save(args: argparse.Namespace, cfg: Any) -> int:
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


def cmd_load(args: argparse.Namespace, cfg: Any) -> int:
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


def cmd_import(args: argparse.Namespace, cfg: Any) -> int:
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


def cmd_login(args: argparse.Namespace, cfg: Any) -> int:
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


def cmd_logout(args: argparse.Namespace, cfg: Any) -> int:
    server = args.server or "docker.io"
    if _images().logout(cfg, server):
        print(f"Removing login credentials for {server}")
    else:
        print(f"Not logged in to {server}")
    return 0


def cmd_df(args: argparse.Namespace, cfg: Any) -> int:
    rows = _images().disk_usage(cfg)
    if args.format == "json":
        for r in rows:
            print(json.dumps({"Type": r.type, "TotalCount": r.total, "Active": r.active,
                              "Size": human_size(r.size),
                              "Reclaimable": human_size(r.reclaimable)}))
        return 0
    table = [["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]]
    for r in rows:
        pct = f" ({r.reclaimable * 100 // r.size}%)" if r.size else ""
        table.append([r.type, str(r.total), str(r.active), human_size(r.size),
                      human_size(r.reclaimable) + pct])
    print_table(table)
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


def register_images(sub: Any, common: argparse.ArgumentParser) -> None:
    """The image commands, top level (``pull``, ``rmi``...) and under ``image``."""
    def add(container: Any, name: str, func: Callable[..., int], help: str,
            aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        p = container.add_parser(name, help=help, aliases=list(aliases), parents=[common])
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

    for container, prefix in ((sub, ""), (None, "image")):
        if container is None:
            img = sub.add_parser("image", help="manage images", parents=[common])
            container = img.add_subparsers(dest="image_command", metavar="COMMAND",
                                           parser_class=_Parser, required=True)
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
    system = sub.add_parser("system", help="engine-wide information", parents=[common])
    ssub = system.add_subparsers(dest="system_command", metavar="COMMAND", parser_class=_Parser,
                                 required=True)
    p = add(ssub, "df", cmd_df, "show disk usage")
    p.add_argument("--format")
    p = add(ssub, "prune", cmd_system_prune, "remove unused data")
    prune_args(p)
    p.add_argument("--volumes", action="store_true", help="prune volumes")
    from tomato.cli.supervise import register_system_check

    register_system_check(ssub, common)


# -- main -----------------------------------------------------------------------------
class _Skip:
    """Stands in for a parser (or a group of them) that this invocation never uses."""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: self


class _OnlyCommand:
    """Subparsers that really build only the command being run: argparse spends
    milliseconds per sub-parser, and `tomato` has dozens of them."""

    def __init__(self, real: Any, wanted: str | None) -> None:
        self.real = real
        self.wanted = wanted

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        names = [name, *kwargs.get("aliases", [])]
        if self.wanted is not None and self.wanted not in names:
            return _Skip()
        return self.real.add_parser(name, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


_GLOBAL_WITH_VALUE = ("--root", "--insecure-registry", "--config")

#: commands that do not use the engine's root (a registry login, the lab's tools):
#: another user than root may run them
_NOT_THE_ENGINES = frozenset(("login", "logout", *(word for word, home in COMMAND_HOMES.items()
                                                  if home == "tomato.cli.lab")))


def _command_word(argv: list[str]) -> str | None:
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _GLOBAL_WITH_VALUE:
            i += 2
            continue
        if arg.startswith("-"):
            if arg in ("-h", "--help"):
                return None
            i += 1
            continue
        return arg
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    # argparse asks gettext to translate every string it builds (~10 ms here).
    argparse._ = lambda message: message  # type: ignore[attr-defined]
    common = argparse.ArgumentParser(add_help=False)
    parser = _Parser(prog="tomato", description="A container engine built on the kernel's parts")
    parser.add_argument("--root", default=os.environ.get("TOMATO_ROOT") or "/var/lib/tomato",
                        help="state directory (env TOMATO_ROOT, default /var/lib/tomato)")
    parser.add_argument("--insecure-registry", action="append", default=[], metavar="HOST",
                        help="allow plain HTTP to this registry (repeatable)")
    parser.add_argument("--config", default=os.environ.get("TOMATO_CONFIG"),
                        help="directory of config.json with registry credentials")
    parser.add_argument("--debug", action="store_true", default=bool(
        os.environ.get("TOMATO_DEBUG")), help="show tracebacks")
    real = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                                 required=True)
    word = _command_word(argv) if argv is not None else None
    home = COMMAND_HOMES.get(word) if word is not None else None
    if home is None:  # help, or an unknown word: every command, for argparse's message
        word = None
    sub = _OnlyCommand(real, word)
    if home is None or home == "":
        register_images(sub, common)
    for name in COMMAND_MODULES if home is None else (home,) if home else ():
        importlib.import_module(name).register(sub, common)
    return parser


def make_config(args: argparse.Namespace) -> Any:
    from tomato.engine.images import EngineConfig, default_auth_file
    auth = Path(args.config) / "config.json" if args.config else default_auth_file()
    return EngineConfig(root=Path(os.path.abspath(args.root)), auth_file=auth,
                        insecure_registries=tuple(args.insecure_registry))


#: every command's parser, built once by the fork server for all its children
_PREBUILT: argparse.ArgumentParser | None = None


def prebuild_parser() -> None:
    global _PREBUILT
    _PREBUILT = build_parser(None)


def main(argv: list[str] | None = None) -> int:
    from tomato.cli.forkserver import birthplace

    born = birthplace()  # a fork server is left only where this command began
    argv = sys.argv[1:] if argv is None else argv
    parser = _PREBUILT or build_parser(argv)
    args = parser.parse_args(argv)
    word = _command_word(argv)  # (args.command is run's and exec's own command)
    refusal = root_refusal(args.root) if word not in _NOT_THE_ENGINES else ""
    if refusal:  # another user: one line, before anything is tried (docker: 125 for run)
        print(f"tomato: {refusal}", file=sys.stderr)
        return USAGE_EXIT if word == "run" else FAIL_EXIT
    try:
        return int(args.func(args, make_config(args)) or 0)
    except TomatoError as err:
        if args.debug:
            raise
        print(f"tomato: {describe(err)}", file=sys.stderr)
        return FAIL_EXIT
    except BrokenPipeError:  # (before OSError, whose kind it is): `tomato ps | head`
        return 0
    except OSError as err:  # the disk, a file argument: still one line, not a traceback
        if args.debug:
            raise
        if err.errno == errno.ENOSPC:
            text = f"no space left on device while running `tomato {word}`" + (
                f" ({err.filename})" if err.filename else "")
        else:
            text = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
        print(f"tomato: {describe(err, text)}", file=sys.stderr)
        return FAIL_EXIT
    except KeyboardInterrupt:
        return 130
    finally:
        served = sys.modules.get("tomato.cli.forkserver")
        service = sys.modules.get("tomato.engine.service")
        if service is not None and not (served is not None and served.IN_CHILD):
            service.settle()  # (a fork server's child leaves that to the server, its reaper)
        _leave_a_fork_server(args.root, born)


def _leave_a_fork_server(root: str, born: tuple[tuple[str, int], ...]) -> None:
    """The next command skips Python's start-up (see cli/forkserver.py)."""
    from tomato.cli import forkserver

    try:
        forkserver.maybe_start(root, born)
    except Exception:  # noqa: BLE001 — an accelerator never fails the command
        pass


if __name__ == "__main__":
    sys.exit(main())
