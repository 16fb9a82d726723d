#!/usr/bin/env python3
"""Pods through containerd's CRI plugin: the tomato runtime handler beside runc's, in one run.

One private node (tests/helpers/cri.py: containerd with the CRI plugin, CNI bridge,
a local registry with the stand-in images, namespaces of its own) with both
handlers.  Per iteration, alternating handlers so drift hits both alike:

  pod+container  `crictl run --runtime H container.json pod.json`: pod sandbox
                 (pause, network), then one container created and started; timed
                 from the call until the container runs (crictl returns then)
  exec           `crictl exec CID true` in a running container of a pod per handler
                 (the runtime's exec under the shim, plus the CRI's streaming)

The pods are stopped and removed between iterations, untimed.  Prints medians and
the ratio tomato/runc.  Everything lives on a tmpfs in a mount namespace of its
own (the script re-executes itself under `unshare -m`).  Not a test: run it by
hand as root (needs what the CRI lane needs; crictl is built once from the vendored
cri-tools source by tools/cri/build-cri-tools.sh).

    sudo .venv/bin/python bench/cri_bench.py [-n 10] [--handler NAME=PATH]
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
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WARMUP = 2


def bench(n: int, extra: dict[str, str]) -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.cri import (
        TOMATO_RUNTIME,
        CriNode,
        build_cri_tools,
        container_config,
        missing_tools,
        pod_config,
    )
    from helpers.cri_images import BUSYBOX, build_layout, find_busybox

    missing = missing_tools()
    if missing:
        print(f"cri_bench: needs {', '.join(missing)}", file=sys.stderr)
        return 1
    tools, why = build_cri_tools()
    if tools is None:
        print(f"cri_bench: no crictl: {why}", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="tomato-cri-bench-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tomato-cri-bench", str(tmp)],
                   check=True)
    results: dict[str, dict[str, list[float]]] = {"pod+container": {}, "exec": {}}
    try:
        layout = build_layout(tmp / "images", find_busybox(tools.parent))
        (tmp / "logs").mkdir()

        def write(name: str, data: object) -> str:
            (tmp / name).write_text(json.dumps(data))
            return str(tmp / name)

        def crictl(*args: str) -> str:
            r = node.crictl(*args)
            if r.returncode != 0:
                raise RuntimeError(f"crictl {' '.join(args)}: {r.stderr.strip()}")
            return r.stdout.strip()

        container = write("c.json", container_config("c", BUSYBOX, ["sleep", "100000"]))
        handlers = {"runc": shutil.which("runc") or "runc", "tomato": TOMATO_RUNTIME, **extra}
        with CriNode(tmp / "node", layout, tools, handlers) as node:
            crictl("pull", BUSYBOX)
            sleepers = {}
            for h in handlers:
                pod = write(f"sleeper-{h}.json",
                            pod_config(f"sleeper-{h}", uuid.uuid4().hex, tmp / "logs"))
                cid = crictl("run", "--no-pull", "--runtime", h, container, pod)
                sleepers[h] = cid
            for i in range(n + WARMUP):
                for h in handlers:
                    pod = write("p.json", pod_config(f"b{i}-{h}", uuid.uuid4().hex,
                                                     tmp / "logs"))
                    t0 = time.perf_counter()
                    cid = crictl("run", "--no-pull", "--runtime", h, container, pod)
                    t_run = time.perf_counter() - t0
                    pod_id = json.loads(crictl("inspect", "-o", "json", cid))["info"][
                        "sandboxID"]
                    t0 = time.perf_counter()
                    crictl("exec", sleepers[h], "true")
                    t_exec = time.perf_counter() - t0
                    crictl("stopp", pod_id)
                    crictl("rmp", pod_id)
                    if i >= WARMUP:
                        results["pod+container"].setdefault(h, []).append(t_run)
                        results["exec"].setdefault(h, []).append(t_exec)
            crictl("rmp", "--all", "--force")
        if node.forced:
            print("teardown had to clean up: " + "; ".join(node.forced), file=sys.stderr)
    finally:
        subprocess.run(["umount", "-l", str(tmp)], check=False)
        os.rmdir(tmp)

    print(f"crictl against a private containerd (CRI), {n} iterations each "
          f"(after {WARMUP} warm-ups)")
    print(f"{'benchmark':<15}{'handler':<9}{'median ms':>10}{'min ms':>9}{'vs runc':>9}")
    for kind, by_name in results.items():
        for name, times in by_name.items():
            med = statistics.median(times) * 1000
            ratio = med / (statistics.median(by_name["runc"]) * 1000)
            print(f"{kind:<15}{name:<9}{med:>10.1f}{min(times) * 1000:>9.1f}{ratio:>8.2f}x")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10, help="timed iterations per handler")
    ap.add_argument("--handler", action="append", default=[], metavar="NAME=PATH",
                    help="another runtime handler beside them (e.g. an older tomato-runtime)")
    ap.add_argument("--in-private-ns", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("cri_bench: run as root", file=sys.stderr)
        return 1
    if not args.in_private_ns:
        extra = [f"--handler={h}" for h in args.handler]
        return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                               __file__, "--in-private-ns", "-n", str(args.n), *extra]).returncode
    return bench(args.n, dict(h.partition("=")[::2] for h in args.handler))


if __name__ == "__main__":
    sys.exit(main())
