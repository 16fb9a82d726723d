"""`tomato unshare [command...]` as podman's, for an ordinary user: the command runs
inside the user's own user and mount namespaces (engine/rootless.py), where the
engine's storage shows its mapped owners as the containers see them
(`tomato unshare ls -ln ~/.local/share/tomato/volumes/X/_data`).

The word is the lab's too (util-linux's unshare, cli/lab.py): with any of its
namespace flags it stays the lab's; without, a user's `tomato unshare` is this.
"""

from __future__ import annotations

import argparse
import os
import sys

#: the lab's flags that make `unshare` util-linux's (cli/lab.py registers them)
_LAB_FLAGS = ("mount", "uts", "ipc", "net", "pid", "user", "cgroup", "time", "fork",
              "mount_proc", "mount_proc_at", "map_root_user", "map_user", "map_group",
              "explain")


def is_podmans(args: argparse.Namespace) -> bool:
    """No flag of the lab's unshare: podman's meaning (enter the user's namespace)."""
    return not any(getattr(args, name, None) for name in _LAB_FLAGS) and \
        getattr(args, "propagation", "private") == "private"


def run_in_userns(root: str, command: list[str]) -> int:
    """exec the command (default: $SHELL, else /bin/sh) in the namespace we joined, with
    TOMATO_ROOT set so a `tomato` run there finds the user's engine."""
    if command[:1] == ["--"]:
        command = command[1:]
    argv = command or [os.environ.get("SHELL") or "/bin/sh"]
    os.environ["TOMATO_ROOT"] = root
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        print(f"tomato: {argv[0]}: executable file not found in $PATH", file=sys.stderr)
        return 127
    except OSError as err:
        print(f"tomato: {argv[0]}: {err.strerror}", file=sys.stderr)
        return 126
    return 0  # not reached
