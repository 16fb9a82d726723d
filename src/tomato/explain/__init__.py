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

import os

TYPE_CHECKING = False  # typing costs ~2 ms to import; mypy: always_true
if TYPE_CHECKING:
    from typing import IO

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


class Explainer:
    """Writes one line per kernel step to ``stream``: ``call — shell equivalent``."""

    enabled = True

    def __init__(self, stream: IO[str] | int | None = None, prefix: str = "+ ") -> None:
        """``stream``: a text stream (default sys.stderr), or a file descriptor, which
        is written with one write(2) per line and no buffer (safe across fork, as in
        the runtime's init, where a buffered stream would be flushed twice)."""
        self.fd: int | None = None
        self.stream: IO[str] | None = None
        if isinstance(stream, int):
            self.fd = stream
        elif stream is None:
            import sys
            self.stream = sys.stderr
        else:
            self.stream = stream
        self.prefix = prefix

    # -- the one primitive --------------------------------------------------------
    def step(self, call: str, shell: str | None = None) -> None:
        """Report one step: the system call as text, and the shell command doing the same."""
        line = self.prefix + call + (SEP + shell if shell else "") + "\n"
        try:
            if self.fd is not None:
                os.write(self.fd, line.encode())
            elif self.stream is not None:
                self.stream.write(line)
                self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream must never break the operation explained

    # -- helpers that format the common steps ---------------------------------------
    def unshare(self, flags: int) -> None:
        self.step(f"unshare({ns_flag_names(flags)})", f"unshare {ns_options(flags)}")

    def setns(self, path: str, nstype: int = 0) -> None:
        short = next((s for bit, _n, _o, s in _NS if nstype & bit), None)
        if short is None:
            short = os.path.basename(path)
        opt = {"mnt": "-m", "uts": "-u", "ipc": "-i", "net": "-n", "pid": "-p", "user": "-U",
               "cgroup": "-C", "time": "-T"}.get(short, "")
        pid = path.split("/")[2] if path.startswith("/proc/") else None
        shell = (f"nsenter -t {pid} {opt}" if pid and pid.isdigit() and opt
                 else f"nsenter --{short}={path}")
        self.step(f'setns(open("{path}"), {ns_flag_names(nstype)})', shell)

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        call = (f'mount("{source or "none"}", "{target}", '
                f'{chr(34) + fstype + chr(34) if fstype else "NULL"}, {ms_flag_names(flags)}, '
                f'{chr(34) + data + chr(34) if data else "NULL"})')
        self.step(call, mount_shell(source, target, fstype, flags, data))

    def umount(self, target: str, flags: int = 0) -> None:
        lazy = " -l" if flags & 2 else ""
        self.step(f'umount2("{target}", {"MNT_DETACH" if flags & 2 else "0"})',
                  f"umount{lazy} {shell_quote(target)}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self.step(f'pivot_root("{new_root}", "{put_old}")',
                  f"pivot_root {shell_quote(new_root)} {shell_quote(put_old)}")

    def chroot(self, path: str) -> None:
        self.step(f'chroot("{path}")', f"chroot {shell_quote(path)}")

    def chdir(self, path: str) -> None:
        self.step(f'chdir("{path}")', f"cd {shell_quote(path)}")

    def sethostname(self, name: str) -> None:
        self.step(f'sethostname("{name}")', f"hostname {shell_quote(name)}")

    def mkdir(self, path: str) -> None:
        self.step(f'mkdir("{path}")', f"mkdir {shell_quote(path)}")

    def rmdir(self, path: str) -> None:
        self.step(f'rmdir("{path}")', f"rmdir {shell_quote(path)}")

    def write(self, path: str, value: str) -> None:
        """A write to a kernel file: cgroup knobs, uid_map, setgroups, sysctls."""
        shown = value.rstrip("\n")
        self.step(f'write("{path}", "{shown}")',
                  f"echo {shell_quote(shown)} > {shell_quote(path)}")

    def read(self, path: str, value: str) -> None:
        """A read of a kernel file (``cgroup get/stats``): the file and what it held."""
        shown = value.strip().replace("\n", " ")
        if len(shown) > 60:
            shown = shown[:57] + "..."
        self.step(f'read("{path}") = "{shown}"', f"cat {shell_quote(path)}")

    def config(self, raw: dict) -> None:  # type: ignore[type-arg]
        """The container's OCI config (the summary draws its [security] group from it);
        the full trace shows the steps themselves, so nothing is printed here."""

    def fork(self, what: str = "fork()", shell: str | None = None) -> None:
        self.step(what, shell)

    def execve(self, argv: list[str] | tuple[str, ...]) -> None:
        self.step(f"execve({argv[0] if argv else ''!r}, [{', '.join(repr(a) for a in argv)}])",
                  shell_join(argv))

    def link(self, command: list[str] | tuple[str, ...], call: str) -> None:
        """A network step (veth, bridge, address): the netlink call and its ip(8) line."""
        self.step(call, shell_join(command))


class NullExplainer(Explainer):
    """Explains nothing: every method returns at once, before formatting anything
    (the default everywhere)."""

    enabled = False

    def __init__(self) -> None:
        self.stream = None
        self.fd = None
        self.prefix = ""


def _noop(self: object, *_args: object, **_kwargs: object) -> None:
    return None


#: Every reporting method of Explainer; NullExplainer replaces each with _noop (a unit
#: test checks that no public method is left out).
REPORTING = ("step", "unshare", "setns", "mount", "umount", "pivot_root", "chroot", "chdir",
             "sethostname", "mkdir", "rmdir", "write", "read", "config", "fork", "execve",
             "link")
for _name in REPORTING:
    setattr(NullExplainer, _name, _noop)
del _name


def parse_steps(text: str, prefix: str = "+ ") -> list[tuple[str, str]]:
    """(call, shell) of each explain line in ``text`` (other lines are skipped): for
    tests comparing the steps reported with the mounts and cgroups that exist."""
    out = []
    for line in text.splitlines():
        if line.startswith(prefix):
            call, _sep, shell = line[len(prefix):].partition(SEP)
            out.append((call, shell))
    return out


#: The shared do-nothing explainer (stateless, so sharing it is safe).
NULL = NullExplainer()

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

__all__ = ["MODES", "Explainer", "NULL", "NullExplainer", "REPORTING", "for_mode", "mount_shell",
           "ms_flag_names", "ns_flag_names", "ns_options", "parse_steps", "shell_join",
           "shell_quote"]
