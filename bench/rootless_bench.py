#!/usr/bin/env python3
"""The rootless engine beside rootless podman, in one run, as the same ordinary user.

  run --rm        `tomato run --rm busybox true` (the default network: slirp4netns)
                  against `podman --runtime runc --cgroup-manager=cgroupfs run --rm`
  run --rm -p     the same with `-p PORT:80` (tomato: slirp4netns's API forwards it;
                  podman 4.3: its rootlessport helper)
  20 detached     20 `run -d busybox sleep 600`: the per-container processes' memory
                  (proportional set size, /proc/PID/smaps_rollup): tomato's monitors
                  (tomato-shim) against podman's conmons, and with each side's
                  slirp4netns (and podman's rootlessport) counted too

The user is made for the run (tests/helpers/rootless.py: its /etc/subuid and
/etc/subgid lines, removed after with every process it left) and runs Tomato from a
system install into a temporary prefix (scripts/install.sh --system), as a user would:
tomato-client, the fork server and tomato-shim included.  Every run of both tools is
`setpriv` to the user from here (the same ~2 ms for each), medians after 3 warm-ups.
Everything lives in a short temporary directory under /tmp, removed at the end (also on
SIGTERM): under a longer one (/var/tmp/tomato-rlbench-XXXXXXXX/run-USER/...) every
rootless `podman run --rm` waited ~20 s for its cleanup.

    sudo .venv/bin/python bench/rootless_bench.py [-n 20] [--skip-podman]
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLEET = 20
PODMAN_FLAGS = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs",
                "--events-backend=file"]
PODMAN_CONF = """[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

def sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:8])}... failed: {proc.stderr.strip()[-600:]}")
    return proc  # type: ignore[no-any-return]


def timed(argv: list[str], n: int) -> list[float]:
    """Seconds each of n runs took, after 3 warm-ups (output captured, as a caller's)."""
    times = []
    for i in range(n + 3):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, cwd="/")
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[-6:])} failed: {proc.stderr.decode()[-400:]}")
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return times


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def pss_by_name(uid_range: tuple[int, int, int]) -> dict[str, int]:
    """Proportional set size (bytes) of the user's processes, summed by name."""
    uid, first, count = uid_range
    totals: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            owner = os.stat(f"/proc/{entry}").st_uid
            if owner != uid and not first <= owner < first + count:
                continue
            with open(f"/proc/{entry}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{entry}/smaps_rollup") as f:
                pss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            continue
        totals[name] = totals.get(name, 0) + pss
    return totals


def settle() -> None:
    """Let the fleet's start-up processes exit and their pages go (bounded)."""
    time.sleep(3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--skip-podman", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("rootless_bench: run as root (it makes the user it runs as)", file=sys.stderr)
        return 1
    # A SIGTERM unwinds like an exception: the user made for the run is removed, with
    # its /etc/subuid lines and every process it left.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    podman = not args.skip_podman and shutil.which("podman") is not None
    # A short path: rootless podman under a longer one waited ~20 s after every run
    tmp = Path(tempfile.mkdtemp(prefix="rlb-", dir="/tmp"))
    os.chmod(tmp, 0o755)
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.rootfs import build_busybox_rootfs
    from helpers.rootless import make_user

    results: dict[str, dict[str, float]] = {}
    try:
        sh([str(REPO / "scripts" / "install.sh"), "--system", "--prefix", str(tmp / "opt"),
            "--bin-dir", str(tmp / "bin")], timeout=600)
        tomato = str(tmp / "bin" / "tomato")
        rootfs = build_busybox_rootfs(tmp / "rootfs")
        sh(["tar", "-C", str(rootfs), "-cf", str(tmp / "bb.tar"), "."])
        os.chmod(tmp / "bb.tar", 0o644)
        with make_user(tmp, "b") as user:
            env = user.env()

            def as_user(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
                return sh(user.command(argv, env), cwd="/", **kw)

            as_user([tomato, "import", str(tmp / "bb.tar"), "busybox:latest"])
            port = free_port()
            cases = {"tomato run --rm": [tomato, "run", "--rm", "busybox", "true"],
                     "tomato run --rm -p": [tomato, "run", "--rm", "-p", f"{port}:80",
                                            "busybox", "true"]}
            if podman:
                # The same settings in containers.conf: conmon's `podman container
                # cleanup` reads only the files (without them each --rm stalled ~20 s).
                conf = user.home / ".config" / "containers"
                as_user(["mkdir", "-p", str(conf)])
                as_user(["sh", "-c", f"cat > {conf}/containers.conf"], input=PODMAN_CONF)
                # The same rootfs tar tomato imported (a `podman load` of tomato's save
                # made every podman run stall ~20 s here).
                as_user([*PODMAN_FLAGS, "import", str(tmp / "bb.tar"),
                         "localhost/busybox:latest"], timeout=300)
                image = "localhost/busybox:latest"
                cases["podman run --rm"] = [*PODMAN_FLAGS, "run", "--rm", image, "true"]
                cases["podman run --rm -p"] = [*PODMAN_FLAGS, "run", "--rm", "-p",
                                               f"{port}:80", image, "true"]
            medians = {name: statistics.median(timed(user.command(argv, env), args.n)) * 1000
                       for name, argv in cases.items()}
            for kind in ("run --rm", "run --rm -p"):
                results[f"{kind} (ms)"] = {tool: medians[f"{tool} {kind}"]
                                           for tool in ("tomato", "podman")
                                           if f"{tool} {kind}" in medians}
            ids = (user.uid, user.sub_start, user.sub_count)
            base = pss_by_name(ids)
            for _ in range(FLEET):
                as_user([tomato, "run", "-d", "busybox", "sleep", "600"])
            settle()
            mem = pss_by_name(ids)
            monitors = mem.get("tomato-shim", 0) - base.get("tomato-shim", 0)
            slirp = mem.get("slirp4netns", 0) - base.get("slirp4netns", 0)
            results["monitor per container (MB)"] = {"tomato": monitors / FLEET / 1e6}
            results["+ slirp4netns (MB)"] = {"tomato": (monitors + slirp) / FLEET / 1e6}
            as_user([tomato, "rm", "-f", *as_user([tomato, "ps", "-aq"]).stdout.split()],
                    timeout=300)
            if podman:
                base = pss_by_name(ids)
                for _ in range(FLEET):
                    as_user([*PODMAN_FLAGS, "run", "-d", image, "sleep", "600"], timeout=120)
                settle()
                mem = pss_by_name(ids)
                conmons = mem.get("conmon", 0) - base.get("conmon", 0)
                helpers = sum(mem.get(n, 0) - base.get(n, 0)
                              for n in ("slirp4netns", "rootlessport", "rootlessport-ch"))
                results["monitor per container (MB)"]["podman"] = conmons / FLEET / 1e6
                results["+ slirp4netns (MB)"]["podman"] = (conmons + helpers) / FLEET / 1e6
                as_user([*PODMAN_FLAGS, "rm", "-af", "-t", "0"], timeout=300)
                subprocess.run(user.command([*PODMAN_FLAGS, "system", "reset", "-f"], env),
                               capture_output=True, cwd="/")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'benchmark':<30}{'tool':<8}{'value':>10}{'tomato/x':>10}")
    for name, by_tool in results.items():
        for tool, value in by_tool.items():
            ratio = by_tool["tomato"] / value if value else float("nan")
            print(f"{name:<30}{tool:<8}{value:>10.2f}{ratio:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
