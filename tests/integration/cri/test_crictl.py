"""crictl drives pods through containerd's CRI plugin with the tomato runtime handler
(runc's shim calling tomato-runtime) and, in the same test, with runc, so that any
difference shows: runp, create, start, exec (plain, exit codes, -it on a pty),
attach, logs -f, port-forward, stats, update, stop, rm, stopp, rmp; and after rmp
nothing is left (mounts, netns, shims, runtime state, cgroups, veths).
"""

from __future__ import annotations

import http.client
import json
import os
import select
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pexpect
import pytest
from helpers.cri import POD_SUBNET, CriNode, container_config, pod_config, wait_for
from helpers.cri_images import BUSYBOX, NGINX

HANDLERS = ("tomato", "runc")
FORWARD_PORT = 18080  # in the node's own network namespace: nothing else listens there

TICKER = ["sh", "-c", 'echo started; i=0; while true; do echo "tick $i"; i=$((i+1)); '
          "sleep 0.2; done"]
TALKER = ["sh", "-c", 'echo ready; while read -r line; do echo "got: $line"; done']


class Pod:
    """One pod of a test, its JSON configs written under ``workdir``."""

    def __init__(self, node: CriNode, handler: str, workdir: Path) -> None:
        self.node = node
        self.handler = handler
        self.dir = workdir / handler
        (self.dir / "logs").mkdir(parents=True)
        assert node.containerd is not None
        self.cgroup_parent = f"/{node.containerd.cgroup_parent}/pod-{handler}"
        # The pod's cgroup is made and removed by the kubelet, not the runtime.
        self.cgroups = [top / self.cgroup_parent.lstrip("/")
                        for top in Path("/sys/fs/cgroup").iterdir()
                        if not top.is_symlink() and (top / "cgroup.procs").exists()]
        for d in self.cgroups:
            d.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "pod.json"
        self.config.write_text(json.dumps(pod_config(
            f"pod-{handler}", uuid.uuid4().hex, self.dir / "logs", self.cgroup_parent)))
        self.id = ""

    def run(self) -> str:
        self.id = self.node.crictl_ok("runp", "--runtime", self.handler,
                                      str(self.config)).strip()
        return self.id

    def create(self, name: str, image: str, command: list[str] = [],  # noqa: B006
               **extra: Any) -> str:
        path = self.dir / f"{name}.json"
        path.write_text(json.dumps(container_config(name, image, command, **extra)))
        return self.node.crictl_ok("create", "--with-pull", self.id, str(path),
                                   str(self.config)).strip()

    def remove(self) -> None:
        if self.id:
            self.node.crictl("stopp", self.id)
            self.node.crictl("rmp", self.id)
        for d in self.cgroups:
            wait_for(lambda d=d: _rmdir(d), timeout=5)  # type: ignore[misc]


def _rmdir(d: Path) -> bool:
    try:
        d.rmdir()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False  # busy for a moment while a killed process leaves it


def state_of(node: CriNode, cid: str) -> str:
    return str(node.inspect("inspect", cid)["status"]["state"])


def pid_of(node: CriNode, cid: str, kind: str = "inspect") -> int:
    return int(node.inspect(kind, cid)["info"]["pid"])


def cgroup_file(pid: int, controller: str, v1_name: str, v2_name: str) -> Path:
    """A cgroup file of ``pid`` (v1 hierarchies or the v2 one)."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [ln.rstrip("\n").split(":", 2) for ln in f]
    for _, controllers, path in lines:
        if controller in controllers.split(","):
            mount = next(p for p in Path("/sys/fs/cgroup").iterdir()
                         if controller in p.name.split(",") and not p.is_symlink())
            return mount / path.lstrip("/") / v1_name
    path = next(p for h, c, p in lines if h == "0" and c == "")
    return Path("/sys/fs/cgroup") / path.lstrip("/") / v2_name


def read_until(proc: subprocess.Popen[bytes], want: bytes, timeout: float = 20) -> bytes:
    """Output of ``proc`` until ``want`` appears (or the deadline, or its end)."""
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while want not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            seen += chunk
    return seen


def stream(node: CriNode, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(node.crictl_argv(*args), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def end(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    for f in (proc.stdin, proc.stdout):
        if f:
            f.close()


def check_pod(node: CriNode, pod: Pod, workdir: Path) -> None:
    """Every verb on one pod of ``pod.handler``; assertion messages name the handler."""
    h = pod.handler
    pod.run()
    status = node.inspect("inspectp", pod.id)["status"]
    assert status["state"] == "SANDBOX_READY", h
    assert status["network"]["ip"].startswith(POD_SUBNET.rsplit(".", 1)[0] + "."), (h, status)
    runtime_state = node.handlers[h].root / "k8s.io"
    assert (runtime_state / pod.id).is_dir(), f"{h}: its runtime did not create the sandbox"

    web = pod.create("web", NGINX)
    ticker = pod.create("ticker", BUSYBOX, TICKER)
    talker = pod.create("talker", BUSYBOX, TALKER, stdin=True)
    for cid in (web, ticker, talker):
        node.crictl_ok("start", cid)
        assert state_of(node, cid) == "CONTAINER_RUNNING", h
        assert (runtime_state / cid).is_dir(), f"{h}: its runtime did not create {cid}"
    ps = {c["id"]: c["state"] for c in node.containers() if c["podSandboxId"] == pod.id}
    assert ps == dict.fromkeys((web, ticker, talker), "CONTAINER_RUNNING"), (h, ps)

    # The container's cgroup lies under the pod's.
    pid = pid_of(node, ticker)
    memory_limit = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")
    assert pod.cgroup_parent in str(memory_limit), (h, memory_limit)

    # exec: output, exit codes, and -it on a terminal
    assert node.crictl_ok("exec", ticker, "echo", "hi") == "hi\n", h
    # (crictl 1.26 exits 1 and names the command's code)
    r = node.crictl("exec", ticker, "sh", "-c", "exit 3")
    assert r.returncode != 0 and "exit code 3" in r.stderr, (h, r.stderr)
    r = node.crictl("exec", "--sync", ticker, "sh", "-c", "exit 4")
    assert r.returncode != 0 and "exited with 4" in r.stderr, (h, r.stderr)
    missing = node.crictl("exec", ticker, "/no/such/program")
    assert missing.returncode != 0, h
    argv = node.crictl_argv("exec", "-it", ticker, "sh")
    child = pexpect.spawn(argv[0], argv[1:], timeout=30, encoding="utf-8")
    try:
        child.sendline("tty; echo answer=$((6*7))")
        child.expect("/dev/pts/[0-9]+")
        child.expect("answer=42")
        child.sendline("exit 5")
        child.expect("exit code 5")  # crictl's words as it exits
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)

    # attach: what goes in comes back out
    attach = stream(node, "attach", "-i", talker)
    try:
        time.sleep(0.5)  # let the attach stream open before writing to it
        assert attach.stdin is not None
        attach.stdin.write(b"ping\n")
        attach.stdin.flush()
        assert b"got: ping" in read_until(attach, b"got: ping"), h
    finally:
        end(attach)

    # logs: what was written, and -f following what comes
    assert "started" in node.crictl_ok("logs", ticker), h
    follow = stream(node, "logs", "-f", ticker)
    try:
        first = read_until(follow, b"tick")
        n = int(first.rsplit(b"tick ", 1)[1].split()[0]) if b"tick " in first else 0
        later = f"tick {n + 3}".encode()
        assert later in read_until(follow, later), f"{h}: logs -f did not follow"
    finally:
        end(follow)
    log_file = pod.dir / "logs" / "ticker.log"
    line = log_file.read_text().splitlines()[0].split(" ", 3)
    assert line[1:] == ["stdout", "F", "started"], (h, line)  # the CRI log format

    # port-forward to the web server in the pod
    forward = stream(node, "port-forward", pod.id, f"{FORWARD_PORT}:80")
    try:
        assert b"Forwarding from" in read_until(forward, b"Forwarding from"), h
        with node.ns.net():
            conn = http.client.HTTPConnection("127.0.0.1", FORWARD_PORT, timeout=10)
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
        assert resp.status == 200 and b"Welcome to nginx!" in body, (h, resp.status, body)
    finally:
        end(forward)

    # stats
    stats = json.loads(node.crictl_ok("stats", "-o", "json", ticker))["stats"][0]
    assert int(stats["memory"]["workingSetBytes"]["value"]) > 0, (h, stats)
    assert int(stats["cpu"]["usageCoreNanoSeconds"]["value"]) > 0, (h, stats)

    # update of resources reaches the cgroup
    node.crictl_ok("update", "--memory", str(64 << 20), "--cpu-period", "100000",
                   "--cpu-quota", "20000", ticker)
    limit = memory_limit.read_text().strip()
    assert limit == str(64 << 20), (h, limit)
    quota = cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max").read_text().split()[0]
    assert quota == "20000", (h, quota)

    # stop (the shell, pid 1 of its pid namespace, ignores SIGTERM: SIGKILL after the
    # grace period), rm
    node.crictl_ok("stop", "--timeout", "1", ticker)
    st = node.inspect("inspect", ticker)["status"]
    assert st["state"] == "CONTAINER_EXITED" and st["exitCode"] == 137, (h, st)
    node.crictl_ok("stop", "--timeout", "5", web)  # httpd ends on SIGTERM
    assert state_of(node, web) == "CONTAINER_EXITED", h
    node.crictl_ok("rm", ticker)
    assert ticker not in [c["id"] for c in node.containers()], h
    assert not (runtime_state / ticker).exists(), f"{h}: runtime state of {ticker} left"

    # stopp stops what still runs; rmp removes the rest
    node.crictl_ok("stopp", pod.id)
    assert node.inspect("inspectp", pod.id)["status"]["state"] == "SANDBOX_NOTREADY", h
    assert state_of(node, talker) == "CONTAINER_EXITED", h
    node.crictl_ok("rmp", pod.id)
    assert pod.id not in [p["id"] for p in node.pods(all_states=True)], h
    assert not [c for c in node.containers() if c["podSandboxId"] == pod.id], h
    assert wait_for(lambda: not node.leftovers(pod.id, pod.cgroup_parent), timeout=10), \
        (h, node.leftovers(pod.id, pod.cgroup_parent))
    assert wait_for(lambda: not node.live_links(), timeout=10), (h, node.live_links())
    pod.id = ""


def test_every_verb_with_tomato_and_runc(node: CriNode, workdir: Path) -> None:
    pods = [Pod(node, h, workdir) for h in HANDLERS]
    try:
        for pod in pods:
            check_pod(node, pod, workdir)
    finally:
        for pod in pods:
            pod.remove()


@pytest.mark.parametrize("handler", HANDLERS)
def test_exit_code_and_oom_score(node: CriNode, workdir: Path, handler: str) -> None:
    """A container's own exit is reported with its code; restrict_oom_score_adj keeps
    the pause container's score at containerd's (this host withholds CAP_SYS_RESOURCE)."""
    pod = Pod(node, handler, workdir)
    try:
        pod.run()
        cid = pod.create("quits", BUSYBOX, ["sh", "-c", "echo bye >&2; exit 7"])
        node.crictl_ok("start", cid)
        assert wait_for(lambda: state_of(node, cid) == "CONTAINER_EXITED"), handler
        st = node.inspect("inspect", cid)["status"]
        assert st["exitCode"] == 7 and st["reason"] == "Error", (handler, st)
        assert "bye" in node.crictl("logs", cid).stderr, handler
        pause = pid_of(node, pod.id, "inspectp")
        score = Path(f"/proc/{pause}/oom_score_adj").read_text().strip()
        assert node.containerd is not None and node.containerd.proc is not None
        own = Path(f"/proc/{node.containerd.proc.pid}/oom_score_adj").read_text().strip()
        assert score == own, (handler, score, own)
    finally:
        pod.remove()
    assert not node.leftovers(pod.id, pod.cgroup_parent), node.leftovers(pod.id)
