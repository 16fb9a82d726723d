#!/usr/bin/env python3
"""The CRI lane by hand: a private containerd with the CRI plugin and the runc and
tomato runtime handlers (tests/helpers/cri.py), then critest or a shell against it.

    sudo .venv/bin/python tools/cri/lane.py critest HANDLER [CRITEST-ARGS...]
    sudo .venv/bin/python tools/cri/lane.py critest runc,tomato   # both, totals side by side
    sudo .venv/bin/python tools/cri/lane.py shell                 # crictl at hand ($CRICTL)

Everything lives on a tmpfs in a mount namespace of the run's own (the script
re-executes itself under `unshare -m`) and the node's own network namespace, and
is gone when it ends.  crictl and critest are built once, offline, from the
vendored cri-tools source (tools/cri/build-cri-tools.sh).  critest's JSON report
and output are kept in --out (default .cache/cri-tools/runs/) for reading after.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def lane(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.cri import CriNode, build_cri_tools, missing_tools, run_critest
    from helpers.cri_images import build_layout, find_busybox

    missing = missing_tools()
    if missing:
        print(f"lane: needs {', '.join(missing)}", file=sys.stderr)
        return 2
    tools, why = build_cri_tools()
    if tools is None:
        print(f"lane: no crictl/critest: {why}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="tomato-cri-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tomato-cri", str(tmp)],
                   check=True)
    rc = 0
    try:
        layout = build_layout(tmp / "images", find_busybox(tools.parent))
        node = CriNode(tmp / "node", layout, tools)
        with node:
            if args.command == "shell":
                return shell(node)
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            results = []
            for handler in args.handler.split(","):
                if handler not in node.handlers:
                    print(f"lane: unknown handler {handler!r} (runc, tomato)", file=sys.stderr)
                    return 2
                print(f"== critest, runtime handler {handler} (output: "
                      f"{out}/critest-{handler}.log)", flush=True)
                log_path = out / f"critest-{handler}.log"
                if args.verbose:  # critest's output on the terminal and in the log
                    tee = subprocess.Popen(["tee", str(log_path)], stdin=subprocess.PIPE)
                    try:
                        res = run_critest(node, handler, out, args.critest_args,
                                          output=tee.stdin)
                    finally:
                        assert tee.stdin is not None
                        tee.stdin.close()
                        tee.wait()
                else:
                    with open(log_path, "w") as log:
                        res = run_critest(node, handler, out, args.critest_args, output=log)
                results.append(res)
                print(res.line(), flush=True)
                for name in res.failures:
                    print(f"  failed: {name}")
                rc = rc or res.exit_code
            if len(results) == 2 and results[0].wall > 0:
                a, b = results
                print(f"{b.handler}/{a.handler}: passed {b.passed}/{a.passed}, "
                      f"wall time {b.wall / a.wall:.2f}x")
        if node.forced:
            print("lane: teardown had to clean up: " + "; ".join(node.forced[:5]),
                  file=sys.stderr)
    finally:
        subprocess.run(["umount", "-l", str(tmp)], check=False)
        os.rmdir(tmp)
    return rc


def shell(node: object) -> int:
    crictl = " ".join(shlex.quote(a) for a in node.crictl_argv())  # type: ignore[attr-defined]
    print(f"node ready; crictl is $CRICTL:\n  {crictl}\nexit the shell to tear it down")
    env = {**os.environ, "CRICTL": crictl, "PS1": "cri-node# "}
    return subprocess.run([os.environ.get("SHELL", "/bin/sh")], env=env).returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--in-private-ns", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(REPO / ".cache" / "cri-tools" / "runs"),
                    help="where critest's reports and logs go")
    ap.add_argument("-v", "--verbose", action="store_true", help="show critest's output")
    sub = ap.add_subparsers(dest="command", required=True)
    ct = sub.add_parser("critest", help="run critest against one or both handlers")
    ct.add_argument("handler", help="runc, tomato, or runc,tomato")
    ct.add_argument("critest_args", nargs=argparse.REMAINDER,
                    help="passed to critest (e.g. -ginkgo.focus=Streaming)")
    sub.add_parser("shell", help="a shell with a node running")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("lane: run as root", file=sys.stderr)
        return 1
    if not args.in_private_ns:
        if shutil.which("unshare") is None:
            print("lane: needs unshare (util-linux)", file=sys.stderr)
            return 2
        return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                               __file__, "--in-private-ns", *sys.argv[1:]]).returncode
    return lane(args)


if __name__ == "__main__":
    sys.exit(main())
