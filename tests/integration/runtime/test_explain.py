"""--explain: the kernel steps actually taken, each with its shell equivalent."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tomato.explain import parse_steps

from .rt import config, runtime, set_args, state, write_config

MOUNT = re.compile(r'mount\("([^"]*)", "([^"]*)"')


def _mountpoints(pid: int) -> set[str]:
    return {line.split()[4] for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()}


def test_explain_lists_the_steps_taken(root: Path, bundle: Path) -> None:
    cfg = config(bundle)
    cfg["hostname"] = "explained"
    write_config(bundle, cfg)
    set_args(bundle, "sleep", "60")
    created = runtime(root, "--explain=full", "create", "--bundle", str(bundle), "c1")
    steps = parse_steps(created.stderr)
    calls = [call for call, _shell in steps]
    assert steps and all(shell for _call, shell in steps)  # every step has its shell twin
    clone = next(c for c in calls if c.startswith("clone("))
    for flag in ("CLONE_NEWPID", "CLONE_NEWNS", "CLONE_NEWUTS", "CLONE_NEWIPC", "CLONE_NEWNET"):
        assert flag in clone
    assert 'sethostname("explained")' in calls
    assert any(c.startswith("pivot_root(") for c in calls)
    pid = state(root, "c1")["pid"]
    # The cgroups it reports creating exist, and the init was written into them.
    saved = json.loads((root / "c1" / "state.json").read_text())["cgroup"]["paths"]
    procs = [c for c in calls if "cgroup.procs" in c]
    for directory in set(saved.values()):
        assert Path(directory).is_dir()
        assert any(directory + "/cgroup.procs" in c and str(pid) in c for c in procs)
    # Every mount made after pivot_root (masked and read-only paths) is in the
    # container's mount table.
    after = calls[calls.index(next(c for c in calls if c.startswith("pivot_root("))):]
    targets = {m.group(2) for c in after if (m := MOUNT.match(c)) and m.group(1) != "none"}
    targets = {t for t in targets if t.startswith("/") and t != "/"}
    assert targets and targets <= _mountpoints(pid), targets - _mountpoints(pid)
    runtime(root, "start", "c1")
    runtime(root, "delete", "--force", "c1")


def test_explain_ends_with_the_execve(root: Path, bundle: Path) -> None:
    set_args(bundle, "echo", "done")
    out = runtime(root, "--explain=full", "run", "--bundle", str(bundle), "c1")
    calls = [c for c, _ in parse_steps(out.stderr)]
    assert calls[-1].startswith("execve(") and "echo" in calls[-1]
    assert out.stdout == "done\n"


def test_no_explain_no_steps(root: Path, bundle: Path) -> None:
    set_args(bundle, "true")
    out = runtime(root, "run", "--bundle", str(bundle), "c1")
    assert parse_steps(out.stderr) == []
