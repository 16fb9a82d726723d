#!/usr/bin/env python3
"""Many containers at once: tomato beside podman, in one run, on one busybox image.

  run -d          N `run -d --network none busybox sleep 600` started at once
                  (concurrently), wall time until every one has returned
  ps              one `ps` listing the N (median of three)
  stats           one `stats --no-stream` of the N (median of three)
  docker stats    `docker stats --no-stream` through the Engine API: the docker CLI
                  against `tomato serve` and `podman system service` (median of three)
  stop -t 1       one `stop -t 1` naming all N (busybox's sleep, pid 1, ignores SIGTERM:
                  every container waits out its second of grace)
  rm              one `rm` naming all N

Everything lives on a tmpfs inside a private mount and network namespace (the script
re-runs itself under `unshare -m -n`), so nothing it mounts is visible to the host.
The busybox image is made from Debian's busybox-static; tomato imports it, then
`tomato save` gives podman the very same image.  Tomato runs all its phases, then
podman all of its own: they never compete for the CPU.  Everything is removed at the
end, on failure too (containers, servers, the CLI's fork server, the tmpfs).

    sudo .venv/bin/python bench/load_bench.py [--count 200] [--skip-podman] [--skip-api]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TOMATO = str(BIN / "tomato")
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
IMAGE = {"tomato": "busybox", "podman": "localhost/busybox:latest"}


def sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}... failed: {proc.stderr.strip()[-400:]}")
    return proc  # type: ignore[no-any-return]


def timed(argv: list[str], env: dict[str, str] | None = None,
          check: Callable[[str], None] | None = None) -> float:
    """Seconds one command took; ``check`` looks at its output (is everything there?)."""
    t0 = time.perf_counter()
    proc = sh(argv, env=env, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if check is not None:
        check(proc.stdout)
    return wall


def median_of(n: int, argv: list[str], env: dict[str, str] | None = None,
              check: Callable[[str], None] | None = None) -> float:
    return statistics.median(timed(argv, env, check) for _ in range(n))


def lines(count: int, what: str, header: int = 1) -> Callable[[str], None]:
    def check(out: str) -> None:
        got = len(out.splitlines()) - header
        if got != count:
            raise RuntimeError(f"{what}: {got} lines, {count} expected")
    return check


def start_all(argv: list[str], count: int, env: dict[str, str] | None) -> tuple[float,
                                                                                list[str]]:
    """``count`` detached containers started at once: (wall seconds, their ids)."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=env, text=True)
             for _ in range(count)]
    outs = [p.communicate() for p in procs]
    wall = time.perf_counter() - t0
    failed = [err for p, (_, err) in zip(procs, outs, strict=True) if p.returncode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {count} failed: {failed[0][-300:]}")
    return wall, [out.strip() for out, _ in outs]


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


def stop_server(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Engine:
    """One engine's commands: ``cli`` runs it, ``server`` serves its API."""

    def __init__(self, name: str, cli: list[str], server: list[str],
                 env: dict[str, str] | None) -> None:
        self.name, self.cli, self.server_argv, self.env = name, cli, server, env

    def run_argv(self) -> list[str]:
        extra = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"] \
            if self.name == "podman" else []
        return [*self.cli, "run", "-d", "--network", "none", *extra, IMAGE[self.name],
                "sleep", "600"]

    def ids(self) -> list[str]:
        return subprocess.run([*self.cli, "ps", "-aq"], env=self.env, capture_output=True,
                              text=True).stdout.split()

    def remove_all(self) -> None:
        ids = self.ids()
        if ids:
            subprocess.run([*self.cli, "rm", "-f", *ids], env=self.env, capture_output=True)


def phases(eng: Engine, count: int, tmp: Path, api: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    out["run -d (s)"], ids = start_all(eng.run_argv(), count, eng.env)
    out["ps (s)"] = median_of(3, [*eng.cli, "ps"], eng.env, lines(count, "ps"))
    out["stats --no-stream (s)"] = median_of(3, [*eng.cli, "stats", "--no-stream"], eng.env,
                                             lines(count, "stats"))
    if api:
        sock = str(tmp / f"{eng.name}.sock")
        server = subprocess.Popen([*eng.server_argv, f"unix://{sock}"], env=eng.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_socket(sock, server, f"{eng.name}'s API server")
            denv = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
            denv.update(DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(tmp / "dockercfg"))
            out["docker stats --no-stream (s)"] = median_of(
                3, [DOCKER, "stats", "--no-stream"], denv, lines(count, "docker stats"))
        finally:
            stop_server(server)
    out["stop -t 1 (s)"] = timed([*eng.cli, "stop", "-t", "1", *ids], eng.env,
                                 lines(count, "stop", header=0))
    out["rm (s)"] = timed([*eng.cli, "rm", *ids], eng.env, lines(count, "rm", header=0))
    if eng.ids():
        raise RuntimeError(f"{eng.name}: containers left after rm")
    return out


def kill_strays(tmp: Path) -> None:
    """Last resort: the containers of monitors working under ``tmp`` that no `rm` saw
    (their records lost): killed, so that their monitors clean up and leave."""
    mark = str(tmp).encode()
    monitors = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if mark in f.read():
                    monitors.append(pid)
        except OSError:
            continue
    for pid in monitors:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                children = f.read().split()
        except OSError:
            continue
        for child in children:
            try:
                os.kill(int(child), signal.SIGKILL)
            except ProcessLookupError:
                pass
    if monitors:
        time.sleep(2)  # their monitors record the exits and delete the cgroups


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200, help="containers (default 200)")
    ap.add_argument("--skip-podman", action="store_true")
    ap.add_argument("--skip-api", action="store_true", help="no `docker stats` phase")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("load_bench: run as root", file=sys.stderr)
        return 1
    if args.count < 1:
        print("load_bench: --count must be at least 1", file=sys.stderr)
        return 1
    if not os.environ.get("TOMATO_BENCH_PRIVATE"):
        os.environ["TOMATO_BENCH_PRIVATE"] = "1"
        os.execvp("unshare", ["unshare", "-m", "-n", "--propagation", "private",
                              sys.executable, __file__, *sys.argv[1:]])
    sh(["ip", "link", "set", "lo", "up"])
    tmp = Path(tempfile.mkdtemp(prefix="tomato-loadbench-"))
    sh(["mount", "-t", "tmpfs", "-o", "size=8g", "tomato-bench", str(tmp)])
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "src"))
    from helpers.rootfs import build_busybox_rootfs

    from tomato.cli import forkserver

    api = not args.skip_api and os.path.exists(DOCKER)
    podman_here = not args.skip_podman and shutil.which("podman") is not None
    root = tmp / "tomato"
    pod = tmp / "podman"
    podman_cli = ["podman", "--root", str(pod / "root"), "--runroot", str(pod / "run"),
                  "--tmpdir", str(pod / "tmp"), "--cgroup-manager=cgroupfs",
                  "--events-backend=file", "--runtime", "runc"]
    engines = [Engine("tomato", [TOMATO], [TOMATO, "serve", "--host"],
                      {**os.environ, "TOMATO_ROOT": str(root)})]
    if podman_here:
        engines.append(Engine("podman", podman_cli,
                              [*podman_cli, "system", "service", "--time=0"], None))
    results: dict[str, dict[str, float]] = {}
    try:
        (tmp / "dockercfg").mkdir()
        rootfs = build_busybox_rootfs(tmp / "rootfs")
        sh(["tar", "-C", str(rootfs), "-cf", str(tmp / "bb.tar"), "."])
        sh([TOMATO, "import", str(tmp / "bb.tar"), "busybox:latest"], env=engines[0].env)
        sh([TOMATO, "save", "-o", str(tmp / "bb-docker.tar"), "busybox:latest"],
           env=engines[0].env)
        if podman_here:
            sh([*podman_cli, "load", "-i", str(tmp / "bb-docker.tar")])
        for eng in engines:
            for phase, value in phases(eng, args.count, tmp, api).items():
                results.setdefault(phase, {})[eng.name] = value
    finally:
        for eng in engines:
            eng.remove_all()
        if podman_here:
            subprocess.run([*podman_cli, "system", "reset", "-f"], capture_output=True)
        server = forkserver.server_pid(str(root))  # the CLI's, left by our commands
        if server:
            os.kill(server, signal.SIGTERM)
        kill_strays(tmp)
        subprocess.run(["umount", "-l", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.count} containers")
    print(f"{'phase':<30}{'tool':<8}{'value':>10}{'tomato/x':>10}")
    for name, by_tool in results.items():
        for tool, value in by_tool.items():
            ratio = by_tool["tomato"] / value if value else float("nan")
            print(f"{name:<30}{tool:<8}{value:>10.2f}{ratio:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
