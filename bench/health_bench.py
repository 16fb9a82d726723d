#!/usr/bin/env python3
"""What a healthcheck costs a container's monitor: N detached busybox containers
without and with ``--health-cmd true``, the monitors' memory (RSS, PSS and private
bytes from /proc/PID/smaps_rollup: tomato-shim for tomato, conmon for podman) and the
processes beside them, sampled while the probes run; and the cost of one check.

  tomato            this tree's install
  tomato-baseline   --baseline-venv DIR: another install (the tree before a change)
  podman            conmon, the same containers (its healthchecks need systemd timers:
                    without systemd they do not run, so only its idle cost compares)

Everything runs in a private mount namespace, storage on a tmpfs.

    sudo .venv/bin/python bench/health_bench.py [-n 20] [--interval 1s]
         [--baseline-venv /path/to/other/.venv] [--skip-podman]
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

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:5])}... failed: {proc.stderr.strip()[-400:]}")
    return proc  # type: ignore[no-any-return]


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


def children_of(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(p) for p in f.read().split()]
    return out


def memory(pid: int) -> dict[str, int]:
    """kB: Rss, Pss, Private (clean + dirty) of one process."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[key] = int(rest.split()[0])
    return {"rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0),
            "private": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)}


def sample(monitors: dict[int, int], seconds: float) -> dict[str, float]:
    """Median memory of the monitors, and how many extra processes (probes) they had
    beside the container's init, on average over ``seconds`` (every 50 ms)."""
    mems = [memory(m) for m in monitors]
    extra: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        extra.append(sum(len([c for c in children_of(m) if c != init])
                         for m, init in monitors.items()))
        time.sleep(0.05)
    return {"rss": statistics.median(m["rss"] for m in mems),
            "pss": statistics.median(m["pss"] for m in mems),
            "private": statistics.median(m["private"] for m in mems),
            "probes running (mean)": statistics.mean(extra) if extra else 0.0,
            "probes running (max)": max(extra) if extra else 0}


def tomato_fleet(tomato: str, env: dict[str, str], n: int, health: list[str],
                 seconds: float) -> dict[str, float]:
    ids = [sh([tomato, "run", "-d", "--network", "none", *health, "busybox", "sleep", "600"],
              env=env).stdout.strip() for _ in range(n)]
    try:
        if health:  # until every container has had a check
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                states = json.loads(sh([tomato, "inspect", *ids], env=env).stdout)
                if all(s["State"].get("Health", {}).get("Log") for s in states):
                    break
                time.sleep(0.2)
        states = json.loads(sh([tomato, "inspect", *ids], env=env).stdout)
        monitors = {parent_of(s["State"]["Pid"]): s["State"]["Pid"] for s in states}
        result = sample(monitors, seconds)
        result["monitor"] = Path(os.readlink(f"/proc/{next(iter(monitors))}/exe")).name  # type: ignore[assignment]
        return result
    finally:
        subprocess.run([tomato, "rm", "-f", *ids], env=env, capture_output=True)


def one_check(tomato: str, env: dict[str, str]) -> float:
    """Wall seconds of one check (the healthprobe process), median of 10."""
    cid = sh([tomato, "run", "-d", "--network", "none", "--health-cmd", "true",
              "--health-interval", "1h", "busybox", "sleep", "600"], env=env).stdout.strip()
    try:
        cdir = Path(env["TOMATO_ROOT"]) / "containers" / cid
        python = Path(tomato).parent / "python"
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            subprocess.run([str(python), "-I", "-m", "tomato.engine.healthprobe", str(cdir)],
                           check=False, capture_output=True)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)
    finally:
        subprocess.run([tomato, "rm", "-f", cid], env=env, capture_output=True)


def podman_fleet(base: Path, image_tar: Path, n: int, seconds: float) -> dict[str, float]:
    flags = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
             "--tmpdir", str(base / "tmp"), "--cgroup-manager=cgroupfs",
             "--events-backend=file", "--runtime", "runc"]
    sh([*flags, "load", "-i", str(image_tar)])
    try:
        ids = [sh([*flags, "run", "-d", "--network=none", "--ulimit", "nofile=20000:20000",
                   "--ulimit", "nproc=32768:32768", "localhost/busybox:latest", "sleep",
                   "600"]).stdout.strip() for _ in range(n)]
        pids = [int(sh([*flags, "inspect", "-f", "{{.State.Pid}}", c]).stdout) for c in ids]
        monitors = {parent_of(p): p for p in pids}
        result = sample(monitors, seconds)
        result["monitor"] = Path(os.readlink(f"/proc/{next(iter(monitors))}/exe")).name  # type: ignore[assignment]
        return result
    finally:
        subprocess.run([*flags, "rm", "-af", "-t", "0"], capture_output=True)
        subprocess.run([*flags, "system", "reset", "-f"], capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--interval", default="1s", help="--health-interval of the probed fleet")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long to sample")
    ap.add_argument("--baseline-venv", type=Path)
    ap.add_argument("--skip-podman", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("health_bench: run as root", file=sys.stderr)
        return 1
    if not os.environ.get("TOMATO_BENCH_PRIVATE"):
        os.environ["TOMATO_BENCH_PRIVATE"] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                              __file__, *sys.argv[1:]])
    tmp = Path(tempfile.mkdtemp(prefix="tomato-health-bench-"))
    sh(["mount", "-t", "tmpfs", "-o", "size=4g", "tomato-health-bench", str(tmp)])
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.rootfs import build_busybox_rootfs

    probe = ["--health-cmd", "true", "--health-interval", args.interval]
    rows: list[tuple[str, str, dict[str, float]]] = []
    installs = [("tomato", str(BIN / "tomato"))]
    if args.baseline_venv:
        installs.append(("tomato-baseline", str(args.baseline_venv / "bin" / "tomato")))
    check_s = None
    try:
        rootfs = build_busybox_rootfs(tmp / "rootfs")
        sh(["tar", "-C", str(rootfs), "-cf", str(tmp / "bb.tar"), "."])
        for name, tomato in installs:
            env = {**os.environ, "TOMATO_ROOT": str(tmp / name)}
            sh([tomato, "import", str(tmp / "bb.tar"), "busybox:latest"], env=env)
            rows.append((name, "no healthcheck", tomato_fleet(tomato, env, args.n, [],
                                                              args.seconds)))
            if name == "tomato":
                rows.append((name, f"--health-cmd true every {args.interval}",
                             tomato_fleet(tomato, env, args.n, probe, args.seconds)))
                check_s = one_check(tomato, env)
                sh([tomato, "save", "-o", str(tmp / "bb-docker.tar"), "busybox:latest"],
                   env=env)
        if not args.skip_podman and shutil.which("podman"):
            rows.append(("podman", "no healthcheck",
                         podman_fleet(tmp / "podman", tmp / "bb-docker.tar", args.n,
                                      args.seconds)))
    finally:
        subprocess.run(["umount", "-l", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.n} containers each; the monitors' medians (kB), probes beside them "
          f"sampled every 50 ms for {args.seconds:.0f} s")
    print(f"{'engine':<17}{'containers':<32}{'monitor':<14}{'RSS':>7}{'PSS':>7}"
          f"{'private':>9}{'probes mean':>13}{'max':>5}")
    for name, what, r in rows:
        print(f"{name:<17}{what:<32}{r['monitor']:<14}{r['rss']:>7.0f}{r['pss']:>7.0f}"
              f"{r['private']:>9.0f}{r['probes running (mean)']:>13.2f}"
              f"{r['probes running (max)']:>5.0f}")
    if check_s is not None:
        print(f"one check (the healthprobe process, busybox `true`): {check_s * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
