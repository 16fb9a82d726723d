#!/usr/bin/env python3
"""tomato-runtime beside runc and crun, in one run, on the same busybox bundle.

Times two things per runtime and prints medians and the ratio to runc:
  run        `RUNTIME run --bundle B ID` of /bin/true (start -> exit -> cleanup)
  lifecycle  `create`, `start`, wait for exit, `delete` (three invocations)

Storage (bundle and state roots) is on a tmpfs this script mounts.  crun 1.8
refuses this machine's hybrid cgroups, so its whole loop runs inside one
private mount namespace with /sys/fs/cgroup/unified unmounted (the wrapper's
~3 ms is paid once, not per iteration).

    sudo .venv/bin/python bench/runtime_bench.py [-n 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TOMATO = str(Path(sys.executable).parent / "tomato-runtime")


def loop(argv: list[str]) -> None:
    """Inner loop (possibly inside crun's wrapper): print timings as JSON."""
    kind, runtime, root, bundle, n = argv[0], argv[1], argv[2], argv[3], int(argv[4])
    base = [runtime, "--root", root]
    times = []
    for i in range(n + 3):  # 3 warm-ups
        cid = f"b{os.getpid()}-{i}"
        t0 = time.perf_counter()
        if kind == "run":
            subprocess.run([*base, "run", "--bundle", bundle, cid], check=True,
                           stdin=subprocess.DEVNULL)
        else:
            subprocess.run([*base, "create", "--bundle", bundle, cid], check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            subprocess.run([*base, "start", cid], check=True)
            state = {"status": "running"}
            for _ in range(2000):
                out = subprocess.run([*base, "state", cid], capture_output=True, text=True)
                state = json.loads(out.stdout)
                if state["status"] == "stopped":
                    break
            subprocess.run([*base, "delete", cid], check=True)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    print(json.dumps(times))


def measure(kind: str, name: str, runtime: str, root: Path, bundle: Path, n: int) -> list[float]:
    inner = [sys.executable, __file__, "--loop", kind, runtime, str(root), str(bundle), str(n)]
    if name == "crun":
        inner = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"', "sh", *inner]
    out = subprocess.run(inner, check=True, capture_output=True, text=True).stdout
    times: list[float] = json.loads(out.strip().splitlines()[-1])
    return times


def make_bundle(path: Path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.rootfs import build_busybox_rootfs

    from tomato.oci.defaults import default_spec

    build_busybox_rootfs(path / "rootfs")
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    (path / "config.json").write_text(json.dumps(spec))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--loop":
        loop(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30, help="iterations per runtime")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("runtime_bench: run as root", file=sys.stderr)
        return 1
    if not os.environ.get("TOMATO_BENCH_PRIVATE"):
        # Our tmpfs in a mount namespace of our own: nobody else sees or unmounts it.
        os.environ["TOMATO_BENCH_PRIVATE"] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                              __file__, *sys.argv[1:]])
    peers = {"tomato": TOMATO, "runc": shutil.which("runc"), "crun": shutil.which("crun")}
    tmp = Path(tempfile.mkdtemp(prefix="tomato-bench-"))
    subprocess.run(["mount", "-t", "tmpfs", "tomato-bench", str(tmp)], check=True)
    try:
        bundle = tmp / "bundle"
        make_bundle(bundle)
        results: dict[str, dict[str, float]] = {}
        for kind in ("run", "lifecycle"):
            for name, binary in peers.items():
                if binary is None:
                    print(f"{name}: not installed, skipped", file=sys.stderr)
                    continue
                root = tmp / f"state-{name}"
                times = measure(kind, name, binary, root, bundle, args.n)
                results.setdefault(kind, {})[name] = statistics.median(times) * 1000
        print(f"{'benchmark':<11}{'runtime':<9}{'median ms':>10}{'vs runc':>9}")
        for kind, by_name in results.items():
            for name, ms in by_name.items():
                ratio = ms / by_name["runc"] if "runc" in by_name else float("nan")
                print(f"{kind:<11}{name:<9}{ms:>10.1f}{ratio:>8.2f}x")
    finally:
        subprocess.run(["umount", "-l", str(tmp)], check=False)
        os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
