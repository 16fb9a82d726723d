"""``tomato``: the Docker-like command line's entry point.  A thin edge: parse, call
one use case, render.

Commands come from the modules cli/commands.py names (``register(sub, common)``
each); only the module of the command being run is imported and only its parser
is built.  A command's handler is ``func(args, cfg) -> int``.  Rendering helpers
are cli/render.py's, argparse's manners cli/usage.py's.

Errors: ``tomato: <message>`` on stderr, never a traceback for a TomatoError;
exit 1 for a failed daemon-side operation (as docker does for image
commands), 125 for bad usage.  ``--debug`` or ``TOMATO_DEBUG=1`` re-raises.

When the command was handed to us by the CLI's fork server (cli/forkserver.py),
``main``'s ``served`` is the server's hold on the client; commands find it as
``args.served`` (None when this process was started for the command).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from pathlib import Path

from tomato.cli.commands import COMMAND_HOMES, COMMAND_MODULES, NOT_THE_ENGINES, command_word
from tomato.cli.common import describe, root_refusal
from tomato.cli.render import human_size  # noqa: F401 — its old home (cli/build.py)
from tomato.cli.usage import DockerParser, untranslated
from tomato.errors import TomatoError

TYPE_CHECKING = False  # typing, tempfile, shutil, threading: imported where used
if TYPE_CHECKING:
    from typing import Any

    from tomato.cli.served import Served
    from tomato.engine.config import EngineConfig

USAGE_EXIT = 125
FAIL_EXIT = 1


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


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    untranslated()  # argparse's gettext lookups cost ~10 ms per command
    common = argparse.ArgumentParser(add_help=False)
    parser = DockerParser(prog="tomato",
                          description="A container engine built on the kernel's parts")
    from tomato.engine.config import default_root

    parser.add_argument("--root", default=default_root(),
                        help="state directory (env TOMATO_ROOT, default /var/lib/tomato; "
                        "a user's: $XDG_DATA_HOME/tomato)")
    parser.add_argument("--insecure-registry", action="append", default=[], metavar="HOST",
                        help="allow plain HTTP to this registry (repeatable)")
    parser.add_argument("--config", default=os.environ.get("TOMATO_CONFIG"),
                        help="directory of config.json with registry credentials")
    parser.add_argument("--userns-remap", default=None, metavar="default|USER[:GROUP]",
                        help="run containers in a user namespace mapped to USER's "
                        "/etc/subuid,/etc/subgid ranges (env TOMATO_USERNS_REMAP)")
    parser.add_argument("--debug", action="store_true", default=bool(
        os.environ.get("TOMATO_DEBUG")), help="show tracebacks")
    parser.add_argument("-v", "--version", action="store_true",
                        help="print the version and which fast paths are active")
    real = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=DockerParser,
                                 required=True)
    word = command_word(argv) if argv is not None else None
    home = COMMAND_HOMES.get(word) if word is not None else None
    if home is None:  # help, or an unknown word: every command, for argparse's message
        word = None
    sub = _OnlyCommand(real, word)
    for name in COMMAND_MODULES if home is None else (home,):
        importlib.import_module(name).register(sub, common)
    return parser


def make_config(args: argparse.Namespace) -> EngineConfig:
    from tomato.engine.config import EngineConfig, default_auth_file

    auth = Path(args.config) / "config.json" if args.config else default_auth_file()
    root = Path(os.path.abspath(args.root))
    remap = _remap(args)
    if remap is not None:  # dockerd's ROOT/UID.GID: the remapped engine's own storage
        from tomato.engine.userns_remap import make_root

        root = make_root(root, remap)
    return EngineConfig(root=root, auth_file=auth, userns_remap=remap,
                        insecure_registries=tuple(args.insecure_registry))


def _remap(args: argparse.Namespace) -> Any:
    """--userns-remap (global, or serve's own), else $TOMATO_USERNS_REMAP; None: off."""
    flag = getattr(args, "serve_userns_remap", None) or getattr(args, "userns_remap", None)
    if flag is None and not os.environ.get("TOMATO_USERNS_REMAP"):
        return None  # (the common case imports nothing)
    from tomato.engine.userns_remap import from_environment

    return from_environment(flag)


#: every command's parser, built once by the fork server for all its children
_PREBUILT: argparse.ArgumentParser | None = None


def prebuild_parser() -> None:
    global _PREBUILT
    _PREBUILT = build_parser(None)


def main(argv: list[str] | None = None, served: Served | None = None) -> int:
    """Run one `tomato` command; its exit code.  ``served``: see the module's docstring."""
    from tomato.cli.forkserver import birthplace

    born = birthplace()  # a fork server is left only where this command began
    argv = sys.argv[1:] if argv is None else argv
    word = command_word(argv)  # (args.command is run's and exec's own command)
    if _asks_version(argv, word):  # `tomato --version`, before argparse wants a command
        from tomato.cli.system import version_line

        print(version_line(_globals(argv)))
        return 0
    parser = _PREBUILT or build_parser(argv)
    args = parser.parse_args(argv)
    args.served = served
    refusal = root_refusal(args.root) if word not in NOT_THE_ENGINES else ""
    if refusal:  # another user: one line, before anything is tried (docker: 125 for run)
        print(f"tomato: {refusal}", file=sys.stderr)
        return USAGE_EXIT if word == "run" else FAIL_EXIT
    if os.geteuid() != 0 and word == "unshare":
        from tomato.cli import unshare

        if unshare.is_podmans(args):  # (with util-linux's flags it is the lab's)
            return _enter_rootless(args, argv) or \
                unshare.run_in_userns(os.path.abspath(args.root), args.command)
    if os.geteuid() != 0 and word not in NOT_THE_ENGINES:
        if served is None:
            # The fork server stays in the user's own namespaces, where its client is;
            # each command it forks joins the user namespace itself (a server left from
            # inside it would refuse every client: another namespace).
            _leave_a_fork_server(args.root, born)
        failed = _enter_rootless(args, argv)
        if failed:
            return failed
    try:
        cfg = make_config(args)
    except TomatoError as err:  # --userns-remap's user or ranges: one line, as dockerd
        if args.debug:
            raise
        print(f"tomato: {err}", file=sys.stderr)
        return USAGE_EXIT
    try:
        return int(args.func(args, cfg) or 0)
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
        if served is None:  # (a fork server's child leaves both to the server, its reaper)
            cfg.supervision.settle()
            _leave_a_fork_server(args.root, born)


def _enter_rootless(args: argparse.Namespace, argv: list[str]) -> int:
    """An ordinary user's command runs inside the user's own user namespace
    (engine/rootless.py); 125 and one line when it cannot be entered, else 0."""
    from tomato.engine import rootless

    ex = None
    if "--explain" in argv or "--explain=full" in argv:
        from tomato.explain import Explainer

        ex = Explainer(sys.stderr)
    try:
        warning = rootless.enter(os.path.abspath(args.root), ex)
    except TomatoError as err:
        if args.debug:
            raise
        print(f"tomato: {err}", file=sys.stderr)
        return USAGE_EXIT
    except OSError as err:
        if args.debug:
            raise
        if err.errno == errno.ENOSPC:
            text = f"no space left on device: {err.filename or args.root} (free some space " \
                   "or set XDG_DATA_HOME/--root elsewhere)"
        else:
            text = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
        print(f"tomato: {text}", file=sys.stderr)
        return USAGE_EXIT
    if warning:
        print(warning, file=sys.stderr)
    return 0


def _asks_version(argv: list[str], word: str | None) -> bool:
    before = argv[:argv.index(word)] if word is not None and word in argv else argv
    return "--version" in before or "-v" in before


def _globals(argv: list[str]) -> argparse.Namespace:
    """The global flags --version needs (the root), without argparse's command."""
    from tomato.engine.config import default_root

    root = default_root()
    for i, arg in enumerate(argv):
        if arg == "--root" and i + 1 < len(argv):
            root = argv[i + 1]
        elif arg.startswith("--root="):
            root = arg.partition("=")[2]
    return argparse.Namespace(root=root, served=None)


def _leave_a_fork_server(root: str, born: tuple[tuple[str, int], ...]) -> None:
    """The next command skips Python's start-up (see cli/forkserver.py)."""
    from tomato.cli import forkserver

    try:
        forkserver.maybe_start(root, born, entry=__name__)
    except Exception:  # noqa: BLE001 — an accelerator never fails the command
        pass


def serve_commands(root: str) -> int:
    """The fork server's process (started by ``maybe_start``): every command's parser
    built once, then each client's command run by ``main`` in a forked child."""
    from tomato.cli import forkserver

    return forkserver.serve(root, prepare=prebuild_parser, run=main)


if __name__ == "__main__":
    sys.exit(main())
