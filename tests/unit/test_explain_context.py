"""--explain's explainer is handed to what reports a step (issue 16: no module global
read across the layers): only _sys's own wrappers check the hook ``libc.explain_syscalls``
installs; a cgroup write, a netlink call, the runtime and the engine tell the explainer
they were given."""

from __future__ import annotations

import ast
import io
from pathlib import Path

from tomato._sys import libc
from tomato.cgroups import base
from tomato.explain.trace import Explainer

SRC = Path(__file__).resolve().parents[2] / "src" / "tomato"


def test_nothing_outside_libc_reads_its_hook() -> None:
    readers = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "_sys" / "libc.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("TRACE", "_trace"):
                readers.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not readers, f"libc's --explain hook read outside _sys/libc.py: {readers}"


def test_a_cgroup_write_tells_the_explainer_it_is_given(tmp_path: Path) -> None:
    knob = tmp_path / "cpu.weight"
    knob.write_text("")
    given, installed = io.StringIO(), io.StringIO()
    libc.explain_syscalls(Explainer(installed))  # the kernel calls' hook: not the cgroups'
    try:
        base.write(str(knob), "50")
        assert given.getvalue() == "" and installed.getvalue() == ""
        base.write(str(knob), "60", Explainer(given))
        base.mkdir_p(str(tmp_path / "a" / "b"), Explainer(given))
    finally:
        libc.explain_syscalls(None)
    assert knob.read_text() == "60"
    assert given.getvalue().splitlines() == [
        f'+ write("{knob}", "60") — echo 60 > {knob}',
        f'+ mkdir("{tmp_path}/a") — mkdir {tmp_path}/a',
        f'+ mkdir("{tmp_path}/a/b") — mkdir {tmp_path}/a/b']
    assert installed.getvalue() == ""


def test_a_reopened_manager_tells_the_explainer_it_is_given(tmp_path: Path) -> None:
    from tomato.cgroups import load_manager

    saved = {"version": 2, "path": str(tmp_path), "mountpoint": str(tmp_path), "created": 0,
             "cgroups_path": "x", "container_id": "c"}
    ex = Explainer(io.StringIO())
    assert load_manager(saved).explain is None
    assert load_manager(saved, ex).explain is ex
