"""Which module serves each `tomato` command, and how argv names the command.

The entry point (cli/engine.py) imports only the module of the command being
run: `tomato ps` never imports the lab's or the build's code.  The fork server
(cli/forkserver.py) reads the same table to know what it may serve.
tests/unit/test_cli_commands.py keeps the table true.
"""

from __future__ import annotations

#: modules that add commands: each has ``register(sub, common)``
COMMAND_MODULES: tuple[str, ...] = ("tomato.cli.images", "tomato.cli.system",
                                     "tomato.cli.containers",
                                     "tomato.cli.networks", "tomato.cli.lab",
                                     "tomato.api.command", "tomato.cli.supervise",
                                     "tomato.cli.build", "tomato.cli.events")

#: which module registers each command
COMMAND_HOMES: dict[str, str] = {
    **dict.fromkeys(("attach", "commit", "container", "cp", "create", "diff", "exec", "export",
                     "inspect", "kill", "logs", "pause", "ps", "rename", "restart", "rm", "run",
                     "start", "stats", "stop", "top", "unpause", "update", "volume", "wait"),
                    "tomato.cli.containers"),
    **dict.fromkeys(("network", "port"), "tomato.cli.networks"),
    **dict.fromkeys(("cgroup", "chroot", "layers", "ns", "nsenter", "rootfs", "unshare"),
                    "tomato.cli.lab"),
    "serve": "tomato.api.command",
    "daemon": "tomato.cli.supervise",
    **dict.fromkeys(("build", "builder"), "tomato.cli.build"),
    **dict.fromkeys(("history", "image", "images", "import", "load", "login", "logout", "pull",
                     "push", "rmi", "save", "tag"), "tomato.cli.images"),
    **dict.fromkeys(("info", "system", "version"), "tomato.cli.system"),
    "events": "tomato.cli.events",
}

#: global flags that take a value (the command word comes after them)
GLOBAL_WITH_VALUE = ("--root", "--insecure-registry", "--config")

#: commands that do not use the engine's root (a registry login, the lab's tools):
#: another user than root may run them
NOT_THE_ENGINES = frozenset(("login", "logout", "version",
                             *(word for word, home in COMMAND_HOMES.items()
                               if home == "tomato.cli.lab")))


def command_word(argv: list[str]) -> str | None:
    """The command ``argv`` runs (``run``, ``ps``...), or None for help.  Not argparse's
    ``args.command``: `run`'s and `exec`'s trailing command shadows it."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in GLOBAL_WITH_VALUE:
            i += 2
            continue
        if arg.startswith("-"):
            if arg in ("-h", "--help"):
                return None
            i += 1
            continue
        return arg
    return None
