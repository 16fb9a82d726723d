"""The last steps before execve, shared by a container's init and by `exec`.

Order matters and follows runc, but for seccomp:
    rlimits → bounding set → keepcaps → setgroups/setgid/setuid → capabilities
    → cwd (checked to be inside the root) → noNewPrivileges → LSM exec label
    → close-on-exec for every fd past the preserved ones
    → ... wait for start ... → signals → seccomp → execve

Seccomp is the very last step before execve (runc and crun load it before the
capabilities when there is no noNewPrivileges, so a profile denying getcwd or
close_range breaks their start).  Without noNewPrivileges loading a filter needs
CAP_SYS_ADMIN: the process then keeps CAP_SYS_ADMIN, and only it, beyond its
own capabilities until the filter is in, and drops it with one capset after
(``apply_security`` returns that last step; the profile must allow capset, as
Docker's does).
"""

from __future__ import annotations

import _signal  # the signal module without its enums (~2 ms to import)
import errno
import os
import resource
import stat

from tomato._sys import libc as c
from tomato.errors import InvalidArgument, NotFound, PermissionDenied
from tomato.oci.spec import Process

TYPE_CHECKING = False  # importing typing costs ~2 ms on the start path
if TYPE_CHECKING:
    from collections.abc import Callable  # `collections` costs ~1 ms to import
    from typing import Any

_RLIMITS = {name: getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")}


def preload(proc: Process, hooks: bool = False) -> None:
    """Import now every module the child will need after it leaves the host's root.

    Once pivot_root or chroot has happened, the interpreter can no longer
    find Tomato's (or the stdlib's) files, so a lazy import there fails.
    """
    import fcntl  # noqa: F401  (close_fds_on_exec)

    if proc.capabilities is not None:
        from tomato._sys import caps  # noqa: F401
    if proc.apparmor_profile or proc.selinux_label:
        from tomato._sys import lsm  # noqa: F401
    if proc.terminal:
        from tomato.runtime import console  # noqa: F401
    if hooks:
        from tomato.runtime import hooks as _hooks  # noqa: F401


def _lower(a: int, b: int) -> int:
    """The lower of two rlimit values, RLIM_INFINITY (-1 here) the highest."""
    if a == resource.RLIM_INFINITY:
        return b
    return a if b == resource.RLIM_INFINITY else min(a, b)


def apply_rlimits(proc: Process, warn: Callable[[str], None]) -> None:
    """Set each rlimit; where we may not raise the hard limit, clamp to it and warn.

    Root here lacks CAP_SYS_RESOURCE, so RLIMIT_NOFILE above the current hard
    limit (20000) is refused by the kernel: a warning, not a failure.
    """
    for rl in proc.rlimits:
        kind = _RLIMITS.get(rl.type)
        if kind is None:
            warn(f"rlimit {rl.type} is not known to this kernel; ignored")
            continue
        # 2^64-1 is docker's --ulimit core=-1 (Go's RLIM_INFINITY; runc: unlimited), more
        # than setrlimit's C long takes: from 2^63 up, RLIM_INFINITY (front/exec_process.c)
        soft, hard = (v if v < 1 << 63 else resource.RLIM_INFINITY for v in (rl.soft, rl.hard))
        try:
            resource.setrlimit(kind, (soft, hard))
        except (ValueError, OSError):
            _soft, cur = resource.getrlimit(kind)
            new_hard = _lower(hard, cur)
            new_soft = _lower(soft, new_hard)
            resource.setrlimit(kind, (new_soft, new_hard))
            warn(f"rlimit {rl.type} {rl.soft}:{rl.hard} clamped to {new_soft}:{new_hard} "
                 "(cannot raise the hard limit)")


def set_oom_score_adj(pid: int, value: int | None, warn: Callable[[str], None]) -> None:
    if value is None:
        return
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(value))
    except PermissionError:
        warn(f"oomScoreAdj {value} not permitted here (needs CAP_SYS_RESOURCE); left unchanged")
    except OSError as err:
        if err.errno in (errno.EPERM, errno.EACCES):
            warn(f"oomScoreAdj {value} not permitted here; left unchanged")
        else:
            raise InvalidArgument(f"oomScoreAdj {value}: {err.strerror}") from err


def setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() != "deny"
    except OSError:
        return True


def switch_user(proc: Process) -> None:
    user = proc.user
    if setgroups_allowed():
        os.setgroups(list(user.additional_gids))
    try:
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as err:
        raise PermissionDenied(f"cannot become uid {user.uid} gid {user.gid}: "
                               f"{err.strerror} (is it mapped in the user namespace?)") from err


def enter_cwd(cwd: str) -> None:
    """chdir into cwd and make sure it is inside our root (CVE-2024-21626 class)."""
    try:
        os.chdir(cwd)
    except OSError as err:
        raise InvalidArgument(f"cannot change to working directory {cwd}: {err.strerror}") from err
    try:
        here = os.getcwd()
    except OSError as err:
        raise PermissionDenied(f"working directory {cwd} is outside the container root") from err
    if not here.startswith("/"):  # the kernel reports "(unreachable)/..." outside the root
        raise PermissionDenied(f"working directory {cwd} is outside the container root")


def close_fds_on_exec(first: int, keep: tuple[int, ...] = ()) -> None:
    """Every fd >= first gets FD_CLOEXEC, so nothing of ours leaks into the container."""
    import fcntl

    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd < first or fd in keep:
            continue
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFD)
            fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
        except OSError:
            continue


def env_dict(env: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def home_of(uid: int) -> str:
    """HOME from the container's /etc/passwd (runc sets it when the spec does not).

    Read as bytes, as runc and the front end (exec_child.c) read it: the image is
    hostile input, and a line that is not UTF-8 (or holds a CR, which text mode takes
    for a line end) must give the same HOME both ways, byte for byte (the str is
    surrogate-escaped, so execve hands the very bytes on).  A NUL ends the scan, as
    in C: no HOME can hold one."""
    want = str(uid).encode()
    data = _read_passwd()
    if data is None:
        return "/"
    for line in data.split(b"\n"):
        parts = line.split(b":", 6)
        if len(parts) >= 6 and parts[2] == want:
            return os.fsdecode(parts[5]) or "/"
    return "/"


def _read_passwd() -> bytes | None:
    """The container's /etc/passwd up to its first NUL, if it is a regular file.

    Opened O_NONBLOCK (a FIFO there would block the open until a writer came: create
    and run never returned, issue 13/14 #4) and read only if fstat says it is a
    regular file, as runc's user lookup; a symlink is followed, we are inside the
    container's root already."""
    try:
        fd = os.open("/etc/passwd", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).split(b"\0", 1)[0]


def find_executable(name: str, env: dict[str, str]) -> str:
    """exec.LookPath as runc uses it, in the container's filesystem and PATH."""
    if "/" in name:
        if not os.path.exists(name):
            raise NotFound(f'exec: "{name}": no such file or directory')
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            raise PermissionDenied(f'exec: "{name}": permission denied')
        return name
    for d in env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                     ).split(":"):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise NotFound(f'exec: "{name}": executable file not found in $PATH')


def exec_failure(executable: str, err: OSError) -> str:
    """runc's "exec /entry.sh: no such file or directory", and why when the file itself
    is there: the interpreter its #! line or its ELF header names is missing or cannot
    be run (a CRLF line end shows as "\\r").  Runs after pivot_root: no imports."""
    reason = (err.strerror or str(err)).lower()
    if err.errno in (errno.ENOENT, errno.EACCES, errno.ELOOP):
        interpreter = _interpreter(executable)
        if interpreter:
            try:
                os.stat(interpreter)
                why = reason
            except OSError as missing:
                why = (missing.strerror or reason).lower()
            quoted = '"' + repr(interpreter)[1:-1].replace('"', '\\"') + '"'
            return f"exec {executable}: interpreter {quoted}: {why}"
    return f"exec {executable}: {reason}"


def _interpreter(path: str) -> str:
    """The program the kernel runs for ``path``: its #! interpreter, or its ELF PT_INTERP
    (the dynamic loader); "" when it names none or cannot be read."""
    try:  # non-blocking, and a regular file only: an executable FIFO would hang us
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        head = os.pread(fd, 4096, 0)
        if head.startswith(b"#!"):
            words = head[2:].split(b"\n", 1)[0].replace(b"\t", b" ").strip(b" ").split(b" ")
            return os.fsdecode(words[0]) if words[0] else ""
        if not head.startswith(b"\x7fELF") or len(head) < 64 or head[4] not in (1, 2):
            return ""
        wide, little = head[4] == 2, head[5] == 1

        def num(data: bytes, at: int, size: int) -> int:
            return int.from_bytes(data[at:at + size], "little" if little else "big")

        phoff, phsize, phnum = (num(head, 0x20, 8), num(head, 0x36, 2), num(head, 0x38, 2)) \
            if wide else (num(head, 0x1C, 4), num(head, 0x2A, 2), num(head, 0x2C, 2))
        table = os.pread(fd, phsize * min(phnum, 64), phoff)
        for i in range(0, len(table) - phsize + 1, phsize):
            if num(table, i, 4) != 3:  # PT_INTERP
                continue
            offset, size = (num(table, i + 8, 8), num(table, i + 32, 8)) if wide else \
                (num(table, i + 4, 4), num(table, i + 16, 4))
            return os.fsdecode(os.pread(fd, min(size, 4096), offset).split(b"\0", 1)[0])
        return ""
    except (OSError, ValueError):
        return ""
    finally:
        os.close(fd)


def restore_signals() -> None:
    """Give the container's process default signal dispositions and an empty mask.

    Ignored dispositions and the blocked mask survive execve: Python ignores
    SIGPIPE and SIGXFSZ, and a caller (a monitor, a shell) may ignore SIGTERM
    or SIGINT, which a container's shell could then never trap.
    """
    for num in range(1, _signal.NSIG):
        if num in (_signal.SIGKILL, _signal.SIGSTOP):
            continue
        try:
            if _signal.getsignal(num) != _signal.SIG_DFL:
                _signal.signal(num, _signal.SIG_DFL)
        except (OSError, ValueError):
            continue  # real-time signals Python does not know, or reserved ones
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def set_no_new_privs() -> None:
    c.prctl(c.PR_SET_NO_NEW_PRIVS, 1)


def set_dumpable(on: bool) -> None:
    c.prctl(c.PR_SET_DUMPABLE, 1 if on else 0)


def apply_security(proc: Process, caps: Any, seccomp_filter: Any,
                   warn: Callable[[str], None]) -> Callable[[], None]:
    """Everything from the bounding set to no_new_privs (see the module docstring);
    returns the last step, to call right before execve: loading ``seccomp_filter``.

    ``caps`` is a parsed ``tomato._sys.caps.CapSets`` (or None to leave
    capabilities alone); ``seccomp_filter`` a compiled filter or None.  Both
    are parsed in the runtime process, before anything is created, so bad
    names fail early.
    """
    if proc.user.umask is not None:
        os.umask(proc.user.umask)
    held = None  # CAP_SYS_ADMIN kept beyond the process's own sets, to load the filter
    if seccomp_filter is not None and not proc.no_new_privileges and (
            caps is None and proc.user.uid != 0):
        # No capability sets to keep CAP_SYS_ADMIN through the uid change: load now.
        seccomp_filter.load()
        seccomp_filter = None
    if caps is not None:
        from tomato._sys import caps as capmod

        target = caps
        if seccomp_filter is not None and not proc.no_new_privileges and \
                _SYS_ADMIN not in caps.effective:
            held = caps
            target = capmod.CapSets(bounding=caps.bounding,
                                    effective=caps.effective | {_SYS_ADMIN},
                                    permitted=caps.permitted | {_SYS_ADMIN},
                                    inheritable=caps.inheritable, ambient=caps.ambient)
        capmod.drop_bounding(caps)
        capmod.set_keep_caps(True)
        switch_user(proc)
        capmod.set_keep_caps(False)
        # Like runc, an ambient capability the kernel will not raise (not in
        # the inheritable set, as in runc's own default spec) is not an error.
        capmod.apply(target)
    else:
        switch_user(proc)
    enter_cwd(proc.cwd)
    if proc.no_new_privileges:
        set_no_new_privs()
    if proc.apparmor_profile or proc.selinux_label:
        from tomato._sys import lsm

        for msg in (lsm.apply_apparmor(proc.apparmor_profile),
                    lsm.apply_selinux(proc.selinux_label)):
            if msg:
                warn(msg)
    return _last_step(seccomp_filter, held)


_SYS_ADMIN = 21  # CAP_SYS_ADMIN (linux/capability.h)


def _last_step(seccomp_filter: Any, held: Any) -> Callable[[], None]:
    def load() -> None:
        if seccomp_filter is None:
            return
        seccomp_filter.load()
        if held is not None:
            from tomato._sys import caps as capmod

            capmod.capset(held.effective, held.permitted, held.inheritable)

    return load
