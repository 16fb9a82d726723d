#!/usr/bin/env python3
"""Pull + unpack of a Debian minbase image from a local registry: tomato vs containerd
(``ctr image pull``) vs ``skopeo copy`` + ``umoci unpack``, side by side in one run.

    sudo .venv/bin/python bench/pull_bench.py [--rounds 5] [--cache DIR]

Makes (and caches) the image with ``mmdebstrap --variant=minbase bookworm`` and
``umoci raw add-layer`` (one gzip layer, ~60 MB), starts Debian's
``docker-registry`` on 127.0.0.1:<free port>, then for each round, in turn:

- tomato:  ``tomato --root FRESH pull``  (a new process, as a user runs it)
- ctr:     a private containerd (own config, root, state and sockets; cri plugin
           disabled) started fresh for the round, then ``ctr image pull --plain-http``
           (download + unpack into overlayfs snapshots); start-up is not timed
- skopeo+umoci: ``skopeo copy docker://… oci:DIR`` then ``umoci unpack``

Everything is written to one tmpfs made for the run.  Prints medians and ratios.
Not a test: run it by hand (root; needs docker-registry, skopeo, umoci, containerd,
mmdebstrap).
"""

from __future__ import annotations

import argparse
import http.client
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

ROOT = Path(__file__).resolve().parent.parent
TOMATO = [sys.executable, "-m", "tomato.cli.engine"]


def log(msg: str) -> None:
    print(f"[pull-bench] {msg}", file=sys.stderr, flush=True)


def run(*cmd: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    p = subprocess.run(list(cmd), capture_output=True, **kw)  # type: ignore[call-overload]
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): "
                           f"{p.stderr.decode(errors='replace').strip()}")
    return p  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(addr: str, path: str = "/v2/", timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(addr, timeout=1)
            c.request("GET", path)
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{addr} did not answer")


def build_image(cache: Path) -> Path:
    layout = cache / "oci"
    if (layout / "index.json").exists():
        return layout
    tar = cache / "debian.tar"
    if not tar.exists():
        log("mmdebstrap --variant=minbase bookworm (~20 s, cached afterwards)")
        run("mmdebstrap", "--quiet", "--format=tar", "--variant=minbase", "bookworm",
            str(tar) + ".partial")
        os.replace(str(tar) + ".partial", tar)
    tmp = cache / "oci.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    run("umoci", "init", "--layout", str(tmp))
    run("umoci", "new", "--image", f"{tmp}:bookworm")
    run("umoci", "raw", "add-layer", "--image", f"{tmp}:bookworm", str(tar))
    run("umoci", "config", "--image", f"{tmp}:bookworm", "--config.cmd", "bash",
        "--architecture", "amd64", "--os", "linux")
    run("umoci", "gc", "--layout", str(tmp))
    os.replace(tmp, layout)
    return layout


class Registry:
    def __init__(self, base: Path) -> None:
        self.addr = f"127.0.0.1:{free_port()}"
        (base / "data").mkdir(parents=True)
        cfg = base / "config.yml"
        cfg.write_text(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                       f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n"
                       f"http:\n  addr: {self.addr}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(cfg)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.addr)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Containerd:
    """A private containerd: own root/state/sockets, cri disabled."""

    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True)
        self.sock = str(base / "containerd.sock")
        cfg = base / "config.toml"
        cfg.write_text(f"""version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = "{base}/debug.sock"
""")
        self.log = open(base / "containerd.log", "wb")
        self.proc = subprocess.Popen(["containerd", "--config", str(cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if subprocess.run(["ctr", "--address", self.sock, "version"],
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("containerd did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def umount_below(path: Path) -> None:
    """Unmount anything left mounted under ``path`` (containerd keeps none after a pull)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in sorted((p for p in points if p.startswith(str(path) + "/")), reverse=True):
        subprocess.run(["umount", "-l", p], check=False)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cache", default=os.environ.get("TOMATO_BENCH_CACHE",
                                                      "/var/tmp/tomato-bench-cache"))
    ap.add_argument("--only", choices=["tomato", "ctr", "skopeo"], action="append")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("pull_bench: run as root", file=sys.stderr)
        return 2
    if os.environ.get("TOMATO_BENCH_PRIVATE_NS") != "1":
        # Our tmpfs and containerd's overlay mounts live in a private mount namespace:
        # invisible to other processes' mount tables (and to their leak checks).
        os.environ["TOMATO_BENCH_PRIVATE_NS"] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                              *sys.argv])
    for tool in ("docker-registry", "skopeo", "umoci", "containerd", "ctr", "mmdebstrap"):
        if shutil.which(tool) is None:
            print(f"pull_bench: {tool} is missing (apt-get install it)", file=sys.stderr)
            return 2
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    layout = build_image(cache)
    base = Path(tempfile.mkdtemp(prefix="tomato-pull-bench-"))
    run("mount", "-t", "tmpfs", "-o", "size=6g", "tomato-bench", str(base))
    reg = None
    try:
        reg = Registry(base / "registry")
        run("skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:bookworm",
            f"docker://{reg.addr}/debian:bookworm")
        ref = f"{reg.addr}/debian:bookworm"
        blob = max((p for p in (layout / "blobs" / "sha256").iterdir()),
                   key=lambda p: p.stat().st_size)
        log(f"image {ref}: layer {blob.stat().st_size / 1e6:.1f} MB compressed")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        results: dict[str, list[float]] = {"tomato": [], "ctr": [], "skopeo+umoci": []}
        only = set(args.only or ["tomato", "ctr", "skopeo"])
        for r in range(args.rounds):
            work = base / f"round{r}"
            work.mkdir()
            if "tomato" in only:
                results["tomato"].append(timed(lambda work=work: run(
                    *TOMATO, "--root", str(work / "tomato"), "pull", "-q", ref, env=env)))
            if "ctr" in only:
                ctrd = Containerd(work / "containerd")
                try:
                    results["ctr"].append(timed(lambda ctrd=ctrd: run(
                        "ctr", "--address", ctrd.sock, "image", "pull", "--plain-http", ref)))
                finally:
                    ctrd.stop()
                    umount_below(work)
            if "skopeo" in only:
                def sk(work: Path = work) -> None:
                    run("skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                        f"oci:{work}/sk:t")
                    run("umoci", "unpack", "--image", f"{work}/sk:t", str(work / "bundle"))
                results["skopeo+umoci"].append(timed(sk))
            done = ", ".join(f"{k} {v[-1]:.2f}s" for k, v in results.items() if v)
            log(f"round {r + 1}: {done}")
            shutil.rmtree(work)
        med = {k: statistics.median(v) for k, v in results.items() if v}
        print(f"\npull + unpack of debian:bookworm minbase ({args.rounds} rounds, medians)")
        for k, v in med.items():
            print(f"  {k:<14} {v:6.2f} s   (min {min(results[k]):.2f}, max {max(results[k]):.2f})")
        if "tomato" in med:
            for k in ("ctr", "skopeo+umoci"):
                if k in med:
                    print(f"  tomato / {k:<12} {med['tomato'] / med[k]:.2f}x")
        try:
            import isal  # noqa: F401
            gz = "isal"
        except ImportError:
            gz = "zlib"
        print(f"  (tomato gzip backend: {gz})")
    finally:
        if reg:
            reg.stop()
        umount_below(base)
        subprocess.run(["umount", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
