"""docs/tutorial.md runs: every command prints what the tutorial shows and exits as it says.

The Korean edition (docs/tutorial.ko.md) must hold the same blocks, so it is
checked by comparing its blocks with the English ones."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tutorial  # noqa: E402

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_parser_reads_commands_exit_codes_and_answers():
    steps = tutorial.parse("text\n```console\n$ echo a \\\n  b\na b\n$ false  # exit 1\n```\n"
                           "```sh\n$ not run\n```\n<details>\n\n```console\n$ true\n```\n"
                           "</details>\n")
    assert [(s.command, s.expected, s.exit_code) for s in steps] == [
        ("echo a \\\n  b", ["a b"], 0), ("false  # exit 1", [], 1), ("true", [], 0)]


def test_a_trailing_ellipsis_is_refused():
    """'...' at the end of an output would match whatever follows, errors included."""
    with pytest.raises(ValueError, match="would match anything"):
        tutorial.parse("```console\n$ ls\nbin\n...\n```\n")


def test_matcher_takes_every_line_of_both_streams():
    m = tutorial.matches
    assert m(["x", "...", "z"], ["x", "y1", "y2", "z"], [])
    assert m(["id [...] end"], ["id 1234 end"], [])
    assert not m(["x"], ["x", "y"], [])
    assert not m(["id [...] end"], ["id 1234 ending"], [])
    # stderr lines must be shown, in their order, wherever they fall among stdout's
    assert m(["[ns] ...", "out", "err"], ["out"], ["[ns] ...", "err"])
    assert not m(["out"], ["out"], ["Traceback (most recent call last):"])
    assert not m(["b", "a"], ["a", "b"], [])
    # '...' stands for stdout lines only: the ImportError nsenter once printed after
    # its output would not have slipped through
    assert not m(["lab-box", "...", "tmp"], ["lab-box", "bin", "tmp"],
                 ["ImportError: cannot import name 'forkserver'"])
    assert m(["lab-box", "...", "tmp"], ["lab-box", "bin", "tmp"], [])


def test_substitution_keeps_the_lengths_the_summary_wraps_by():
    cgroup, user = tutorial.unique_names()
    lab = tutorial.Lab("/w/lab", cgroup, user, {})
    assert len(cgroup) == len("tomato-lab") and len(user) == len("learner")
    text = "cgroup tomato-lab/my in /tmp/tomato-lab/x for learner, not learners"
    assert lab.substitute(text) == f"cgroup {cgroup}/my in /w/lab/x for {user}, not learners"
    assert lab.shown(lab.substitute(text)) == text


def test_pictures_are_checked(tmp_path):
    assert tutorial.pictures("tomato cgroup stats --plot /x/cpu.png --duration 4") == \
        ["/x/cpu.png"]
    assert tutorial.pictures("tomato ns show a b --png=/x/ns.png") == ["/x/ns.png"]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert tutorial.check_png(str(bad)) == f"{bad} is not a PNG"
    assert "No such file" in (tutorial.check_png(str(tmp_path / "none.png")) or "")


def test_korean_edition_has_the_same_blocks():
    en = tutorial.parse((DOCS / "tutorial.md").read_text())
    ko = tutorial.parse((DOCS / "tutorial.ko.md").read_text())
    assert [(s.command, s.expected) for s in ko] == [(s.command, s.expected) for s in en]


def test_every_chapter_has_exercises_with_answers():
    text = (DOCS / "tutorial.md").read_text()
    chapters = text.split("\n## ")[1:-1]  # the last one is the cleanup
    assert len(chapters) == 6
    for chapter in chapters:
        title = chapter.splitlines()[0]
        assert "### Exercise" in chapter, title
        answer = chapter.split("<details>", 1)[1]
        assert "```console" in answer, title  # answers are run by test_tutorial_runs


@pytest.mark.slow
def test_tutorial_runs(workdir):
    """Every step as the tutorial shows it; then the tutorial's own cleanup must have
    left nothing (containers, mounts, cgroups, the user, the lab directory and its
    pictures); whatever it did leave is removed, and fails the test."""
    for tool in ("stress", "ip", "busybox", "setpriv", "useradd"):
        if shutil.which(tool) is None:
            pytest.skip(f"the tutorial runs {tool} (Debian: stress, iproute2, "
                        f"busybox-static, util-linux, passwd)")
    steps = tutorial.parse((DOCS / "tutorial.md").read_text())
    assert len(steps) > 100
    os.chmod(workdir, 0o755)  # the user namespace step runs tomato as another user
    bin_dir = str(workdir / "bin")
    tutorial.user_wrapper(bin_dir)
    root = str(workdir / "root")
    env = dict(os.environ, TOMATO_ROOT=root,
               PATH=bin_dir + ":" + str(Path(sys.executable).parent) + ":" + os.environ["PATH"])
    lab = tutorial.Lab(str(workdir / "lab"), *tutorial.unique_names(), env)
    failures = []
    left: list[str] = []
    try:
        for step in steps:
            problem = lab.check(step)
            if problem is not None:
                failures.append("docs/tutorial.md:" + problem)
    finally:
        left = tutorial.cleanup(lab, root, steps)
    assert not failures, "\n".join(failures)
    assert not left, f"the tutorial's cleanup left: {left}"
