#!/usr/bin/env python3
"""The engine beside containerd's ctr and podman, in one run, on one busybox image.

  run --rm      `tomato run --rm --network none busybox true` against
                `ctr run --rm` (runc) and `podman run --rm --network=none` (runc)
  50 detached   50 `run -d busybox sleep 600` started at once (concurrently), wall time
                until every one has returned; tomato and podman
  memory        MemAvailable before and after 50 idle detached containers, per container

Everything lives on a tmpfs inside a private mount namespace (the script re-runs
itself under `unshare -m`), so nothing it mounts is visible to the host.  The
busybox image is made from Debian's busybox-static; tomato imports it, then
`tomato save` gives podman and containerd the very same image.

    sudo .venv/bin/python bench/engine_bench.py [-n 20] [--skip-podman] [--skip-ctr]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TOMATO = str(BIN / "tomato")
FLEET = 50


def sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed: {proc.stderr.strip()[-400:]}")
    return proc  # type: ignore[no-any-return]


def timed(argv: list[str], n: int, env: dict[str, str] | None = None) -> list[float]:
    times = []
    for i in range(n + 3):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return times


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def fleet(start: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Start FLEET detached containers at once; return (wall seconds, bytes per container)."""
    before = settled_mem_available()
    t0 = time.perf_counter()
    procs = [subprocess.Popen(start, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=env) for _ in range(FLEET)]
    failures = [p for p in procs if p.wait() != 0]
    wall = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{len(failures)} of {FLEET} failed: "
                           f"{failures[0].stderr.read().decode()[-300:]}")  # type: ignore[union-attr]
    per = (before - settled_mem_available()) / FLEET
    return wall, per


def settled_mem_available(limit: float = 15.0) -> int:
    """MemAvailable once the containers are idle: the start-up's exited processes and
    RCU-freed kernel objects come back over a few seconds, so sample until two
    readings a second apart agree within 1 MB (bounded), the same for every tool."""
    time.sleep(2)
    last = mem_available()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(1)
        now = mem_available()
        if abs(now - last) < (1 << 20):
            return now
        last = now
    return last


class Podman:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.flags = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
                      "--tmpdir", str(base / "tmp"), "--cgroup-manager=cgroupfs",
                      "--events-backend=file", "--runtime", "runc"]

    def run_args(self, *extra: str) -> list[str]:
        return [*self.flags, "run", "--ulimit", "nofile=20000:20000", "--ulimit",
                "nproc=32768:32768", *extra]

    def cleanup(self) -> None:
        subprocess.run([*self.flags, "rm", "-af", "-t", "0"], capture_output=True)
        subprocess.run([*self.flags, "system", "reset", "-f"], capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--skip-podman", action="store_true")
    ap.add_argument("--skip-ctr", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("engine_bench: run as root", file=sys.stderr)
        return 1
    if not os.environ.get("TOMATO_BENCH_PRIVATE"):
        os.environ["TOMATO_BENCH_PRIVATE"] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                              __file__, *sys.argv[1:]])
    tmp = Path(tempfile.mkdtemp(prefix="tomato-bench-"))
    sh(["mount", "-t", "tmpfs", "-o", "size=8g", "tomato-bench", str(tmp)])
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.rootfs import build_busybox_rootfs

    env = {**os.environ, "TOMATO_ROOT": str(tmp / "tomato")}
    results: dict[str, dict[str, float]] = {}
    podman = Podman(tmp / "podman")
    try:
        rootfs = build_busybox_rootfs(tmp / "rootfs")
        sh(["tar", "-C", str(rootfs), "-cf", str(tmp / "bb.tar"), "."])
        sh([TOMATO, "import", str(tmp / "bb.tar"), "busybox:latest"], env=env)
        sh([TOMATO, "save", "-o", str(tmp / "bb-docker.tar"), "busybox:latest"], env=env)

        run_times = {"tomato": timed([TOMATO, "run", "--rm", "--network", "none", "busybox",
                                      "true"], args.n, env)}
        if not args.skip_ctr and shutil.which("ctr") and shutil.which("containerd"):
            from helpers.containerd import Containerd, Runtime

            with Containerd(tmp / "ctrd") as ctrd:  # __enter__ starts it
                check = ctrd.ctr("image", "import", str(tmp / "bb-docker.tar"), timeout=120)
                if check.returncode != 0:
                    raise RuntimeError(f"ctr image import: {check.stderr}")
                image = ctrd.ctr("image", "ls", "-q").stdout.split()[0]
                runc_bin = shutil.which("runc") or "runc"
                (tmp / "runc-root").mkdir()
                # runc itself as the shim's binary (no logging wrapper: nothing extra timed)
                runc = Runtime("runc", runc_bin, tmp / "runc-root", Path(runc_bin),
                               tmp / "runc-calls.log")
                times = []
                for i in range(args.n + 3):
                    run = ctrd.run_args(runc, f"b{i}", ["true"], opts=["--rm"])
                    run[run.index("--rm") + 1] = image  # the image we imported
                    argv = ctrd.ctr_argv(*run)
                    t0 = time.perf_counter()
                    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
                    if i >= 3:
                        times.append(time.perf_counter() - t0)
                run_times["ctr"] = times
        if not args.skip_podman and shutil.which("podman"):
            sh([*podman.flags, "load", "-i", str(tmp / "bb-docker.tar")])
            run_times["podman"] = timed(podman.run_args("--rm", "--network=none",
                                                        "localhost/busybox:latest", "true"),
                                        args.n)
        results["run --rm (ms)"] = {k: statistics.median(v) * 1000 for k, v in run_times.items()}

        wall, per = fleet([TOMATO, "run", "-d", "--network", "none", "busybox", "sleep", "600"],
                          env)
        results[f"{FLEET} detached (s)"] = {"tomato": wall}
        results["memory per container (MB)"] = {"tomato": per / 1e6}
        subprocess.run([TOMATO, "rm", "-f", *sh([TOMATO, "ps", "-aq"], env=env).stdout.split()],
                       env=env, capture_output=True)
        if not args.skip_podman and shutil.which("podman"):
            wall, per = fleet(podman.run_args("-d", "--network=none", "localhost/busybox:latest",
                                              "sleep", "600"))
            results[f"{FLEET} detached (s)"]["podman"] = wall
            results["memory per container (MB)"]["podman"] = per / 1e6
            podman.cleanup()
    finally:
        subprocess.run([TOMATO, "rm", "-f", *subprocess.run(
            [TOMATO, "ps", "-aq"], env=env, capture_output=True, text=True).stdout.split()],
            env=env, capture_output=True)
        podman.cleanup()
        subprocess.run(["umount", "-l", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'benchmark':<28}{'tool':<8}{'value':>10}{'tomato/x':>10}")
    for name, by_tool in results.items():
        for tool, value in by_tool.items():
            ratio = by_tool["tomato"] / value if value else float("nan")
            print(f"{name:<28}{tool:<8}{value:>10.2f}{ratio:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
