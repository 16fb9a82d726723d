#!/usr/bin/env python3
"""`tomato build` beside `buildah bud` and `podman build`, in one run, same Dockerfile,
same context, same busybox image.

The Dockerfile (~10 steps): FROM busybox, ENV, WORKDIR, COPY of a 2,000-file tree,
RUN lines, a LABEL, then a second stage that copies a file from the first.

  cached    the same build again, nothing changed: every step from the cache
  1 file    one file of the tree changed: its COPY and every step after it
  cold      every step built (--no-cache; the base image is there)

Each figure is the median of N builds (tools interleaved round by round).  RUN steps
need no network: tomato and podman run them with --network none, buildah with chroot
isolation (its fastest), which has no network namespace at all.  buildah and podman
keep their layers (--layers) on the overlay driver; podman runs runc (crun refuses
this machine's hybrid cgroups).  Everything lives on a tmpfs inside a private mount namespace (the script
re-runs itself under `unshare -m`); nothing it mounts is visible to the host.

    sudo .venv/bin/python bench/build_bench.py [-n 5] [--files 2000] [--skip-podman]

Targets (issue 17): cold <= 0.5x buildah, cached <= 0.2x buildah.
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

DOCKERFILE = """\
FROM busybox AS base
ENV APP=/app MODE=bench
WORKDIR /app
COPY tree/ /app/tree/
RUN find /app/tree -type f | wc -l > /app/count
ENV STAGE=one
RUN echo built > /app/built && rm -rf /app/tree/d0
RUN du -s /app > /app/size
LABEL org.example.bench=yes
FROM busybox
COPY --from=base /app/count /count
RUN cat /count
CMD ["cat", "/count"]
"""


def sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed: {proc.stderr.strip()[-600:]}")
    return proc  # type: ignore[no-any-return]


def make_context(path: Path, files: int) -> None:
    path.mkdir()
    (path / "Dockerfile").write_text(DOCKERFILE)
    for i in range(files):
        d = path / "tree" / f"d{i % 40}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_text(f"file {i}\n" * 20)


class Tool:
    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.env = env

    def build(self, ctx: Path, *extra: str) -> float:
        t0 = time.perf_counter()
        sh([*self.argv, *extra, str(ctx)], env=self.env)
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--skip-podman", action="store_true")
    ap.add_argument("--skip-buildah", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("build_bench: run as root", file=sys.stderr)
        return 1
    if not os.environ.get("TOMATO_BENCH_PRIVATE"):
        os.environ["TOMATO_BENCH_PRIVATE"] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                              __file__, *sys.argv[1:]])
    tmp = Path(tempfile.mkdtemp(prefix="tomato-build-bench-"))
    sh(["mount", "-t", "tmpfs", "-o", "size=8g", "tomato-bench", str(tmp)])
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.rootfs import build_busybox_rootfs

    tomato_env = {**os.environ, "TOMATO_ROOT": str(tmp / "tomato")}
    tools: list[Tool] = [Tool("tomato", [TOMATO, "build", "-q", "--network", "none",
                                         "-t", "bench"], tomato_env)]
    buildah = ["buildah", "--root", str(tmp / "buildah/root"), "--runroot",
               str(tmp / "buildah/run"), "--storage-driver", "overlay"]
    podman = ["podman", "--root", str(tmp / "podman/root"), "--runroot",
              str(tmp / "podman/run"), "--tmpdir", str(tmp / "podman/tmp"),
              "--storage-driver", "overlay", "--cgroup-manager=cgroupfs",
              "--events-backend=file", "--runtime", "runc"]
    other_env = {**os.environ, "TMPDIR": str(tmp / "tmp")}
    (tmp / "tmp").mkdir()
    results: dict[str, dict[str, float]] = {}
    try:
        rootfs = build_busybox_rootfs(tmp / "rootfs")
        sh(["tar", "-C", str(rootfs), "-cf", str(tmp / "bb.tar"), "."])
        sh([TOMATO, "import", str(tmp / "bb.tar"), "busybox:latest"], env=tomato_env)
        sh([TOMATO, "save", "-o", str(tmp / "bb-docker.tar"), "busybox:latest"],
           env=tomato_env)
        if not args.skip_buildah and shutil.which("buildah"):
            sh([*buildah, "pull", f"docker-archive:{tmp / 'bb-docker.tar'}"], env=other_env)
            image = sh([*buildah, "images", "-q"], env=other_env).stdout.split()[0]
            sh([*buildah, "tag", image, "docker.io/library/busybox:latest"], env=other_env)
            tools.append(Tool("buildah", [*buildah, "bud", "--layers", "--isolation", "chroot",
                                          "--pull-never", "-q", "-t", "bench"], other_env))
        if not args.skip_podman and shutil.which("podman"):
            sh([*podman, "load", "-i", str(tmp / "bb-docker.tar")], env=other_env)
            image = sh([*podman, "images", "-q"], env=other_env).stdout.split()[0]
            sh([*podman, "tag", image, "docker.io/library/busybox:latest"], env=other_env)
            tools.append(Tool("podman", [*podman, "build", "--layers", "--network", "none",
                                         "--pull-never", "-q", "-t", "bench"], other_env))
        ctx = tmp / "ctx"
        make_context(ctx, args.files)
        changed = ctx / "tree" / "d7" / "f7.txt"
        for tool in tools:  # warm: the base image's files in the page cache, caches filled
            tool.build(ctx)
        times: dict[str, dict[str, list[float]]] = {
            name: {t.name: [] for t in tools} for name in ("cold", "cached", "1 file")}
        # one phase at a time, so that the images the cold builds pile up (buildah's and
        # podman's cache lookups slow down with every image) do not weigh on the others
        for _ in range(args.n):
            for tool in tools:
                times["cached"][tool.name].append(tool.build(ctx))
        for round_ in range(args.n):
            for tool in tools:
                changed.write_text(f"changed in round {round_} for {tool.name}\n")
                times["1 file"][tool.name].append(tool.build(ctx))
        for _ in range(args.n):
            for tool in tools:
                times["cold"][tool.name].append(tool.build(ctx, "--no-cache"))
        for name, by_tool in times.items():
            results[f"{name} (s)"] = {k: statistics.median(v) for k, v in by_tool.items()}
    finally:
        subprocess.run([TOMATO, "rm", "-f", *subprocess.run(
            [TOMATO, "ps", "-aq"], env=tomato_env, capture_output=True,
            text=True).stdout.split()], env=tomato_env, capture_output=True)
        subprocess.run([*buildah, "rm", "--all"], capture_output=True, env=other_env)
        subprocess.run([*podman, "system", "reset", "-f"], capture_output=True, env=other_env)
        subprocess.run(["umount", "-l", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.files} files, median of {args.n}")
    print(f"{'benchmark':<14}{'tool':<9}{'seconds':>9}{'tomato/x':>10}")
    for name, by_tool in results.items():
        for tool, value in by_tool.items():
            ratio = by_tool["tomato"] / value if value else float("nan")
            print(f"{name:<14}{tool:<9}{value:>9.3f}{ratio:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
