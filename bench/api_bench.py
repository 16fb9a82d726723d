#!/usr/bin/env python3
"""`docker run --rm busybox true` through the Engine API: `tomato serve` beside
`podman system service`, the same docker CLI against each, in one run.

  tomato none / bridge    docker CLI → tomato serve (unix socket)
  podman none / bridge    docker CLI → podman system service (unix socket)
  tomato CLI none         `tomato run --rm --network none` directly, for reference

and the cost of one request, the same client (this script, raw HTTP/1.1) against each
server, taking turns: `GET /_ping` on one keep-alive connection and on a new
connection each time, `GET /containers/json` with ten created containers, and
`docker ps` (the CLI).  `--baseline-venv DIR` adds another install's `tomato serve`
(e.g. the tree before a change) on the same root.

Everything runs in a private mount and network namespace (the script re-runs
itself under `unshare -m -n`), storage on a tmpfs.  The busybox image comes from
Debian's busybox-static; tomato imports it and `tomato save` gives podman the
very same image.  The docker CLI is the client for both servers (never dockerd).

    sudo .venv/bin/python bench/api_bench.py [-n 20] [--skip-podman]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TOMATO = str(BIN / "tomato")
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed: {proc.stderr.strip()[-400:]}")
    return proc  # type: ignore[no-any-return]


def timed(argv: list[str], n: int, env: dict[str, str] | None = None) -> list[float]:
    times = []
    for i in range(n + 3):  # three warm-up runs
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.decode()[-400:]}")
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return times


def _request(sock: socket.socket, path: str) -> None:
    """One GET on a keep-alive connection; the body is read to its end."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"GET {path}: connection closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if length is None:  # chunked: read up to the last chunk
        while not body.endswith(b"0\r\n\r\n"):
            body += sock.recv(65536)
        return
    want = int(length.group(1))
    while len(body) < want:
        body += sock.recv(65536)


def request_costs(servers: dict[str, str], n: int, rounds: int = 10) -> dict[str, dict[str, float]]:
    """Microseconds a request to each server (socket path): `GET /_ping` on one
    keep-alive connection and on a new connection each, `GET /containers/json`.
    The servers take turns, ``rounds`` times, and each gets its median round: the
    machine's other load falls on all of them alike."""
    def each(fn: Any, count: int) -> float:
        t0 = time.perf_counter()
        for _ in range(count):
            fn()
        return (time.perf_counter() - t0) / count * 1e6

    def one_round(path: str) -> dict[str, float]:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            for _ in range(5):
                _request(s, "/_ping")
            keep = each(lambda: _request(s, "/_ping"), max(n // rounds, 10))
            listing = each(lambda: _request(s, "/v1.41/containers/json?all=1"),
                           max(n // rounds // 10, 3))

        def fresh() -> None:
            with socket.socket(socket.AF_UNIX) as c:
                c.connect(path)
                _request(c, "/_ping")

        return {"ping keep-alive": keep, "ping new conn": each(fresh, max(n // rounds // 4, 5)),
                "containers/json": listing}

    samples: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    for _ in range(rounds):
        for name, path in servers.items():
            samples[name].append(one_round(path))
    return {name: {case: statistics.median(r[case] for r in runs) for case in runs[0]}
            for name, runs in samples.items()}


def podman_flags(base: Path) -> list[str]:
    # Every setting as a flag: through the environment podman stalls 20 s at cleanup.
    return ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
            "--tmpdir", str(base / "tmp"), "--cgroup-manager=cgroupfs",
            "--events-backend=file", "--runtime", "runc"]


def wait_socket(path: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {path}")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--requests", type=int, default=2000, help="pings timed per server")
    ap.add_argument("--skip-podman", action="store_true")
    ap.add_argument("--baseline-venv", metavar="DIR",
                    help="also time the `tomato serve` of another install (a venv whose "
                    "bin/tomato runs an older tree) on the same root: before/after a change")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("api_bench: run as root", file=sys.stderr)
        return 1
    if not os.environ.get("TOMATO_BENCH_PRIVATE"):
        os.environ["TOMATO_BENCH_PRIVATE"] = "1"
        os.execvp("unshare", ["unshare", "-m", "-n", "--propagation", "private",
                              sys.executable, __file__, *sys.argv[1:]])
    sh(["ip", "link", "set", "lo", "up"])
    os.makedirs("/run/netns", exist_ok=True)
    sh(["mount", "-t", "tmpfs", "tomato-bench-netns", "/run/netns"])  # private: ours only
    tmp = Path(tempfile.mkdtemp(prefix="tomato-apibench-"))
    sh(["mount", "-t", "tmpfs", "-o", "size=8g", "tomato-bench", str(tmp)])
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.rootfs import build_busybox_rootfs

    env = {**os.environ, "TOMATO_ROOT": str(tmp / "tomato")}
    pod = tmp / "podman"
    times: dict[str, list[float]] = {}
    servers: dict[str, str] = {}
    costs: dict[str, dict[str, float]] = {}
    serve = podman = baseline = None
    try:
        rootfs = build_busybox_rootfs(tmp / "rootfs")
        sh(["tar", "-C", str(rootfs), "-cf", str(tmp / "bb.tar"), "."])
        sh([TOMATO, "import", str(tmp / "bb.tar"), "busybox:latest"], env=env)
        sh([TOMATO, "save", "-o", str(tmp / "bb-docker.tar"), "busybox:latest"], env=env)
        tsock = str(tmp / "tomato.sock")
        serve = subprocess.Popen([TOMATO, "serve", "--host", f"unix://{tsock}"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_socket(tsock, serve, "tomato serve")
        denv = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        (tmp / "dockercfg").mkdir()
        denv["DOCKER_CONFIG"] = str(tmp / "dockercfg")
        tenv = {**denv, "DOCKER_HOST": f"unix://{tsock}"}
        for net in ("none", "bridge"):
            times[f"tomato {net}"] = timed([DOCKER, "run", "--rm", "--network", net, "busybox",
                                            "true"], args.n, tenv)
        for _ in range(10):
            sh([TOMATO, "create", "--network", "none", "busybox", "true"], env=env)
        servers["tomato"] = tsock
        if args.baseline_venv:
            bsock = str(tmp / "baseline.sock")
            baseline = subprocess.Popen([str(Path(args.baseline_venv) / "bin" / "tomato"),
                                         "serve", "--host", f"unix://{bsock}"], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_socket(bsock, baseline, "the baseline's tomato serve")
            servers["baseline"] = bsock
        times["tomato docker ps"] = timed([DOCKER, "ps", "-a"], args.n, tenv)
        times["tomato CLI none"] = timed([TOMATO, "run", "--rm", "--network", "none", "busybox",
                                          "true"], args.n, env)
        if not args.skip_podman and shutil.which("podman"):
            sh([*podman_flags(pod), "load", "-i", str(tmp / "bb-docker.tar")])
            sh([*podman_flags(pod), "tag", "localhost/busybox:latest",
                "docker.io/library/busybox:latest"])
            psock = str(tmp / "podman.sock")
            podman = subprocess.Popen([*podman_flags(pod), "system", "service", "--time=0",
                                       f"unix://{psock}"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            wait_socket(psock, podman, "podman system service")
            penv = {**denv, "DOCKER_HOST": f"unix://{psock}"}
            for _ in range(10):
                sh([*podman_flags(pod), "create", "--network", "none", "busybox", "true"])
            servers["podman"] = psock
            times["podman docker ps"] = timed([DOCKER, "ps", "-a"], args.n, penv)
            for net in ("none", "bridge"):
                times[f"podman {net}"] = timed([DOCKER, "run", "--rm", "--network", net,
                                                "--ulimit", "nofile=20000:20000", "--ulimit",
                                                "nproc=32768:32768", "busybox", "true"],
                                               args.n, penv)
        costs = request_costs(servers, args.requests)
    finally:
        stop(serve)
        stop(baseline)
        ids = subprocess.run([TOMATO, "ps", "-aq"], env=env, capture_output=True,
                             text=True).stdout.split()
        if ids:
            subprocess.run([TOMATO, "rm", "-f", *ids], env=env, capture_output=True)
        stop(podman)
        if shutil.which("podman"):
            subprocess.run([*podman_flags(pod), "rm", "-af", "-t", "0"], capture_output=True)
            subprocess.run([*podman_flags(pod), "system", "reset", "-f"], capture_output=True)
        subprocess.run(["umount", "-l", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"{'docker run --rm busybox true':<30}{'median ms':>10}{'min ms':>9}"
          f"{'/ podman same net':>19}")
    for name, value in medians.items():
        net = name.split(None, 1)[-1]
        ref = medians.get(f"podman {net}")
        ratio = f"{value / ref:.2f}x" if ref and not name.startswith("podman") else "-"
        print(f"{name:<30}{value:>10.1f}{min(times[name]) * 1000:>9.1f}{ratio:>19}")
    if "tomato" in costs:
        names = list(costs)
        print(f"\n{'one request (raw HTTP/1.1), us':<32}" +
              "".join(f"{n:>10}" for n in names) +
              "".join(f"{'/ ' + n:>12}" for n in names[1:]))
        for case, value in costs["tomato"].items():
            print(f"{case:<32}" + "".join(f"{costs[n][case]:>10.0f}" for n in names) +
                  "".join(f"{value / costs[n][case]:>11.2f}x" for n in names[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
