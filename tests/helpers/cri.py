"""A Kubernetes node's runtime side, made of real parts, for tests, tools and benches.

``CriNode`` is containerd (Debian's, CRI plugin enabled; tests/helpers/containerd.py)
with two runtime handlers, ``runc`` and ``tomato`` (runc's shim calling
tomato-runtime), CNI from Debian's containernetworking-plugins (a bridge and
host-local addresses on a private subnet, portmap for host ports), a registry
(Debian's docker-registry) serving the stand-in images of helpers.cri_images
behind containerd's registry-host configuration, so that the upstream names
critest asks for resolve locally, and ``crictl`` to drive it.

Everything runs in mount, network, IPC and UTS namespaces of the node's own
(``NodeNamespaces``, held by a sleeping process): CNI's bridge, veths, iptables
rules and sysctls stay in that network namespace, the overlay mounts, pod netns
mounts, libcni's cache (/var/lib/cni) and the shims' sockets (/run/containerd)
stay in that mount namespace, the shared memory critest makes "on the host" in
that IPC namespace, and all vanish with their last process.  The host sees only
files under the node's directory and cgroups under one parent.

crictl and critest run in the node's namespaces through ``NodeNamespaces.enter``
(nsenter); this process joins the network namespace for a moment with
``NodeNamespaces.net()`` (to start the registry, push images, fetch a forwarded
port).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.containerd import Containerd, CriConfig, CriHandler, _cgroup_dirs
from helpers.cri_images import MIRRORED, SANDBOX_IMAGE, push_all
from helpers.registry import Registry

TOMATO_RUNTIME = str(Path(sys.executable).parent / "tomato-runtime")
CNI_BIN_DIR = Path("/usr/lib/cni")
#: The pods' subnet: private, and only ever inside the node's network namespace.
POD_SUBNET = "10.88.0.0/24"
BRIDGE = "tomato-cri0"
REPO = Path(__file__).resolve().parents[2]
CRI_TOOLS_BUILD = REPO / "tools" / "cri" / "build-cri-tools.sh"

# The holder: lo up, then private tmpfs over the places containerd, its shims and
# libcni write whatever the configuration says (/run/containerd/s/<hash> sockets,
# /var/lib/cni/results).  A directory the host lacks is made in an overlay of its
# parent (upper layer in the node's directory), never on the host.
_HOLDER = r"""
set -eu
base=$1
ip link set lo up
private_dir() {
    if [ ! -d "$1" ]; then
        parent=$(dirname "$1")
        layer=$base/overlay/$(echo "$parent" | tr / _)
        mkdir -p "$layer/upper" "$layer/work"
        mount -t overlay -o "lowerdir=$parent,upperdir=$layer/upper,workdir=$layer/work" \
            tomato-cri "$parent"
        mkdir -p "$1"
    fi
    mount -t tmpfs -o mode=0711 tomato-cri "$1"
}
private_dir /run/containerd
private_dir /var/lib/cni
echo ready
exec sleep 2147483647
"""


def missing_tools() -> list[str]:
    need = ("containerd", "ctr", "containerd-shim-runc-v2", "umoci", "skopeo",
            "docker-registry", "runc", "nsenter", "unshare", "ip", "iptables")
    missing = [t for t in need if shutil.which(t) is None]
    missing += [f"CNI plugin {p}" for p in ("bridge", "host-local", "portmap", "loopback")
                if not (CNI_BIN_DIR / p).exists()]
    return missing


def build_cri_tools() -> tuple[Path | None, str]:
    """(directory holding crictl and critest, "") or (None, why not): built once from
    the vendored cri-tools source by tools/cri/build-cri-tools.sh."""
    r = subprocess.run([str(CRI_TOOLS_BUILD)], capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    return Path(r.stdout.strip().splitlines()[-1]), ""


class NodeNamespaces:
    """Mount, network, IPC and UTS namespaces held by one sleeping process."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.proc: subprocess.Popen[str] | None = None
        self.forced: list[str] = []

    def start(self) -> NodeNamespaces:
        self.base.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--net", "--ipc", "--uts", "--propagation", "private",
             "sh", "-c", _HOLDER,
             "sh", str(self.base)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded: the script ends or says ready
        if line.strip() != "ready":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"the node's namespaces could not be made: {err.strip()}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def enter(self) -> list[str]:
        """argv prefix: run a command in the node's namespaces."""
        return ["nsenter", f"--target={self.pid}", "--mount", "--net", "--ipc", "--uts", "--"]

    @contextmanager
    def net(self) -> Iterator[None]:
        """This thread in the node's network namespace (children started here inherit
        it, sockets opened here stay in it), then back where it was."""
        from tomato._sys import libc

        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(target, libc.CLONE_NEWNET)
            try:
                yield
            finally:
                libc.setns(home, libc.CLONE_NEWNET)
        finally:
            os.close(target)
            os.close(home)

    def mounts(self) -> list[str]:
        """Mount points of the node's mount namespace."""
        with open(f"/proc/{self.pid}/mountinfo") as f:
            return [line.split()[4] for line in f]

    def links(self) -> list[str]:
        r = subprocess.run([*self.enter, "ip", "-o", "link", "show"], capture_output=True,
                           text=True, timeout=30)
        return [ln.split(":")[1].strip().split("@")[0] for ln in r.stdout.splitlines()]

    def processes(self) -> list[int]:
        """Processes in the node's mount namespace (containerd, shims), holder aside."""
        want = os.readlink(f"/proc/{self.pid}/ns/mnt")
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != self.pid:
                try:
                    if os.readlink(f"/proc/{entry}/ns/mnt") == want:
                        found.append(int(entry))
                except OSError:
                    continue
        return found

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for pid in self.processes():
                self.forced.append(f"killed {pid} in the node's namespaces")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        self.proc = None


def write_cni_config(conf_dir: Path, ipam_dir: Path) -> None:
    conf_dir.mkdir(parents=True, exist_ok=True)
    ipam_dir.mkdir(parents=True, exist_ok=True)
    conf = {"cniVersion": "1.0.0", "name": "tomato-cri", "plugins": [
        {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
         "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]],
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(ipam_dir)}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}
    (conf_dir / "10-tomato-cri.conflist").write_text(json.dumps(conf, indent=2))


def write_registry_hosts(config_path: Path, registry_addr: str) -> None:
    """Every mirrored registry's name served by the local registry alone: the
    ``server`` itself is local, so nothing falls back to the real one."""
    for host in MIRRORED:
        d = config_path / host
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts.toml").write_text(
            f'server = "http://{registry_addr}"\n'
            f'[host."http://{registry_addr}"]\n'
            '  capabilities = ["pull", "resolve"]\n')


class CriNode:
    """containerd with the CRI plugin, its registry and CNI, in namespaces of its own.

    ``handlers`` maps a runtime handler's name to the OCI runtime binary its shim
    calls (default: runc and tomato-runtime)."""

    def __init__(self, base: Path, layout: Path, tools: Path,
                 handlers: dict[str, str] | None = None) -> None:
        self.base = base
        self.layout = layout
        self.crictl_bin = str(tools / "crictl")
        self.critest_bin = str(tools / "critest")
        if handlers is None:
            handlers = {"runc": shutil.which("runc") or "runc", "tomato": TOMATO_RUNTIME}
        self.handlers = {name: CriHandler(name, binary, base / "rt" / name)
                         for name, binary in handlers.items()}
        self.ns = NodeNamespaces(base)
        self.registry = Registry(base / "registry")
        self.containerd: Containerd | None = None
        self.forced: list[str] = []

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> CriNode:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.ns.start()
        (self.base / "registry").mkdir(exist_ok=True)
        with self.ns.net():
            self.registry.start()
            push_all(self.layout, self.registry.addr)
        write_cni_config(self.base / "cni" / "net.d", self.base / "cni" / "ipam")
        write_registry_hosts(self.base / "certs.d", self.registry.addr)
        for h in self.handlers.values():
            h.root.mkdir(parents=True, exist_ok=True)
        cri = CriConfig(tuple(self.handlers.values()), self.base / "cni" / "net.d",
                        CNI_BIN_DIR, self.base / "certs.d", SANDBOX_IMAGE)
        self.containerd = Containerd(self.base / "c", cri=cri, enter=self.ns.enter)
        self.containerd.start(timeout=60)
        (self.base / "tmp").mkdir(exist_ok=True)

    def __enter__(self) -> CriNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Pods removed through the CRI, then containerd, the registry and the
        namespaces stopped; whatever needed force is recorded in ``forced``."""
        try:
            if self.containerd is not None and self.containerd.proc is not None:
                if self.pods(all_states=True):
                    self.forced.append("pods were left: crictl rmp --all --force")
                    self.crictl("rmp", "--all", "--force", timeout=120)
                self.containerd.stop()
                self.forced += self.containerd.forced
        finally:
            self.registry.stop()
            self.ns.stop()
            self.forced += self.ns.forced
            if self.containerd is not None:
                self.containerd._remove_cgroups()
            self.containerd = None

    # -- crictl ---------------------------------------------------------------
    @property
    def sock(self) -> Path:
        return self.base / "c" / "run" / "containerd.sock"

    def crictl_argv(self, *args: str) -> list[str]:
        endpoint = f"unix://{self.sock}"
        return [*self.ns.enter, self.crictl_bin, "--runtime-endpoint", endpoint,
                "--image-endpoint", endpoint, "--timeout", "60s", *args]

    def crictl(self, *args: str, timeout: float = 120,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
        """crictl against this node; a hang fails the caller instead of blocking it."""
        return subprocess.run(self.crictl_argv(*args), capture_output=True, text=True,
                              timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def crictl_ok(self, *args: str, timeout: float = 120) -> str:
        r = self.crictl(*args, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"crictl {' '.join(args)} failed ({r.returncode}): "
                                 f"{r.stderr.strip()}\n--- containerd ---\n{self.log_tail()}")
        return r.stdout

    def pods(self, all_states: bool = False) -> list[dict[str, Any]]:
        r = self.crictl("pods", "-o", "json", timeout=60)
        if r.returncode != 0:
            return []
        items: list[dict[str, Any]] = json.loads(r.stdout).get("items") or []
        return items if all_states else [p for p in items if p["state"] == "SANDBOX_READY"]

    def containers(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(
            self.crictl_ok("ps", "-a", "-o", "json")).get("containers") or []
        return items

    def inspect(self, kind: str, cid: str) -> dict[str, Any]:
        """``crictl inspect``/``inspectp`` as JSON (kind: "inspect" or "inspectp")."""
        return json.loads(self.crictl_ok(kind, "-o", "json", cid))  # type: ignore[no-any-return]

    def log_tail(self, lines: int = 30) -> str:
        return self.containerd.log_tail(lines) if self.containerd else ""

    # -- what a pod leaves ------------------------------------------------------
    def leftovers(self, pod_id: str, cgroup_parent: str = "") -> list[str]:
        """What the node still holds of pod ``pod_id`` (removed by now): mounts, its
        netns, shims, runtime state, its cgroups, containers' processes."""
        left = []
        cd = self.containerd
        assert cd is not None
        left += [f"mount {m}" for m in self.ns.mounts() if pod_id in m]
        netns_dir = cd.base / "state" / "io.containerd.grpc.v1.cri" / "netns"
        for f in (netns_dir.iterdir() if netns_dir.is_dir() else []):
            left.append(f"netns {f}")
        for pid in self.ns.processes():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\0")
            except OSError:
                continue
            if b"containerd-shim" in argv[0] and pod_id.encode() in argv:
                left.append(f"shim {pid}")
        for h in self.handlers.values():
            state = h.root / "k8s.io"
            left += [f"{h.name} state {n}" for n in (os.listdir(state) if state.is_dir() else [])
                     if not n.startswith(".")]
        if cgroup_parent:  # the pod's own cgroup is the kubelet's: what lies below it
            name = cgroup_parent.strip("/")
            left += [f"cgroup {d}" for d in _cgroup_dirs(name)
                     if not str(d).endswith("/" + name)]
        return left

    def live_links(self) -> list[str]:
        return [ln for ln in self.ns.links() if ln not in ("lo", BRIDGE)]


@dataclass
class CritestResult:
    """critest's totals for one handler (from ginkgo's JSON report) and its wall time."""

    handler: str
    passed: int
    failed: int
    skipped: int
    wall: float
    exit_code: int
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped

    def line(self) -> str:
        return (f"critest {self.handler}: {self.passed} passed, {self.failed} failed, "
                f"{self.skipped} skipped of {self.total} in {self.wall:.0f} s")


def critest_totals(handler: str, report: Path, wall: float, exit_code: int) -> CritestResult:
    """Count ginkgo's spec reports (It nodes only; suite set-up nodes aside)."""
    result = CritestResult(handler, 0, 0, 0, wall, exit_code)
    try:
        suites = json.loads(report.read_text())
    except (OSError, ValueError):
        return result
    for suite in suites:
        for spec in suite.get("SpecReports") or []:
            if spec.get("LeafNodeType") != "It":
                continue
            state = spec.get("State")
            name = " ".join([*(spec.get("ContainerHierarchyTexts") or []),
                             spec.get("LeafNodeText", "")])
            if state == "passed":
                result.passed += 1
            elif state in ("skipped", "pending"):
                result.skipped += 1
            else:
                result.failed += 1
                result.failures.append(name)
    return result


def run_critest(node: CriNode, handler: str, workdir: Path, args: Sequence[str] = (),
                output: Any = None, timeout: float = 3600) -> CritestResult:
    """critest against ``node`` with pods on runtime handler ``handler``; its output
    goes to ``output`` (a file object; default workdir/critest-HANDLER.log)."""
    report = workdir / f"critest-{handler}.json"
    endpoint = f"unix://{node.sock}"
    tmp = node.base / "tmp" / handler
    tmp.mkdir(parents=True, exist_ok=True)
    argv = [*node.ns.enter, node.critest_bin, f"-runtime-endpoint={endpoint}",
            f"-image-endpoint={endpoint}", f"-runtime-handler={handler}",
            f"-ginkgo.json-report={report}", "-ginkgo.no-color", *args]
    own = output is None
    out = open(workdir / f"critest-{handler}.log", "w") if own else output
    t0 = time.monotonic()
    try:
        # critest's temporary directories (host paths it mounts, pod log directories)
        # go under the node's directory: TMPDIR, and the working directory.
        code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, cwd=tmp, timeout=timeout,
                              env={**os.environ, "TMPDIR": str(tmp)}).returncode
    finally:
        if own:
            out.close()
    return critest_totals(handler, report, time.monotonic() - t0, code)


def pod_config(name: str, uid: str, log_dir: Path, cgroup_parent: str = "",
               port_mappings: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A PodSandboxConfig as crictl reads it from JSON."""
    config: dict[str, Any] = {
        "metadata": {"name": name, "uid": uid, "namespace": "tomato-test", "attempt": 0},
        "hostname": name, "log_directory": str(log_dir),
        "linux": {"security_context": {"namespace_options": {"network": 0, "pid": 1}}}}
    if cgroup_parent:
        config["linux"]["cgroup_parent"] = cgroup_parent
    if port_mappings:
        config["port_mappings"] = list(port_mappings)
    return config


def container_config(name: str, image: str, command: Sequence[str] = (),
                     **extra: Any) -> dict[str, Any]:
    # Each container in a pid namespace of its own, as kubelet asks by default.
    config: dict[str, Any] = {"metadata": {"name": name}, "image": {"image": image},
                              "log_path": f"{name}.log", "linux": {"security_context": {
                                  "namespace_options": {"network": 0, "pid": 1}}}}
    if command:
        config["command"] = list(command)
    config.update(extra)
    return config


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
