#!/usr/bin/env python3
"""Docker's namespace modes, tomato beside podman (runc), in one run, on one busybox image.

  default        `run --rm --network none busybox true`
  host modes     the same with --pid host --ipc host --uts host --cgroupns host
  joined         --pid container:D --ipc container:D (D a running, shareable donor)
  privileged     --privileged (the host's /dev devices made in the container's /dev)

Like engine_bench.py: everything on a tmpfs in a private mount namespace, the image
imported into tomato and `tomato save`d for podman.

    sudo .venv/bin/python bench/namespaces_bench.py [-n 15] [--skip-podman]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_bench import REPO, TOMATO, Podman, sh, timed  # noqa: E402

CASES = {
    "default": [],
    "host modes": ["--pid", "host", "--ipc", "host", "--uts", "host", "--cgroupns", "host"],
    "joined": ["--pid", "container:donor", "--ipc", "container:donor"],
    "privileged": ["--privileged"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15)
    ap.add_argument("--skip-podman", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("namespaces_bench: run as root", file=sys.stderr)
        return 1
    if not os.environ.get("TOMATO_BENCH_PRIVATE"):
        os.environ["TOMATO_BENCH_PRIVATE"] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                              __file__, *sys.argv[1:]])
    tmp = Path(tempfile.mkdtemp(prefix="tomato-bench-"))
    sh(["mount", "-t", "tmpfs", "-o", "size=4g", "tomato-bench", str(tmp)])
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.rootfs import build_busybox_rootfs

    env = {**os.environ, "TOMATO_ROOT": str(tmp / "tomato")}
    podman = Podman(tmp / "podman")
    use_podman = not args.skip_podman and shutil.which("podman") is not None
    results: dict[str, dict[str, float]] = {}
    try:
        rootfs = build_busybox_rootfs(tmp / "rootfs")
        sh(["tar", "-C", str(rootfs), "-cf", str(tmp / "bb.tar"), "."])
        sh([TOMATO, "import", str(tmp / "bb.tar"), "busybox:latest"], env=env)
        sh([TOMATO, "save", "-o", str(tmp / "bb-docker.tar"), "busybox:latest"], env=env)
        sh([TOMATO, "run", "-d", "--name", "donor", "--network", "none", "--ipc", "shareable",
            "busybox", "sleep", "3600"], env=env)
        if use_podman:
            sh([*podman.flags, "load", "-i", str(tmp / "bb-docker.tar")])
            sh(podman.run_args("-d", "--name", "donor", "--network=none", "--ipc", "shareable",
                               "localhost/busybox:latest", "sleep", "3600"))
        for case, flags in CASES.items():
            row = {"tomato": statistics.median(timed(
                [TOMATO, "run", "--rm", "--network", "none", *flags, "busybox", "true"],
                args.n, env)) * 1000}
            if use_podman:
                row["podman"] = statistics.median(timed(podman.run_args(
                    "--rm", "--network=none", *flags, "localhost/busybox:latest", "true"),
                    args.n)) * 1000
            results[f"run --rm {case} (ms)"] = row
    finally:
        subprocess.run([TOMATO, "rm", "-f", "donor"], env=env, capture_output=True)
        podman.cleanup()
        subprocess.run(["umount", "-l", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'benchmark':<34}{'tool':<8}{'value':>10}{'tomato/x':>10}")
    for name, by_tool in results.items():
        for tool, value in by_tool.items():
            ratio = by_tool["tomato"] / value if value else float("nan")
            print(f"{name:<34}{tool:<8}{value:>10.2f}{ratio:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
