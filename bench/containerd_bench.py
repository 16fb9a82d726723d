#!/usr/bin/env python3
"""containerd driving tomato-runtime beside containerd driving runc, in one run.

One private containerd (own config, root, state and sockets on a tmpfs; the cri
plugin disabled; see tests/helpers/containerd.py) with a busybox image made by
umoci.  Per iteration, alternating runtimes so drift hits both alike:

  run --rm   `ctr run --rm --runc-binary RUNTIME busybox ID true` (shim start,
             create, start, exit, delete, shim exit: what a user waits for)
  exec       `ctr task exec` of `true` in a running container (the runtime's
             exec path under the shim)

Prints medians and the ratio tomato/runc.  The whole run lives in a private
mount namespace (the script re-executes itself under `unshare -m`), so the
tmpfs and containerd's overlay mounts are invisible to the host and vanish with
it.  Not a test: run it by hand as root (needs containerd, ctr, umoci, runc).

    sudo .venv/bin/python bench/containerd_bench.py [-n 20] [--runtime NAME=PATH]
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
TOMATO = str(Path(sys.executable).parent / "tomato-runtime")
WARMUP = 3


def check(r: subprocess.CompletedProcess[str], what: str) -> None:
    if r.returncode != 0:
        raise RuntimeError(f"{what} failed: {r.stderr.strip()}")


def bench(n: int, extra: dict[str, str]) -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.containerd import Containerd, Runtime, build_busybox_archive
    from helpers.rootfs import build_busybox_rootfs

    runc = shutil.which("runc")
    peers = {"tomato": TOMATO, **({"runc": runc} if runc else {}), **extra}
    if runc is None:
        print("runc: not installed, no ratio", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="tomato-ctr-bench-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tomato-ctr-bench", str(tmp)],
                   check=True)
    try:
        rootfs = build_busybox_rootfs(tmp / "rootfs")
        (tmp / "image").mkdir()
        archive = build_busybox_archive(rootfs, tmp / "image")
        runtimes = {}
        for name, binary in peers.items():
            root = tmp / f"{name}-root"
            root.mkdir()
            # No logging wrapper here: the shim calls the binary itself.
            runtimes[name] = Runtime(name, binary, root, Path(binary), tmp / "unused")
        results: dict[str, dict[str, list[float]]] = {"run --rm": {}, "exec": {}}
        with Containerd(tmp / "c") as ctrd:
            ctrd.import_image(archive)
            for name, rt in runtimes.items():
                check(ctrd.run(rt, f"sleeper-{name}", "sleep", "100000", opts=["--detach"]),
                      f"{name}: ctr run -d")
            for i in range(n + WARMUP):
                for name, rt in runtimes.items():
                    t0 = time.perf_counter()
                    r = ctrd.run(rt, f"{name}-{i}", "true", opts=["--rm"])
                    t_run = time.perf_counter() - t0
                    check(r, f"{name}: ctr run --rm")
                    t0 = time.perf_counter()
                    r = ctrd.exec(f"sleeper-{name}", f"e{i}", "true")
                    t_exec = time.perf_counter() - t0
                    check(r, f"{name}: ctr task exec")
                    if i >= WARMUP:
                        results["run --rm"].setdefault(name, []).append(t_run)
                        results["exec"].setdefault(name, []).append(t_exec)
        if ctrd.forced:
            print("teardown had to clean up: " + "; ".join(ctrd.forced), file=sys.stderr)
    finally:
        subprocess.run(["umount", "-l", str(tmp)], check=False)
        os.rmdir(tmp)

    print(f"ctr against a private containerd, {n} iterations each (after {WARMUP} warm-ups)")
    print(f"{'benchmark':<11}{'runtime':<9}{'median ms':>10}{'min ms':>9}{'vs runc':>9}")
    for kind, by_name in results.items():
        for name, times in by_name.items():
            med = statistics.median(times) * 1000
            ratio = (med / (statistics.median(by_name["runc"]) * 1000)
                     if "runc" in by_name else float("nan"))
            print(f"{kind:<11}{name:<9}{med:>10.1f}{min(times) * 1000:>9.1f}{ratio:>8.2f}x")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="timed iterations per runtime")
    ap.add_argument("--runtime", action="append", default=[], metavar="NAME=PATH",
                    help="another OCI runtime beside them (e.g. an older tomato-runtime)")
    ap.add_argument("--in-private-ns", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("containerd_bench: run as root", file=sys.stderr)
        return 1
    missing = [t for t in ("containerd", "ctr", "umoci") if shutil.which(t) is None]
    if missing:
        print(f"containerd_bench: needs {', '.join(missing)}", file=sys.stderr)
        return 1
    if not args.in_private_ns:
        extra = [f"--runtime={r}" for r in args.runtime]
        return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                               __file__, "--in-private-ns", "-n", str(args.n), *extra]).returncode
    return bench(args.n, dict(r.partition("=")[::2] for r in args.runtime))


if __name__ == "__main__":
    sys.exit(main())
