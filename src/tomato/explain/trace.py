"""``--explain=full``'s explainer: one line per kernel step as it happens (see the
package's docstring), and the do-nothing one every caller holds when it is off."""

from __future__ import annotations

import os

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

TYPE_CHECKING = False  # typing costs ~2 ms to import; mypy: always_true
if TYPE_CHECKING:
    from typing import IO


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
