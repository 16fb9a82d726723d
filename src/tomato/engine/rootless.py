"""The rootless engine: what an ordinary user's `tomato` needs before any command.

- State under $XDG_DATA_HOME/tomato (default ~/.local/share/tomato), made 0700;
  runtime files (the keeper's pid file) under $XDG_RUNTIME_DIR/tomato, which must
  be set and the user's own (as podman asks).
- The user's subordinate ranges (/etc/subuid, /etc/subgid), checked before
  anything is made so a missing one is one line that says what to run.
- ``enter``: the user's namespace keeper found (or started) and joined
  (userns_keeper.py); from then on the process is "root" of that namespace.
- What works and what does not, for `tomato info`: cgroups (none on v1: warned
  once), the overlay driver (the kernel's inside the namespace, or fuse-overlayfs
  where the kernel refuses or TOMATO_ROOTLESS_OVERLAY=fuse-overlayfs asks).
"""

from __future__ import annotations

import fcntl
import os
import pwd

from tomato.engine import userns_keeper
from tomato.errors import InvalidArgument, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.engine.options import RunOptions
    from tomato.explain import Explainer

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
OVERLAY_ENV = "TOMATO_ROOTLESS_OVERLAY"
CGROUP_V1_WARNING = ("WARN[0000] cgroup v1 cannot be delegated to an unprivileged user: "
                     "running containers without resource limits")


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def run_dir() -> str:
    """$XDG_RUNTIME_DIR/tomato (not made here); a one-line error when XDG_RUNTIME_DIR is
    unset or not ours (another user's directory would hold our keeper's pid file)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    uid = os.getuid()
    if not base:
        raise InvalidArgument("XDG_RUNTIME_DIR is not set: the rootless engine keeps its "
                              "runtime files there (log in with a session, or mkdir -m 700 "
                              "a directory of your own and export XDG_RUNTIME_DIR=it)")
    try:
        st = os.stat(base)
    except OSError as err:
        raise InvalidArgument(f"XDG_RUNTIME_DIR={base}: {err.strerror}: set it to a directory "
                              f"of your own (mkdir -m 700)") from err
    if st.st_uid != uid or not os.path.isdir(base):
        raise InvalidArgument(f"XDG_RUNTIME_DIR={base} is not a directory owned by "
                              f"{_user()} (uid {uid}): set it to one of your own (mkdir -m 700)")
    return os.path.join(base, "tomato")


def _make_private_dir(path: str) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass


def subid_ranges(path: str, user: str, uid: int) -> list[tuple[int, int]]:
    """(start, count) of the lines of /etc/subuid (or subgid) naming the user or uid
    (runtime/rootless.py reads them too; it imports subprocess, which we need not)."""
    ranges = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in (user, str(uid)) and \
                        parts[1].isdigit() and parts[2].isdigit():
                    ranges.append((int(parts[1]), int(parts[2])))
    except OSError:
        pass
    return ranges


def subordinate_range(path: str, kind: str) -> tuple[int, int]:
    """The user's first range in /etc/subuid (or subgid): (start, count)."""
    user = _user()
    ranges = [r for r in subid_ranges(path, user, os.getuid()) if r[1] > 0]
    if not ranges:
        raise InvalidArgument(f"no subordinate {kind} range for {user} in {path}: run "
                              f"usermod --add-subuids 100000-165535 --add-subgids "
                              f"100000-165535 {user}")
    return ranges[0]


def make_root(root: str) -> None:
    """The user's engine root, 0700 when we make it (another user must not even look)."""
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, mode=0o700, exist_ok=True)
    try:
        os.mkdir(root, 0o700)
    except FileExistsError:
        return
    os.chmod(root, 0o700)


def enter(root: str, ex: Explainer | None = None) -> str:
    """Join the user's namespace, starting its keeper when none runs; a warning to
    show ("" for none).  Checks everything it needs first, so a refusal leaves
    nothing behind."""
    uid_range = subordinate_range(SUBUID, "uid")
    gid_range = subordinate_range(SUBGID, "gid")
    runtime = run_dir()
    if userns_keeper.alive(runtime) is None:
        userns_keeper.helpers()  # newuidmap missing: said before anything is made
    _make_private_dir(runtime)
    make_root(root)
    fd = os.open(os.path.join(runtime, userns_keeper.LOCK_FILE),
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        pid = userns_keeper.alive(runtime)
        if pid is None:
            pid = userns_keeper.start(runtime, os.getuid(), os.getgid(), uid_range,
                                      gid_range, ex)
        userns_keeper.join(pid, ex)
    finally:
        os.close(fd)
    return cgroup_warning(runtime)


def overlay_driver() -> str:
    """"overlay" (the kernel's, inside the user namespace: kernels >= 5.11) or
    "fuse-overlayfs" (older kernels, or TOMATO_ROOTLESS_OVERLAY=fuse-overlayfs; a
    kernel that refuses the mount all the same gets it too: engine/mounts.py)."""
    wanted = os.environ.get(OVERLAY_ENV, "")
    if wanted in ("fuse-overlayfs", "overlay"):
        return wanted
    if wanted:
        raise InvalidArgument(f"{OVERLAY_ENV}={wanted}: overlay or fuse-overlayfs")
    return "overlay" if _kernel_at_least(5, 11) else "fuse-overlayfs"


def _kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (major, minor)
    except (IndexError, ValueError):
        return True


def mount_fuse_overlay(options: tuple[str, ...] | list[str], target: str) -> None:
    """The overlay by fuse-overlayfs (Debian's package): a daemon per mount, gone with
    its unmount.  Run inside the user namespace, where it may mount FUSE itself."""
    import shutil
    import subprocess

    binary = shutil.which("fuse-overlayfs")
    if binary is None:
        raise Unavailable("fuse-overlayfs not found in PATH: install the fuse-overlayfs "
                          "package, or use the kernel's overlay (a kernel >= 5.11)")
    proc = subprocess.run([binary, "-o", ",".join(options), target], capture_output=True,
                          text=True, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise Unavailable(f"fuse-overlayfs could not mount {target}: {why}")


def cgroups_delegated() -> str | None:
    """The cgroup v2 directory delegated to this user, else None (cgroup v1 cannot be
    delegated).  As systemd's user@UID.service delegation: the user's processes run in
    a leaf (``D/session``, or app.slice's) whose parent ``D`` the user owns, so the
    containers go beside them (``D/tomato/ID``), and moving an init between the two
    needs write access only to D's cgroup.procs (the common ancestor's)."""
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return None  # v1 or hybrid: limits need root
    try:
        with open("/proc/self/cgroup") as f:
            own = f.read().splitlines()
    except OSError:
        return None
    if len(own) != 1 or not own[0].startswith("0::/"):
        return None
    parent = os.path.dirname("/sys/fs/cgroup" + own[0][3:].rstrip("/"))
    if parent == "/sys/fs" or parent == "/sys/fs/cgroup":
        return None  # the root is never the user's
    if not all(os.access(os.path.join(parent, name), os.W_OK)
               for name in ("cgroup.procs", "cgroup.subtree_control")):
        return None
    return parent


def containers_cgroup() -> str | None:
    """cgroupsPath's parent for this user's containers (absolute: below the hierarchy's
    root) when a v2 subtree is delegated, else None (no cgroups: the runtime skips them)."""
    delegated = cgroups_delegated()
    if delegated is None:
        return None
    return delegated[len("/sys/fs/cgroup"):] + "/tomato"


def describe() -> dict[str, str]:
    """What `tomato info` shows of a rootless engine."""
    delegated = cgroups_delegated()
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    return {
        "Rootless": "true",
        "Cgroups": f"v2 (delegated: {delegated})" if delegated else "none (cgroup v1 or "
                   "no delegated v2 subtree: resource limits are not applied)",
        "Overlay": overlay_driver(),
        "Network": "slirp4netns (the default network; -p forwards ports >= "
                   "net.ipv4.ip_unprivileged_port_start)",
        "RunDir": os.path.join(runtime, "tomato") if runtime else "",
    }


def cgroup_warning(runtime: str) -> str:
    """The cgroup v1 warning, the first time in this runtime directory's life (once a
    boot or a login, as podman's), else ""."""
    if cgroups_delegated() is not None:
        return ""
    marker = os.path.join(runtime, "warned-cgroup-v1")
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        return ""
    except OSError:
        pass
    return CGROUP_V1_WARNING


#: podman's words when limits are asked for where a user cannot have them
LIMITS_IGNORED = ("WARN[0000] Resource limits are not supported and ignored on cgroups V1 "
                  "rootless systems")


def limits_warning(opts: RunOptions) -> str:
    """The warning for resource flags a rootless engine cannot apply, else "" (a
    delegated cgroup v2 subtree applies them)."""
    asked = (opts.cpus or opts.cpu_shares or opts.cpuset_cpus or opts.memory or
             opts.memory_swap or opts.memory_reservation or opts.pids_limit or
             opts.device_read_bps or opts.device_write_bps)
    if not asked or cgroups_delegated() is not None:
        return ""
    return LIMITS_IGNORED


__all__ = ["CGROUP_V1_WARNING", "LIMITS_IGNORED", "cgroup_warning", "describe", "enter",
           "containers_cgroup", "limits_warning", "make_root", "mount_fuse_overlay",
           "overlay_driver", "run_dir", "subordinate_range"]
