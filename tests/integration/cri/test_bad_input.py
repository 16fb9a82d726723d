"""Hostile and broken input through the CRI: a pod naming an unknown runtime handler,
a sandbox whose pause process dies, an image with no entrypoint, tomato-runtime
killed in the middle of a `create`.  Each time the CRI answers with an error, the
next `crictl pods`/`ps` tells the truth, and after `rmp` nothing is left (mounts,
netns, shims, runtime state, cgroups, veths).  Where runc can be asked the same,
it is, with the same assertions.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import pytest
from helpers.cri import CriNode, container_config, pod_config, wait_for
from helpers.cri_images import BUSYBOX, NO_ENTRYPOINT


def write(path: Path, data: object) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def pod_files(workdir: Path, name: str) -> str:
    (workdir / "logs").mkdir(exist_ok=True)
    return write(workdir / f"{name}.json",
                 pod_config(name, uuid.uuid4().hex, workdir / "logs"))


def removed_cleanly(node: CriNode, pod_id: str) -> None:
    node.crictl_ok("stopp", pod_id)
    node.crictl_ok("rmp", pod_id)
    assert pod_id not in [p["id"] for p in node.pods(all_states=True)]
    assert not [c for c in node.containers() if c["podSandboxId"] == pod_id]
    assert wait_for(lambda: not node.leftovers(pod_id), timeout=10), node.leftovers(pod_id)
    assert wait_for(lambda: not node.live_links(), timeout=10), node.live_links()


def test_unknown_runtime_handler(node: CriNode, workdir: Path) -> None:
    before = node.pods(all_states=True)
    r = node.crictl("runp", "--runtime", "no-such-handler", pod_files(workdir, "nohandler"))
    assert r.returncode != 0
    assert "no-such-handler" in r.stderr, r.stderr
    assert node.pods(all_states=True) == before
    assert not node.live_links()


@pytest.mark.parametrize("handler", ["tomato", "runc"])
def test_sandbox_that_dies(node: CriNode, workdir: Path, handler: str) -> None:
    config = pod_files(workdir, f"dies-{handler}")
    pod = node.crictl_ok("runp", "--runtime", handler, config).strip()
    try:
        cid = node.crictl_ok("create", "--with-pull", pod, write(
            workdir / "c.json", container_config("sleeper", BUSYBOX, ["sleep", "1000"])),
            config).strip()
        node.crictl_ok("start", cid)
        pause = int(node.inspect("inspectp", pod)["info"]["pid"])
        os.kill(pause, signal.SIGKILL)
        assert wait_for(lambda: node.inspect("inspectp", pod)["status"]["state"]
                        == "SANDBOX_NOTREADY"), handler
        # The container outlives its pause (it has its own pid namespace), as with
        # runc; a new container in the dead sandbox is refused.
        r = node.crictl("create", pod, write(
            workdir / "c2.json", container_config("late", BUSYBOX, ["true"])), config)
        assert r.returncode != 0, (handler, r.stdout)
        assert "late" not in [c["metadata"]["name"] for c in node.containers()
                              if c["podSandboxId"] == pod]
    finally:
        removed_cleanly(node, pod)


def test_image_without_entrypoint(node: CriNode, workdir: Path) -> None:
    config = pod_files(workdir, "noentry")
    pod = node.crictl_ok("runp", "--runtime", "tomato", config).strip()
    try:
        r = node.crictl("create", "--with-pull", pod, write(
            workdir / "c.json", container_config("noentry", NO_ENTRYPOINT)), config)
        assert r.returncode != 0
        assert "no command specified" in r.stderr, r.stderr
        assert not [c for c in node.containers() if c["podSandboxId"] == pod]
        assert node.inspect("inspectp", pod)["status"]["state"] == "SANDBOX_READY"
    finally:
        removed_cleanly(node, pod)


def test_runtime_killed_mid_create(node: CriNode, workdir: Path) -> None:
    """The tomato-killed handler's tomato-runtime is killed (SIGKILL) once it has
    recorded the container and before it returns (CRI's StartContainer is the
    runtime's create + start): the CRI reports the failure, the container is not
    shown running, the pod goes on, the next container starts, and nothing is left
    after rmp."""
    marker = node.base.parent / "kill-next-create"
    config = pod_files(workdir, "killed")
    pod = node.crictl_ok("runp", "--runtime", "tomato-killed", config).strip()
    try:
        cid = node.crictl_ok("create", "--with-pull", pod, write(
            workdir / "c.json", container_config("victim", BUSYBOX, ["sleep", "1000"])),
            config).strip()
        marker.touch()
        r = node.crictl("start", cid)
        assert not marker.exists(), "the wrapper did not act on this start"
        assert r.returncode != 0, "start succeeded though the runtime was killed"
        st = node.inspect("inspect", cid)["status"]
        assert st["state"] != "CONTAINER_RUNNING", st
        ps = [c["state"] for c in node.containers() if c["id"] == cid]
        assert ps and ps[0] != "CONTAINER_RUNNING", ps
        node.crictl_ok("rm", cid)
        assert node.inspect("inspectp", pod)["status"]["state"] == "SANDBOX_READY"
        cid = node.crictl_ok("create", pod, write(
            workdir / "c2.json", container_config("next", BUSYBOX, ["sleep", "1000"])),
            config).strip()
        node.crictl_ok("start", cid)
        assert node.crictl_ok("exec", cid, "echo", "alive") == "alive\n"
    finally:
        marker.unlink(missing_ok=True)
        Path(f"{marker}.taken").unlink(missing_ok=True)
        removed_cleanly(node, pod)
