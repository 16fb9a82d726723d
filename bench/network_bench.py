#!/usr/bin/env python3
"""`run --rm busybox true` on the default bridge network: tomato beside podman, in one run.

  tomato bridge (alone)  the only container, run after run: the default bridge
                         (tomato0) and its nft rules stay between them, as Docker's
                         docker0 (only the root's very first container makes them)
  tomato bridge (warm)   another container sits on the default network, as on any
                         host that runs containers
  tomato none            the same without networking, for reference
  podman bridge          `podman run --rm` (netavark, bridge podman0) and --network=none
  --ipv6                 also a user network, IPv4 only and dual-stack (a ULA /64
                         beside it, NAT66), for both engines, each with a sleeper on it

Everything runs in a private mount *and network* namespace (the script re-runs
itself under `unshare -m -n`): the bridges, veths, nft/iptables rules and
ip_forward of both engines stay off the host, and the netns files podman
makes under /run/netns land on a private tmpfs.  Storage is a tmpfs.  The
busybox image is made from Debian's busybox-static; tomato imports it and
`tomato save` gives podman the very same image.

    sudo .venv/bin/python bench/network_bench.py [-n 20] [--skip-podman] [--ipv6]
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


def sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed: {proc.stderr.strip()[-400:]}")
    return proc  # type: ignore[no-any-return]


def timed(argv: list[str], n: int, env: dict[str, str] | None = None) -> list[float]:
    times = []
    for i in range(n + 3):  # three warm-up runs
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return times


def podman_flags(base: Path) -> list[str]:
    # Every setting as a flag: through the environment podman stalls 20 s at cleanup.
    return ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
            "--tmpdir", str(base / "tmp"), "--cgroup-manager=cgroupfs",
            "--events-backend=file", "--runtime", "runc"]


def podman_run(base: Path, network: str) -> list[str]:
    return [*podman_flags(base), "run", "--rm", f"--network={network}", "--ulimit",
            "nofile=20000:20000", "--ulimit", "nproc=32768:32768", "localhost/busybox:latest",
            "true"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--skip-podman", action="store_true")
    ap.add_argument("--ipv6", action="store_true", help="user networks: IPv4 and dual-stack")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("network_bench: run as root", file=sys.stderr)
        return 1
    if not os.environ.get("TOMATO_BENCH_PRIVATE"):
        os.environ["TOMATO_BENCH_PRIVATE"] = "1"
        os.execvp("unshare", ["unshare", "-m", "-n", "--propagation", "private",
                              sys.executable, __file__, *sys.argv[1:]])
    sh(["ip", "link", "set", "lo", "up"])
    os.makedirs("/run/netns", exist_ok=True)
    sh(["mount", "-t", "tmpfs", "tomato-bench-netns", "/run/netns"])  # private: ours only
    tmp = Path(tempfile.mkdtemp(prefix="tomato-netbench-"))
    sh(["mount", "-t", "tmpfs", "-o", "size=8g", "tomato-bench", str(tmp)])
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.rootfs import build_busybox_rootfs

    env = {**os.environ, "TOMATO_ROOT": str(tmp / "tomato")}
    pod = tmp / "podman"
    times: dict[str, list[float]] = {}
    try:
        rootfs = build_busybox_rootfs(tmp / "rootfs")
        sh(["tar", "-C", str(rootfs), "-cf", str(tmp / "bb.tar"), "."])
        sh([TOMATO, "import", str(tmp / "bb.tar"), "busybox:latest"], env=env)
        sh([TOMATO, "save", "-o", str(tmp / "bb-docker.tar"), "busybox:latest"], env=env)
        run = [TOMATO, "run", "--rm", "busybox", "true"]
        times["tomato bridge (alone)"] = timed(run, args.n, env)
        sleeper = sh([TOMATO, "run", "-d", "busybox", "sleep", "600"], env=env).stdout.strip()
        times["tomato bridge (warm)"] = timed(run, args.n, env)
        sh([TOMATO, "rm", "-f", sleeper], env=env)
        times["tomato none"] = timed([TOMATO, "run", "--rm", "--network", "none", "busybox",
                                      "true"], args.n, env)
        if args.ipv6:
            for net, flags in (("v4net", ["--subnet", "10.77.0.0/24"]),
                               ("dualnet", ["--ipv6", "--subnet", "10.78.0.0/24", "--subnet",
                                            "fd00:78::/64"])):
                sh([TOMATO, "network", "create", *flags, net], env=env)
                sh([TOMATO, "run", "-d", "--network", net, "busybox", "sleep", "600"], env=env)
                times[f"tomato {net}"] = timed([TOMATO, "run", "--rm", "--network", net,
                                                "busybox", "true"], args.n, env)
        if not args.skip_podman and shutil.which("podman"):
            sh([*podman_flags(pod), "load", "-i", str(tmp / "bb-docker.tar")])
            times["podman bridge"] = timed(podman_run(pod, "bridge"), args.n)
            times["podman none"] = timed(podman_run(pod, "none"), args.n)
            if args.ipv6:
                for net, flags in (("v4net", ["--subnet", "10.97.0.0/24"]),
                                   ("dualnet", ["--ipv6", "--subnet", "10.98.0.0/24",
                                                "--subnet", "fd00:98::/64"])):
                    sh([*podman_flags(pod), "network", "create", *flags, net])
                    sh([*podman_flags(pod), "run", "-d", f"--network={net}", "--ulimit",
                        "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
                        "localhost/busybox:latest", "sleep", "600"])
                    times[f"podman {net}"] = timed(podman_run(pod, net), args.n)
    finally:
        ids = subprocess.run([TOMATO, "ps", "-aq"], env=env, capture_output=True,
                             text=True).stdout.split()
        if ids:
            subprocess.run([TOMATO, "rm", "-f", *ids], env=env, capture_output=True)
        if shutil.which("podman"):
            subprocess.run([*podman_flags(pod), "rm", "-af", "-t", "0"], capture_output=True)
            subprocess.run([*podman_flags(pod), "system", "reset", "-f"], capture_output=True)
        subprocess.run(["umount", "-l", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    ref = medians.get("podman bridge")
    print(f"{'run --rm busybox true':<24}{'median ms':>10}{'min ms':>9}{'/ podman bridge':>17}")
    for name, value in medians.items():
        ratio = f"{value / ref:.2f}x" if ref else "-"
        print(f"{name:<24}{value:>10.1f}{min(times[name]) * 1000:>9.1f}{ratio:>17}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
