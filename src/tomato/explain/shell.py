"""The words of ``--explain``: kernel flags by name, and the shell command that does
what a system call does (unshare(1), mount(8), nsenter(1)...).

Shared by the full trace (``tomato.explain.trace``) and the summary's groups; only
stdlib-free string work, importable from the runtime's start path.
"""

from __future__ import annotations

# Namespace flags, in the order util-linux's unshare lists its options.
_NS = (
    (0x00020000, "CLONE_NEWNS", "--mount", "mnt"),
    (0x04000000, "CLONE_NEWUTS", "--uts", "uts"),
    (0x08000000, "CLONE_NEWIPC", "--ipc", "ipc"),
    (0x40000000, "CLONE_NEWNET", "--net", "net"),
    (0x20000000, "CLONE_NEWPID", "--pid", "pid"),
    (0x10000000, "CLONE_NEWUSER", "--user", "user"),
    (0x02000000, "CLONE_NEWCGROUP", "--cgroup", "cgroup"),
    (0x00000080, "CLONE_NEWTIME", "--time", "time"),
)

_MS = (
    (0x1, "MS_RDONLY", "ro"), (0x2, "MS_NOSUID", "nosuid"), (0x4, "MS_NODEV", "nodev"),
    (0x8, "MS_NOEXEC", "noexec"), (0x20, "MS_REMOUNT", "remount"), (0x400, "MS_NOATIME", "noatime"),
    (0x1000, "MS_BIND", "bind"), (0x2000, "MS_MOVE", "move"), (0x4000, "MS_REC", "rec"),
    (0x20000, "MS_UNBINDABLE", "unbindable"), (0x40000, "MS_PRIVATE", "private"),
    (0x80000, "MS_SLAVE", "slave"), (0x100000, "MS_SHARED", "shared"),
    (0x200000, "MS_RELATIME", "relatime"), (0x1000000, "MS_STRICTATIME", "strictatime"),
)

SEP = " — "


def ns_flag_names(flags: int) -> str:
    names = [name for bit, name, _opt, _short in _NS if flags & bit]
    return "|".join(names) or "0"


def ns_options(flags: int) -> str:
    return " ".join(opt for bit, _name, opt, _short in _NS if flags & bit)


def ms_flag_names(flags: int) -> str:
    return "|".join(name for bit, name, _opt in _MS if flags & bit) or "0"


def shell_quote(word: str) -> str:
    if word and all(c.isalnum() or c in "@%+=:,./-_" for c in word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def shell_join(argv: list[str] | tuple[str, ...]) -> str:
    return " ".join(shell_quote(a) for a in argv)


def mount_shell(source: str | None, target: str, fstype: str | None, flags: int,
                data: str | None) -> str:
    """The mount(8) command line doing what ``mount(2)`` with these arguments does."""
    q = shell_quote
    if flags & 0x2000:  # MS_MOVE
        return f"mount --move {q(source or '')} {q(target)}"
    prop = [opt for bit, _n, opt in _MS if flags & bit and bit in (0x20000, 0x40000, 0x80000,
                                                                    0x100000)]
    if prop:
        rec = "r" if flags & 0x4000 else ""
        return f"mount --make-{rec}{prop[0]} {q(target)}"
    opts = [opt for bit, _n, opt in _MS
            if flags & bit and bit not in (0x1000, 0x4000, 0x2000)]
    if data:
        opts.append(data)
    if flags & 0x1000:  # MS_BIND
        kind = "--rbind" if flags & 0x4000 else "--bind"
        o = f" -o {q(','.join(opts))}" if opts else ""
        return f"mount {kind}{o} {q(source or '')} {q(target)}"
    t = f" -t {q(fstype)}" if fstype else ""
    o = f" -o {q(','.join(opts))}" if opts else ""
    return f"mount{t}{o} {q(source or 'none')} {q(target)}"
