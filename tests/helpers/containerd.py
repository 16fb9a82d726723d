"""A private containerd for integration tests, and the busybox image it runs.

``Containerd`` starts Debian's containerd (1.6) with a config of its own: root,
state, the grpc/ttrpc/debug sockets and the opt plugin's directory all live
under one directory the test owns, the CRI plugin is disabled and the
snapshotter is overlayfs.  ``ctr`` talks to it with ``--address``, and every
``ctr run`` names the OCI runtime (``--runc-binary``), a runtime root of the
test's own (``--runc-root``, never /run/containerd/runc) and a cgroup under a
parent whose name contains "tomato" (``--cgroup``): nothing lands in the
machine's shared places.

One exception is containerd's own: each shim listens on
/run/containerd/s/<sha256(address/namespace/id)> whatever the config says.
Shims remove their socket when they exit; ``stop`` removes what a killed shim
left, and the directories if it created them and they are empty.

``stop`` is the teardown: it kills and deletes every task and container
through containerd, stops containerd, then clears what should already be gone
(shims, container processes, mounts under the directory, the cgroups, shim
sockets) and records each such forced clean-up in ``forced`` so the fixture can
fail the test that needed it.

``build_busybox_archive`` turns a busybox rootfs into an OCI image archive with
umoci (a tool nobody here wrote), which ``ctr image import`` loads.

With ``cri`` (a ``CriConfig``) the CRI plugin is enabled instead: the runtime
handlers it names (runc's shim calling each handler's binary with a --root of
the test's own), CNI configuration and registry hosts (``config_path``) from
directories the caller fills, ``restrict_oom_score_adj`` (this host withholds
CAP_SYS_RESOURCE), pod network namespaces mounted under the state directory, and
containerd itself in a cgroup under ``cgroup_parent`` so that the containers of
pods without a cgroup parent (runc places them beside its own cgroup) are there
too.  ``enter`` is an argv prefix (nsenter) that runs containerd and ctr in
namespaces of the caller's own (tests/helpers/cri.py), whose /run/containerd is
private: the host's /run/containerd/s is then left alone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

NAMESPACE = "tomato-test"
IMAGE = "docker.io/library/busybox:latest"
SHIM_SOCKET_DIR = Path("/run/containerd/s")
CGROUP_ROOT = Path("/sys/fs/cgroup")
ENVPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class CriHandler:
    """A CRI runtime handler: runc's shim (io.containerd.runc.v2) calling ``binary``
    with ``--root root`` (the shim appends the namespace, k8s.io)."""

    name: str
    binary: str
    root: Path


@dataclass(frozen=True)
class CriConfig:
    handlers: tuple[CriHandler, ...]
    cni_conf_dir: Path
    cni_bin_dir: Path
    registry_config_path: Path
    sandbox_image: str

    def toml(self) -> str:
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        lines = [cri,
                 f'  sandbox_image = "{self.sandbox_image}"',
                 "  restrict_oom_score_adj = true",
                 "  netns_mounts_under_state_dir = true",
                 '  stream_server_address = "127.0.0.1"',
                 '  stream_server_port = "0"',
                 "  disable_apparmor = true",
                 '  [plugins."io.containerd.grpc.v1.cri".containerd]',
                 '    snapshotter = "overlayfs"',
                 f'    default_runtime_name = "{self.handlers[0].name}"']
        for h in self.handlers:
            key = f'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{h.name}'
            lines += [f"  [{key}]",
                      '    runtime_type = "io.containerd.runc.v2"',
                      f"  [{key}.options]",
                      f'    BinaryName = "{h.binary}"',
                      f'    Root = "{h.root}"']
        lines += ['  [plugins."io.containerd.grpc.v1.cri".cni]',
                  f'    bin_dir = "{self.cni_bin_dir}"',
                  f'    conf_dir = "{self.cni_conf_dir}"',
                  '  [plugins."io.containerd.grpc.v1.cri".registry]',
                  f'    config_path = "{self.registry_config_path}"']
        return "\n".join(lines) + "\n"


# containerd's shims daemonize: each is orphaned and reparented to the nearest
# subreaper, and this machine's pid 1 reaps nobody.  This process (containerd's
# parent) is that subreaper: it joins the cgroups named before "--", runs the
# command after it, passes on SIGTERM/SIGINT, and reaps every orphan until the
# command exits (then for up to 5 s more, while the last shims finish).
_REAPER = """
import ctypes, os, signal, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
sep = sys.argv.index("--")
for procs in sys.argv[1:sep]:
    try:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    except OSError as err:
        print(f"reaper: cannot join {procs}: {err}", file=sys.stderr)
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[sep + 1], sys.argv[sep + 1:])
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda n, _: os.kill(pid, n))
code, deadline = None, None
while True:
    try:
        child, status = os.waitpid(-1, os.WNOHANG if code is not None else 0)
    except ChildProcessError:
        break
    if child == pid:
        code, deadline = os.waitstatus_to_exitcode(status), time.monotonic() + 5
    elif child == 0:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
sys.exit(code if code is not None and code >= 0 else 1)
"""


def missing_tools() -> list[str]:
    return [t for t in ("containerd", "ctr", "containerd-shim-runc-v2", "umoci")
            if shutil.which(t) is None]


def build_busybox_archive(rootfs: Path, workdir: Path) -> Path:
    """An OCI image archive (tar of an OCI layout) of ``rootfs``, tagged latest."""
    layout = workdir / "layout"
    image = f"{layout}:latest"
    for args in (["init", "--layout", str(layout)],
                 ["new", "--image", image],
                 ["insert", "--image", image, str(rootfs), "/"],
                 ["config", "--image", image, "--config.cmd", "sh", "--config.env", ENVPATH,
                  "--config.workingdir", "/", "--architecture", "amd64", "--os", "linux"],
                 ["gc", "--layout", str(layout)]):
        subprocess.run(["umoci", *args], check=True, capture_output=True, timeout=120)
    archive = workdir / "busybox-oci.tar"
    subprocess.run(["tar", "-C", str(layout), "-cf", str(archive), "."], check=True,
                   capture_output=True, timeout=120)
    return archive


@dataclass(frozen=True)
class Runtime:
    """The OCI runtime the shim calls, and the --root it gets.

    The shim is handed ``wrapper``, which appends each command line to ``call_log``
    and execs ``binary``: a test can then prove the runtime under test ran (ctr
    silently falls back to plain runc in /run/containerd/runc when a task option
    such as --no-pivot or --uidmap replaces the runtime options).
    """

    name: str
    binary: str
    root: Path
    wrapper: Path
    call_log: Path

    @classmethod
    def wrapped(cls, name: str, binary: str, workdir: Path) -> Runtime:
        root = workdir / f"{name}-root"
        root.mkdir()
        log = workdir / f"{name}-calls.log"
        log.touch()
        wrapper = workdir / f"{name}-wrapper"
        wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {binary} "$@"\n')
        wrapper.chmod(0o755)
        return cls(name, binary, root, wrapper, log)

    def flags(self) -> list[str]:
        return ["--runc-binary", str(self.wrapper), "--runc-root", str(self.root)]

    def calls(self) -> list[list[str]]:
        """Every command line the shim ran, global flags included."""
        return [line.split() for line in self.call_log.read_text().splitlines()]

    def created(self, cid: str) -> bool:
        return any("create" in argv and argv[-1] == cid for argv in self.calls())

    def containers(self) -> list[str]:
        """State directories the runtime still holds (the shim appends the namespace);
        dot names are the runtime's own (.seccomp, its compiled-filter cache)."""
        d = self.root / NAMESPACE
        return sorted(n for n in os.listdir(d) if not n.startswith(".")) if d.is_dir() else []


def mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(prefix)]


def _cgroup_dirs(name: str) -> list[Path]:
    """Every directory of cgroup ``name`` (top level) and below, deepest first."""
    found: list[Path] = []
    if not CGROUP_ROOT.is_dir():
        return found
    for top in CGROUP_ROOT.iterdir():
        base = top / name
        if top.is_symlink() or not base.is_dir():
            continue
        for dirpath, _, _ in os.walk(base):
            found.append(Path(dirpath))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


class Containerd:
    """A containerd process with everything under ``base``; use as a context manager."""

    def __init__(self, base: Path, cri: CriConfig | None = None,
                 enter: Sequence[str] = ()) -> None:
        self.base = base
        self.sock = base / "run" / "containerd.sock"
        self.fifo_dir = base / "fifo"
        self.cri = cri
        self.enter = list(enter)
        self.namespace = "k8s.io" if cri else NAMESPACE
        self.cgroup_parent = f"tomato-{'cri' if cri else 'ctr'}-{uuid.uuid4().hex[:8]}"
        self.ids: set[str] = set()
        self.forced: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._made_run_dirs: list[Path] = []

    # -- lifecycle ------------------------------------------------------------
    def start(self, timeout: float = 30) -> Containerd:
        for d in ("root", "state", "run", "opt", "fifo"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        if not self.enter:
            self._made_run_dirs = [d for d in (SHIM_SOCKET_DIR.parent, SHIM_SOCKET_DIR)
                                   if not d.exists()]
        config = self.base / "config.toml"
        disabled = "" if self.cri else 'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        config.write_text(
            "version = 2\n"
            f'root = "{self.base}/root"\n'
            f'state = "{self.base}/state"\n'
            f"{disabled}"
            "[grpc]\n"
            f'  address = "{self.sock}"\n'
            "[ttrpc]\n"
            f'  address = "{self.sock}.ttrpc"\n'
            "[debug]\n"
            f'  address = "{self.base}/run/debug.sock"\n'
            f'  level = "{"info" if self.cri else "debug"}"\n'
            "[plugins]\n"
            '  [plugins."io.containerd.internal.v1.opt"]\n'
            f'    path = "{self.base}/opt"\n'
            + (self.cri.toml() if self.cri else ""))
        self.log_path = self.base / "containerd.log"
        self.log = open(self.log_path, "wb")
        argv = ["containerd", "--config", str(config)]
        if self.cri:
            argv = self._in_own_cgroup(argv)
        self.proc = subprocess.Popen([*self.enter, *argv], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.sock.is_socket() and self.ctr("version", timeout=10).returncode == 0:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"containerd did not start:\n{self.log_tail()}")

    def _in_own_cgroup(self, argv: list[str]) -> list[str]:
        """``argv`` run from cgroup <cgroup_parent>/containerd of every hierarchy (its
        shims stay there, and runc puts containers without a cgroupsPath beside them)
        under a subreaper (``_REAPER``) that collects the shims containerd orphans."""
        procs = []
        for top in sorted(CGROUP_ROOT.iterdir()) if CGROUP_ROOT.is_dir() else []:
            if top.is_symlink() or not (top / "cgroup.procs").exists():
                continue
            d = top / self.cgroup_parent / "containerd"
            d.mkdir(parents=True, exist_ok=True)
            procs.append(str(d / "cgroup.procs"))
        return [sys.executable, "-I", "-S", "-c", _REAPER, *procs, "--", *argv]

    def __enter__(self) -> Containerd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                try:
                    self._delete_everything()
                finally:  # containerd is stopped even when a deletion failed
                    self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.forced.append("containerd ignored SIGTERM")
                    self.proc.kill()
                    self.proc.wait()
        finally:
            self.proc = None
            self.log.close()
            self._kill_strays()
            self._unmount_all()
            self._remove_cgroups()
            self._remove_shim_sockets()

    # -- ctr ------------------------------------------------------------------
    def ctr_argv(self, *args: str) -> list[str]:
        return [*self.enter, "ctr", "--address", str(self.sock), "--namespace", self.namespace,
                *args]

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``ctr`` against this containerd; a hang fails the test instead of blocking it."""
        return subprocess.run(self.ctr_argv(*args), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def run_args(self, runtime: Runtime, cid: str, cmd: Sequence[str],
                 opts: Sequence[str] = ()) -> list[str]:
        """The ``ctr run`` arguments for ``cmd`` in container ``cid`` under ``runtime``."""
        self.ids.add(cid)
        return ["run", "--fifo-dir", str(self.fifo_dir), *runtime.flags(),
                "--cgroup", f"/{self.cgroup_parent}/{cid}", *opts, IMAGE, cid, *cmd]

    def run(self, runtime: Runtime, cid: str, *cmd: str, opts: Sequence[str] = (),
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.ctr(*self.run_args(runtime, cid, cmd, opts), timeout=timeout)

    def exec(self, cid: str, exec_id: str, *cmd: str,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.ctr("task", "exec", "--fifo-dir", str(self.fifo_dir), "--exec-id", exec_id,
                        cid, *cmd, timeout=timeout)

    def import_image(self, archive: Path) -> None:
        r = self.ctr("image", "import", "--base-name", IMAGE.rsplit(":", 1)[0], str(archive),
                     timeout=120)
        if r.returncode != 0 or IMAGE not in self.ctr("image", "ls", "-q").stdout.split():
            raise RuntimeError(f"ctr image import failed: {r.stderr}\n{self.log_tail()}")

    def tasks(self) -> dict[str, tuple[int, str]]:
        """id → (pid, status) from ``ctr task ls``."""
        out = self.ctr("task", "ls").stdout.splitlines()[1:]
        found = {}
        for line in out:
            fields = line.split()
            if len(fields) >= 3:
                found[fields[0]] = (int(fields[1]), fields[2])
        return found

    def containers(self) -> list[str]:
        return self.ctr("container", "ls", "-q").stdout.split()

    def wait_status(self, cid: str, want: str, timeout: float = 30) -> str:
        """Poll until the task's status is ``want``; returns the last status seen."""
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = self.tasks().get(cid, (0, "(no task)"))[1]
            if status == want:
                break
            time.sleep(0.05)
        return status

    def task_dir(self, cid: str) -> Path:
        """The shim's bundle: config.json, rootfs, the runtime's log.json."""
        return self.base / "state" / "io.containerd.runtime.v2.task" / self.namespace / cid

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except (OSError, AttributeError):
            return ""
        return "\n".join(text[-lines:])

    def explain(self, r: subprocess.CompletedProcess[str]) -> str:
        """For assertion messages: what ctr said, then what containerd logged."""
        return (f"ctr exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}\n"
                f"--- containerd log ---\n{self.log_tail()}")

    # -- teardown ---------------------------------------------------------------
    def _delete_everything(self) -> None:
        for cid in self.tasks():
            self.ctr("task", "kill", "--all", "--signal", "SIGKILL", cid, timeout=30)
            self.wait_status(cid, "STOPPED", timeout=15)
            self.ctr("task", "delete", "--force", cid, timeout=30)
        for cid in self.containers():
            self.ctr("container", "delete", cid, timeout=30)

    def _kill_strays(self) -> None:
        """Shims of this containerd and processes in its containers' cgroups."""
        needle = b"\0-address\0" + str(self.sock).encode() + b"\0"
        for pid in os.listdir("/proc"):
            if pid.isdigit() and b"containerd-shim" in _cmdline(pid) and needle in _cmdline(pid):
                self.forced.append(f"killed shim {pid}")
                self._kill(int(pid))
        for d in _cgroup_dirs(self.cgroup_parent):
            try:
                procs = (d / "cgroup.procs").read_text().split()
            except OSError:
                continue
            for pid in procs:
                self.forced.append(f"killed container process {pid} in {d}")
                self._kill(int(pid))

    @staticmethod
    def _kill(pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _unmount_all(self) -> None:
        for point in sorted(mounts_under(self.base), key=len, reverse=True):
            self.forced.append(f"unmounted {point}")
            subprocess.run(["umount", "-l", point], capture_output=True)

    def _remove_cgroups(self) -> None:
        for d in _cgroup_dirs(self.cgroup_parent):
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)  # a killed process takes a moment to leave its cgroup
            else:
                self.forced.append(f"cannot remove cgroup {d}")

    def _remove_shim_sockets(self) -> None:
        if self.enter:
            return  # the namespaces' own /run/containerd, gone with them
        for cid in self.ids:
            digest = hashlib.sha256(f"{self.sock}/{self.namespace}/{cid}".encode()).hexdigest()
            path = SHIM_SOCKET_DIR / digest
            if path.exists() or path.is_symlink():
                self.forced.append(f"removed shim socket {path}")
                path.unlink()
        for d in reversed(self._made_run_dirs):
            try:
                d.rmdir()
            except OSError:
                pass  # not empty: another containerd uses it now
