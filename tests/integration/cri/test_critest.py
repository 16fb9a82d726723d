"""The CRI validation suite (critest, cri-tools v1.26.1) against the tomato runtime
handler and the runc handler of one node, in one run: tomato must pass every spec
runc passes.  Their totals and wall times are printed (and kept in the test's
directory while it runs); tools/cri/critest.sh runs the same by hand.

The whole suite takes about 1.5 minutes a handler here.  TOMATO_CRITEST_ARGS (e.g.
"-ginkgo.focus=Streaming") narrows it for a quicker run.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from helpers.cri import CriNode, run_critest


@pytest.mark.slow
def test_tomato_passes_every_spec_runc_passes(node: CriNode, workdir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    args = shlex.split(os.environ.get("TOMATO_CRITEST_ARGS", ""))
    runc = run_critest(node, "runc", workdir, args, timeout=1200)
    tomato = run_critest(node, "tomato", workdir, args, timeout=1200)
    with capsys.disabled():
        print(f"\n{runc.line()}\n{tomato.line()}\n"
              f"tomato/runc wall time {tomato.wall / max(runc.wall, 0.001):.2f}x")
    assert runc.total > 0, (workdir / "critest-runc.log").read_text()[-3000:]
    newly_failed = sorted(set(tomato.failures) - set(runc.failures))
    assert not newly_failed, (f"tomato fails specs runc passes: {newly_failed}\n"
                              + (workdir / "critest-tomato.log").read_text()[-5000:])
    assert tomato.passed >= runc.passed, (runc.line(), tomato.line())
