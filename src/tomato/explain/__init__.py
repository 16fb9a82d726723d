"""``--explain=full``: each kernel step as it happens, with the shell command that does the same.

(Plain ``--explain`` groups the same steps into a summary: ``tomato.explain.summary``.)

    ex = Explainer(sys.stderr)          # or NULL (the default): every method is a no-op
    ex.unshare(CLONE_NEWPID | CLONE_NEWNS)
    #   unshare(CLONE_NEWNS|CLONE_NEWPID) — unshare --mount --pid
    ex.mount("overlay", "/c/rootfs", "overlay", 0, "lowerdir=/l1:/l2,upperdir=/u,workdir=/w")
    #   mount("overlay", "/c/rootfs", "overlay", 0, "lowerdir=…") — mount -t overlay overlay
    #       -o lowerdir=/l1:/l2,upperdir=/u,workdir=/w /c/rootfs
    ex.write("/sys/fs/cgroup/cpu/x/cpu.cfs_quota_us", "30000")
    #   write(/sys/fs/cgroup/cpu/x/cpu.cfs_quota_us, "30000") — echo 30000 > /sys/fs/cgroup/...

Callers on a hot path keep the cost at one attribute load when explaining is off:
``if ex.enabled: ex.mount(...)``, or just call the method (``NULL``'s methods return
at once and format nothing).  Only ``os`` is imported: this module is meant to be
importable from the runtime's start path (no dataclasses, no typing, no enum).
Lines are written and flushed one at a time, so they interleave correctly with
the program's own output and survive a following execve.
"""

from __future__ import annotations

# The helpers live in modules of their own (shell.py: the words; trace.py: the
# explainers) so that summary.py, which this module imports for ``--explain``, never
# imports this module back.
from tomato.explain.shell import (
    _NS,
    SEP,
    mount_shell,
    ms_flag_names,
    ns_flag_names,
    ns_options,
    shell_join,
    shell_quote,
)
from tomato.explain.trace import NULL, REPORTING, Explainer, NullExplainer, _noop, parse_steps

TYPE_CHECKING = False  # typing costs ~2 ms to import; mypy: always_true
if TYPE_CHECKING:
    from typing import IO

#: What ``--explain`` may be given: nothing (a grouped summary) or ``=full``.
MODES = ("summary", "full")


def for_mode(mode: object, stream: IO[str] | int | None = None) -> Explainer:
    """The explainer ``--explain`` (``mode`` True or "summary") or ``--explain=full`` asks
    for, writing to ``stream``."""
    if mode == "full":
        return Explainer(stream)
    if mode is True or mode == "summary":
        from tomato.explain.summary import Summary

        return Summary(stream)
    from tomato.errors import InvalidArgument

    raise InvalidArgument(f"--explain={mode}: use --explain (a summary) or --explain=full "
                          f"(every call)")


__all__ = ["MODES", "NULL", "REPORTING", "SEP", "Explainer", "NullExplainer", "_NS", "_noop",
           "for_mode", "mount_shell", "ms_flag_names", "ns_flag_names", "ns_options",
           "parse_steps", "shell_join", "shell_quote"]
