#!/usr/bin/env python3
"""tomato-runtime beside runc and crun, in one run, on the same busybox bundle.

Times two things per runtime and prints medians and the ratio to runc:
  run        `RUNTIME run --bundle B ID` of /bin/true (start -> exit -> cleanup)
  lifecycle  `create`, `start`, `state` until stopped, `delete` (what containerd's
             shim calls), and each of those verbs on its own
  exec       `exec ID true` in a running container (what crictl exec costs the runtime)

The machine is shared and noisy, so the runtimes take turns: ``--rounds`` rounds,
each running a few iterations of every runtime in turn, so that drift and other
people's load hit all of them alike.  The load average before and after is printed,
and beside each wall-clock median the median CPU time (user + system) of the runtime
processes, which other people's load disturbs less (for `run` it includes the
container's init, which the runtime reaps; a created init is not ours to count).

Storage (bundle and state roots) is on a tmpfs this script mounts.  crun 1.8
refuses this machine's hybrid cgroups, so each of its turns runs inside one
private mount namespace with /sys/fs/cgroup/unified unmounted (the wrapper's
~3 ms is paid once per turn, not per iteration).

    sudo .venv/bin/python bench/runtime_bench.py [-n 30] [--rounds 6] [--runtime NAME=PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
VERBS = ("create", "start", "state", "delete")


def loop(argv: list[str]) -> None:
    """Inner loop (possibly inside crun's wrapper): print timings as JSON."""
    kind, runtime, root, bundle, n, tag = (argv[0], argv[1], argv[2], argv[3], int(argv[4]),
                                           argv[5])
    base = [runtime, "--root", root]
    times: dict[str, list[float]] = {}

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def timed(verb: str, args: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        t0, c0 = time.perf_counter(), cpu()
        r = subprocess.run([*base, *args], **kwargs)  # type: ignore[call-overload]
        times.setdefault(verb, []).append(time.perf_counter() - t0)
        times.setdefault(verb + ":cpu", []).append(cpu() - c0)
        return r

    if kind == "exec":
        cid = f"b{tag}-sleeper"
        sleeper = bundle + "-sleeper"
        subprocess.run([*base, "run", "-d", "--bundle", sleeper, cid], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            for _ in range(n):
                timed("exec", ["exec", cid, "true"], check=True, stdin=subprocess.DEVNULL)
        finally:
            subprocess.run([*base, "delete", "--force", cid], check=False)
        print(json.dumps(times))
        return
    for i in range(n):
        cid = f"b{tag}-{i}"
        t0, c0 = time.perf_counter(), cpu()
        if kind == "run":
            subprocess.run([*base, "run", "--bundle", bundle, cid], check=True,
                           stdin=subprocess.DEVNULL)
        else:
            timed("create", ["create", "--bundle", bundle, cid], check=True,
                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            timed("start", ["start", cid], check=True)
            state = {"status": "running"}
            for _ in range(2000):
                out = timed("state", ["state", cid], capture_output=True, text=True)
                state = json.loads(out.stdout)
                if state["status"] == "stopped":
                    break
            timed("delete", ["delete", cid], check=True)
        times.setdefault(kind, []).append(time.perf_counter() - t0)
        times.setdefault(kind + ":cpu", []).append(cpu() - c0)
    print(json.dumps(times))


def turn(kind: str, name: str, runtime: str, root: Path, bundle: Path, n: int,
         tag: str) -> dict[str, list[float]]:
    inner = [sys.executable, __file__, "--loop", kind, runtime, str(root), str(bundle), str(n),
             tag]
    if name == "crun":
        inner = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"', "sh", *inner]
    out = subprocess.run(inner, check=True, capture_output=True, text=True).stdout
    times: dict[str, list[float]] = json.loads(out.strip().splitlines()[-1])
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
    sleeper = path.with_name(path.name + "-sleeper")  # the same rootfs, sleeping
    sleeper.mkdir()
    spec["root"]["path"] = str(path / "rootfs")
    spec["process"]["args"] = ["sleep", "1000000"]
    (sleeper / "config.json").write_text(json.dumps(spec))


def load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--loop":
        loop(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30, help="timed iterations per runtime")
    ap.add_argument("--rounds", type=int, default=6, help="turns each runtime takes")
    ap.add_argument("--only", default="", help="comma-separated runtimes (tomato,runc,crun)")
    ap.add_argument("--runtime", action="append", default=[], metavar="NAME=PATH",
                    help="another runtime to time beside them (e.g. an older tomato)")
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
    if args.only:
        peers = {k: v for k, v in peers.items() if k in args.only.split(",")}
    for extra in args.runtime:
        name, _, path = extra.partition("=")
        peers[name] = path
    for name in [k for k, v in peers.items() if v is None]:
        print(f"{name}: not installed, skipped", file=sys.stderr)
        del peers[name]
    per_turn = max(1, -(-args.n // args.rounds))
    tmp = Path(tempfile.mkdtemp(prefix="tomato-bench-"))
    subprocess.run(["mount", "-t", "tmpfs", "tomato-bench", str(tmp)], check=True)
    before = load()
    try:
        bundle = tmp / "bundle"
        make_bundle(bundle)
        results: dict[str, dict[str, list[float]]] = {}
        for name, binary in peers.items():  # warm-ups: page cache, seccomp cache
            for kind in ("run", "lifecycle", "exec"):
                turn(kind, name, binary, tmp / f"state-{name}", bundle, 3, f"w{kind[0]}")
        for r in range(args.rounds):
            for kind in ("run", "lifecycle", "exec"):
                for name, binary in peers.items():
                    got = turn(kind, name, binary, tmp / f"state-{name}", bundle, per_turn,
                               f"{r}{kind[0]}")
                    for verb, ts in got.items():
                        results.setdefault(verb, {}).setdefault(name, []).extend(ts)
        print(f"{per_turn * args.rounds} iterations per runtime in {args.rounds} alternating "
              f"rounds; load average {before} before, {load()} after")
        print(f"{'benchmark':<11}{'runtime':<9}{'median ms':>10}{'vs runc':>9}"
              f"{'cpu ms':>9}{'vs runc':>9}")
        for kind in ("run", "lifecycle", *VERBS, "exec"):
            by_name = {k: statistics.median(v) * 1000 for k, v in results.get(kind, {}).items()}
            cpu = {k: statistics.median(v) * 1000
                   for k, v in results.get(kind + ":cpu", {}).items()}
            for name, ms in by_name.items():
                ratio = ms / by_name["runc"] if "runc" in by_name else float("nan")
                cpu_ratio = cpu[name] / cpu["runc"] if cpu.get("runc") else float("nan")
                label = f" {kind}" if kind in VERBS else kind
                print(f"{label:<11}{name:<9}{ms:>10.1f}{ratio:>8.2f}x{cpu[name]:>9.1f}"
                      f"{cpu_ratio:>8.2f}x")
    finally:
        subprocess.run(["umount", "-l", str(tmp)], check=False)
        os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
