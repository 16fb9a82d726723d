"""``--explain``'s default: the kernel steps grouped by what they are for, about a screen.

The full trace (``--explain=full``, :class:`tomato.explain.Explainer`) prints one
line per call: ~100 lines of 64-hex paths for a plain ``tomato run``.  This
prints the same steps as groups, each with its shell equivalent::

    [rootfs]   overlay: 1 lowerdir + upperdir, pivot_root into …/bundle/rootfs
               $ mount -t overlay overlay -o lowerdir=…,upperdir=…,workdir=… ROOTFS
    [cgroup]   tomato/fa16beae1db4 in 9 hierarchies (v1: cpu cpuacct ...); limits: ...
    [ns]       new: mnt uts ipc pid cgroup; joined: net (…/netns/fa16beae1db4)
    ...
    [exec]     /bin/ls /

When to print.  A container is made by several processes: the CLI (network,
overlay), the monitor it forks (cgroups, the clone), the container's init
(namespaces, mounts, pivot_root, masks) and whoever tears it down.  Each
inherits, by fork, the steps recorded before it; the init prints everything at
its execve, while the program's output has not begun, and a command that execs
nothing (``cgroup create``, ``tomato-runtime create``/``delete``) prints at its
exit.  Which steps were printed is kept in a small shared memory page (per
process that recorded steps: how many of its steps are out), so no step is
printed twice and none is lost to a helper fork that never prints.  Once a
program has been exec'd, the story is told: teardown is left to ``=full``.

This module is imported when ``--explain`` is given, never on the start path
otherwise.  It imports nothing after that: the init renders after pivot_root,
when the host's files (and Python's modules) are out of reach.
"""

from __future__ import annotations

import atexit
import mmap
import os

from tomato.explain.render import render
from tomato.explain.shell import _NS
from tomato.explain.trace import Explainer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

_CLONE_NAMES = {name: bit for bit, name, _opt, _short in _NS}


# -- which steps were printed, shared by the processes of one --explain ------------------------
class Marks:
    """An anonymous shared page, inherited by every fork: for each process that recorded
    steps (by an id handed out here: pids repeat across pid namespaces, and the init's
    is 1), how many of them have been printed; and whether a program was exec'd."""

    SLOTS = 256

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, (self.SLOTS * 2 + 2) * 4)  # MAP_SHARED: forks see it
        self._ints = memoryview(self._map).cast("i")

    def _slot(self, origin: int) -> int:
        i = origin % self.SLOTS
        for _ in range(self.SLOTS):
            if self._ints[2 * i] in (0, origin):
                return i
            i = (i + 1) % self.SLOTS
        return origin % self.SLOTS  # full: share a slot (a step may then be printed twice)

    def printed(self, origin: int) -> int:
        i = self._slot(origin)
        return self._ints[2 * i + 1] if self._ints[2 * i] == origin else 0

    def mark(self, origin: int, upto: int) -> None:
        i = self._slot(origin)
        self._ints[2 * i] = origin
        self._ints[2 * i + 1] = max(upto, self.printed(origin))

    def new_origin(self) -> int:
        """An id for a process that starts recording (its forks race only in theory:
        a parent records nothing while its child makes its first step)."""
        self._ints[2 * self.SLOTS + 1] += 1
        return int(self._ints[2 * self.SLOTS + 1])

    @property
    def exec_told(self) -> bool:
        return bool(self._ints[2 * self.SLOTS])

    def tell_exec(self) -> None:
        self._ints[2 * self.SLOTS] = 1


class Summary(Explainer):
    """Records each step (as data), prints them grouped at execve or at exit."""

    def __init__(self, stream: IO[str] | int | None = None) -> None:
        super().__init__(stream, prefix="")
        self.events: list[tuple[int, int, str, tuple[Any, ...]]] = []  # origin, n, kind, args
        self.marks = Marks()
        self._pid = self._creator = os.getpid()
        self._origin = self.marks.new_origin()
        self._n = 0
        self.spec: dict[str, Any] | None = None  # the container's OCI config, if any
        self.caller = _status()  # what [security] compares the exec'd process with
        atexit.register(self.finish)

    def _add(self, kind: str, *args: Any) -> None:
        pid = os.getpid()
        if pid != self._pid:  # a fork: this process's own steps count from 1
            self._pid, self._origin, self._n = pid, self.marks.new_origin(), 0
        self._n += 1
        self.events.append((self._origin, self._n, kind, args))

    # -- the reporting methods, recorded as data ------------------------------------------------
    def step(self, call: str, shell: str | None = None) -> None:
        if call.startswith("clone("):  # tomato._sys.libc.clone reports as text
            names = call[len("clone("):].rstrip(")").split("|")
            self._add("clone", sum(_CLONE_NAMES.get(n, 0) for n in names))
        else:
            self._add("step", call, shell)

    def unshare(self, flags: int) -> None:
        self._add("unshare", flags)

    def setns(self, path: str, nstype: int = 0) -> None:
        self._add("setns", path, nstype)

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        self._add("mount", source, target, fstype, flags, data)

    def umount(self, target: str, flags: int = 0) -> None:
        self._add("umount", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._add("pivot", new_root, put_old)

    def chroot(self, path: str) -> None:
        self._add("chroot", path)

    def chdir(self, path: str) -> None:
        self._add("chdir", path)

    def sethostname(self, name: str) -> None:
        self._add("hostname", name)

    def mkdir(self, path: str) -> None:
        self._add("mkdir", path)

    def rmdir(self, path: str) -> None:
        self._add("rmdir", path)

    def write(self, path: str, value: str) -> None:
        self._add("write", path, value.rstrip("\n"))

    def read(self, path: str, value: str) -> None:
        self._add("read", path, value.strip().replace("\n", " "))

    def config(self, raw: dict) -> None:  # type: ignore[type-arg]
        # Kept aside, not a step: it is what [security] tells at the execve, in the init
        # (which inherits it), whoever prints the steps before that.
        self.spec = raw

    def fork(self, what: str = "fork()", shell: str | None = None) -> None:
        self._add("fork", what, shell)

    def link(self, command: list[str] | tuple[str, ...], call: str) -> None:
        master = ""  # a veth's bridge, by index: named now, while we are in its netns
        if "master" in command:
            index = command[list(command).index("master") + 1]
            try:
                import socket  # already loaded by the netlink code calling us

                master = socket.if_indextoname(int(index))
            except (OSError, ValueError):
                pass
        self._add("link", tuple(command), master)

    def execve(self, argv: list[str] | tuple[str, ...]) -> None:
        self._add("exec", tuple(argv))
        self.flush(status=_status(), spec=self.spec)
        self.marks.tell_exec()

    # -- printing -------------------------------------------------------------------------------
    def finish(self) -> None:
        """At exit: what this process did that nobody printed, unless a program was
        exec'd (its summary told the story; teardown is --explain=full's).  Only the
        process that asked for the explanation: a helper it forked (an nft child) may
        exit through atexit too, with its stderr elsewhere."""
        if os.getpid() == self._creator and not self.marks.exec_told:
            self.flush()

    def flush(self, status: dict[str, str] | None = None,
              spec: dict[str, Any] | None = None) -> None:
        pending = [e for e in self.events if e[1] > self.marks.printed(e[0])]
        if not pending:
            return
        steps = [(kind, args) for _o, _n, kind, args in pending]
        for line in render(steps, status, spec, self.caller):
            self._emit(line)
        last: dict[int, int] = {}
        for origin, n, _k, _a in pending:
            last[origin] = max(n, last.get(origin, 0))
        for origin, n in last.items():
            self.marks.mark(origin, n)

    def _emit(self, line: str) -> None:
        text = line + "\n"
        try:
            if self.fd is not None:
                os.write(self.fd, text.encode())
            elif self.stream is not None:
                self.stream.write(text)
                self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed stream must never break the operation explained


def _status() -> dict[str, str]:
    """This process's /proc/self/status (capabilities, no_new_privs), read at execve."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _sep, value = line.partition(":")
                out[key] = value.strip()
    except OSError:
        pass
    return out


__all__ = ["Marks", "Summary"]
