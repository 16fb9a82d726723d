"""containerd's CRI with ``SystemdCgroup = true`` for a ``tomato`` runtime handler, as
kubeadm sets a node up: where systemd is PID 1 (the cgroup2 guest's systemd phase,
tools/cgroup2-vm, which has Debian's containerd) and crictl is built
(tools/cri/build-cri-tools.sh).

A private containerd (its own root, state and socket under the test's directory;
no CNI: the pod uses the node's network) imports two images made here from the
busybox rootfs, then crictl runs a pod in a kubelet-style slice, a container with
limits, `update`s them and takes it all down: each container is a scope
``cri-containerd-<id>.scope`` in the pod's slice, made by tomato-runtime
``--systemd-cgroup`` (the shim's calls are logged), with the limits in the unit and
in the files, and nothing is left after ``rmp``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tomato.cgroups.systemd import is_running_systemd

REPO = Path(__file__).resolve().parents[3]
CRICTL = Path(os.environ.get("TOMATO_CRICTL",
                             REPO / ".cache" / "cri-tools" / "v1.26.1" / "crictl"))
POD_SLICE = "kubepods-besteffort-podtomatotest.slice"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = [
    pytest.mark.skipif(not is_running_systemd(),
                       reason="systemd is not PID 1 here (the cgroup2 guest's systemd phase "
                              "runs this: tools/cgroup2-vm)"),
    pytest.mark.skipif(shutil.which("containerd") is None or
                       shutil.which("containerd-shim-runc-v2") is None,
                       reason="no containerd (Debian's containerd package)"),
    pytest.mark.skipif(not CRICTL.exists(),
                       reason=f"no crictl at {CRICTL} (tools/cri/build-cri-tools.sh)"),
]


def _blob(blobs: dict[str, bytes], data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def oci_archive(rootfs: Path, images: dict[str, dict[str, Any]], out: Path) -> None:
    """An OCI image archive holding ``rootfs`` as one layer, once per image name,
    each with its own config (what ``ctr images import`` takes)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for entry in sorted(os.listdir(rootfs)):
            tar.add(rootfs / entry, arcname=entry)
    blobs: dict[str, bytes] = {}
    layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar",
                  **_blob(blobs, layer.getvalue())}
    manifests = []
    for name, config in images.items():
        cfg = {"architecture": "amd64", "os": "linux",
               "config": {"Env": [PATH_ENV], "WorkingDir": "/", **config},
               "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}}
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               **_blob(blobs, json.dumps(cfg).encode())},
                    "layers": [layer_desc]}
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                          **_blob(blobs, json.dumps(manifest).encode()),
                          "platform": {"architecture": "amd64", "os": "linux"},
                          "annotations": {"io.containerd.image.name": name,
                                          "org.opencontainers.image.ref.name":
                                              name.rsplit(":", 1)[1]}})
    files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
             "index.json": json.dumps({"schemaVersion": 2, "manifests": manifests}).encode(),
             **{f"blobs/sha256/{d.split(':')[1]}": data for d, data in blobs.items()}}
    with tarfile.open(out, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


class Node:
    """containerd with the CRI plugin and a ``tomato`` handler, and crictl for it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "containerd.sock"
        self.calls = base / "runtime-calls.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, busybox_rootfs: Path) -> None:
        wrapper = self.base / "tomato-runtime"
        launcher = (f'exec {sys.executable} -m tomato.cli.runtime "$@"'
                    if not (Path(sys.executable).parent / "tomato-runtime").exists()
                    else f'exec {Path(sys.executable).parent / "tomato-runtime"} "$@"')
        wrapper.write_text(f'#!/bin/sh\necho "$*" >> {self.calls}\n'
                           f'export PYTHONPATH={REPO / "src"}\n{launcher}\n')
        wrapper.chmod(0o755)
        (self.base / "cni").mkdir()
        handler = 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tomato'
        (self.base / "config.toml").write_text("\n".join([
            "version = 2",
            f'root = "{self.base / "root"}"',
            f'state = "{self.base / "state"}"',
            'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", '
            '"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", '
            '"io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", '
            '"io.containerd.internal.v1.tracing"]',
            "[grpc]", f'  address = "{self.sock}"',
            "[ttrpc]", f'  address = "{self.base / "ttrpc.sock"}"',
            '[plugins."io.containerd.grpc.v1.cri"]',
            '  sandbox_image = "tomato.test/pause:1"',
            "  netns_mounts_under_state_dir = true",
            '  stream_server_address = "127.0.0.1"',
            '  stream_server_port = "0"',
            "  disable_apparmor = true",
            '  [plugins."io.containerd.grpc.v1.cri".containerd]',
            '    snapshotter = "overlayfs"',
            '    default_runtime_name = "tomato"',
            f"  [{handler}]",
            '    runtime_type = "io.containerd.runc.v2"',
            f"  [{handler}.options]",
            f'    BinaryName = "{wrapper}"',
            f'    Root = "{self.base / "runtime-root"}"',
            "    SystemdCgroup = true",
            # the guest's / is the initramfs, which pivot_root cannot leave
            f"    NoPivotRoot = {'true' if _root_is_initramfs() else 'false'}",
            '  [plugins."io.containerd.grpc.v1.cri".cni]',
            f'    bin_dir = "{self.base / "cni"}"',
            f'    conf_dir = "{self.base / "cni"}"', ""]))
        self.proc = subprocess.Popen(["containerd", "--config", str(self.base / "config.toml")],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.base / "containerd.log", "wb"))
        deadline = time.monotonic() + 120
        while self.crictl("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("containerd did not start: " +
                                     (self.base / "containerd.log").read_text()[-2000:])
            time.sleep(0.5)
        archive = self.base / "images.tar"
        oci_archive(busybox_rootfs, {
            "tomato.test/pause:1": {"Entrypoint": ["/bin/sleep", "1000000"]},
            "tomato.test/busybox:1": {"Cmd": ["sh"]}}, archive)
        subprocess.run(["ctr", "--address", str(self.sock), "-n", "k8s.io", "images", "import",
                        str(archive)], check=True, capture_output=True, timeout=300)

    def crictl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(CRICTL), "--runtime-endpoint", f"unix://{self.sock}",
                               "--image-endpoint", f"unix://{self.sock}", "--timeout", "120s",
                               *args], capture_output=True, text=True, timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"crictl {' '.join(args)}: {done.stderr}")
        return done

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for pod in self.crictl("pods", "-q", check=False).stdout.split():
                self.crictl("stopp", pod, check=False)
                self.crictl("rmp", pod, check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Shims of ours that outlived containerd (they name its socket).
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if str(self.sock).encode() in cmdline and int(pid) != os.getpid():
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["systemctl", "stop", "kubepods.slice"], capture_output=True, timeout=120)
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for point in reversed(points):
            if point.startswith(str(self.base) + "/"):
                subprocess.run(["umount", "-l", point], capture_output=True)


def _root_is_initramfs() -> bool:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/" and fields[fields.index("-") + 1] == "rootfs":
                return True
    return False


@pytest.fixture
def node(workdir: Path, busybox_rootfs: Path) -> Iterator[Node]:
    n = Node(workdir / f"cri-{uuid.uuid4().hex[:6]}")
    n.base.mkdir()
    try:
        n.start(busybox_rootfs)
        yield n
    finally:
        n.stop()


def show(unit: str, *names: str) -> dict[str, str]:
    out = subprocess.run(["systemctl", "show", unit, *(f"--property={n}" for n in names)],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_pod_with_systemd_cgroups_through_the_cri(node: Node, workdir: Path) -> None:
    (workdir / "logs").mkdir()
    pod_cfg = workdir / "pod.json"
    pod_cfg.write_text(json.dumps({
        "metadata": {"name": "sd-pod", "namespace": "default", "uid": "tomatotest",
                     "attempt": 0},
        "log_directory": str(workdir / "logs"),
        "linux": {"cgroup_parent": POD_SLICE,
                  "security_context": {"namespace_options": {"network": 2}}}}))
    ctr_cfg = workdir / "ctr.json"
    ctr_cfg.write_text(json.dumps({
        "metadata": {"name": "sleeper"}, "image": {"image": "tomato.test/busybox:1"},
        "command": ["sleep", "100000"], "log_path": "sleeper.log",
        "linux": {"resources": {"memory_limit_in_bytes": 64 << 20, "cpu_shares": 512,
                                "cpu_quota": 25000, "cpu_period": 100000}}}))
    pod = node.crictl("runp", "--runtime", "tomato", str(pod_cfg)).stdout.strip()
    cid = node.crictl("create", pod, str(ctr_cfg), str(pod_cfg)).stdout.strip()
    node.crictl("start", cid)

    calls = node.calls.read_text()
    assert "--systemd-cgroup" in calls and "create" in calls and cid in calls
    for unit in (f"cri-containerd-{pod}.scope", f"cri-containerd-{cid}.scope"):
        props = show(unit, "ActiveState", "Slice", "ControlGroup", "Delegate")
        assert props["ActiveState"] == "active" and props["Slice"] == POD_SLICE, unit
        assert props["Delegate"] == "yes"
    unit = f"cri-containerd-{cid}.scope"
    cgroup = "/sys/fs/cgroup" + show(unit, "ControlGroup")["ControlGroup"]
    assert cgroup.endswith(f"/kubepods.slice/kubepods-besteffort.slice/{POD_SLICE}/{unit}")
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    if v2:
        assert show(unit, "MemoryMax")["MemoryMax"] == str(64 << 20)
        assert Path(cgroup, "memory.max").read_text().strip() == str(64 << 20)
        assert Path(cgroup, "cpu.max").read_text().split() == ["25000", "100000"]
    assert show(unit, "CPUQuotaPerSecUSec")["CPUQuotaPerSecUSec"] == "250ms"

    node.crictl("update", "--memory", str(128 << 20), "--cpu-quota", "50000", cid)
    assert show(unit, "CPUQuotaPerSecUSec")["CPUQuotaPerSecUSec"] == "500ms"
    if v2:
        assert show(unit, "MemoryMax")["MemoryMax"] == str(128 << 20)
        assert Path(cgroup, "memory.max").read_text().strip() == str(128 << 20)

    assert node.crictl("exec", "-s", cid, "echo", "inside").stdout.split() == ["inside"]

    node.crictl("stop", cid)
    node.crictl("rm", cid)
    node.crictl("stopp", pod)
    node.crictl("rmp", pod)
    for gone in (f"cri-containerd-{pod}.scope", unit):
        wait_for(lambda u=gone: show(u, "LoadState")["LoadState"] == "not-found",
                 f"{gone} to go")
    assert not os.path.exists(cgroup)
