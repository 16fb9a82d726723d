"""docs/tutorial.md runs: every command block prints what the tutorial shows.

The Korean edition (docs/tutorial.ko.md) must hold the same blocks, so it is
checked by comparing its blocks with the English ones."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tutorial  # noqa: E402

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_parser_and_matcher():
    steps = tutorial.parse("text\n```console\n$ echo a \\\n  b\na b\n$ true\n```\n"
                           "```sh\n$ not run\n```\n")
    assert [(s.command, s.expected) for s in steps] == [("echo a \\\n  b", ["a b"]),
                                                         ("true", [])]
    assert tutorial.matches(["x", "...", "z"], ["x", "y1", "y2", "z"])
    assert tutorial.matches(["id [...] end"], ["id 1234 end"])
    assert not tutorial.matches(["x"], ["x", "y"])
    assert not tutorial.matches(["id [...] end"], ["id 1234 ending"])
    assert tutorial.substitute("cgroup tomato-lab/my in /tmp/tomato-lab/x", "/w", "tl-1") == \
        "cgroup tl-1/my in /w/x"


def test_korean_edition_has_the_same_blocks():
    en = tutorial.parse((DOCS / "tutorial.md").read_text())
    ko = tutorial.parse((DOCS / "tutorial.ko.md").read_text())
    assert [(s.command, s.expected) for s in ko] == [(s.command, s.expected) for s in en]


@pytest.mark.slow
def test_tutorial_runs(workdir, tomato):
    if shutil.which("stress") is None:
        pytest.skip("the cgroup chapter runs Debian's stress (apt-get install stress)")
    steps = tutorial.parse((DOCS / "tutorial.md").read_text())
    assert len(steps) > 30
    lab = str(workdir / "lab")
    os.makedirs(lab)
    cgroup = f"tomato-lab-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, TOMATO_ROOT=str(workdir / "root"),
               PATH=str(Path(sys.executable).parent) + ":" + os.environ["PATH"])
    failures = []
    try:
        for step in steps:
            out = tutorial.run(step, lab, cgroup, env)
            shown = [line.replace(lab, tutorial.LAB_DIR).replace(cgroup, tutorial.LAB_CGROUP)
                     for line in out]
            if not tutorial.matches(step.expected, shown):
                failures.append(f"docs/tutorial.md:{step.line}: $ {step.command}\n  expected:\n"
                                + "\n".join("    " + e for e in step.expected)
                                + "\n  got:\n" + "\n".join("    " + s for s in shown))
    finally:
        _cleanup(lab, cgroup, env)
    assert not failures, "\n".join(failures)


def _cleanup(lab: str, cgroup: str, env: dict[str, str]) -> None:
    """Whatever a failed run left: containers, the overlay mount, the cgroup."""
    from tomato.lab.cgtool import CgroupTool

    tomato = str(Path(sys.executable).parent / "tomato")
    subprocess.run([tomato, "rm", "-f", "lab-ns", "lab-ov", "hot"], env=env, capture_output=True)
    merged = os.path.join(lab, "merged")
    while os.path.ismount(merged):
        subprocess.run(["umount", merged], check=True)
    tool = CgroupTool()
    for p in tool.places(("cpu", "cpuacct"), cgroup):
        for pid in tool.pids((p.controller,), cgroup) if os.path.isdir(p.directory) else []:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
    import time
    deadline = time.monotonic() + 10
    for p in tool.places(("cpu", "cpuacct"), cgroup):
        while os.path.isdir(p.directory):
            try:
                tool.delete((p.controller,), cgroup, recursive=True)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
