"""`exec` as runc has it: 255 for the runtime's own failures and the process's code
otherwise (side by side with runc), `--cgroup` into a sub-cgroup, and runc-style
log records (--debug, --log, --log-format) for every command, exec included."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from .rt import runtime
from .rt_extra import cid, delete_reaping, edit, wait_stopped
from .runc_side import needs_runc, runc, runc_root  # noqa: F401 (fixture)

C1 = cid("ex")


def _sleeper(bundle: Path, **process: Any) -> None:
    edit(bundle, lambda cfg: cfg["process"].update(args=["sleep", "60"], **process))


@needs_runc
def test_exec_exit_codes_are_runcs(root: Path, bundle: Path, workdir: Path,
                                   runc_root: Path) -> None:  # noqa: F811
    _sleeper(bundle)
    runtime(root, "run", "-d", "--bundle", str(bundle), C1)
    runc(runc_root, "run", "-d", "--bundle", str(bundle), "r" + C1)
    cases = {
        "process code": (["sh", "-c", "exit 7"], []),
        "missing executable": (["/nonexistent"], []),
        "bad --pid-file directory": (["true"], ["--pid-file", str(workdir / "no/dir/pid")]),
        "missing --cwd": (["true"], ["--cwd", "/nonexistent"]),
        "no command": ([], []),
    }
    try:
        for what, (args, flags) in cases.items():
            ours = runtime(root, "exec", *flags, C1, *args, check=False)
            theirs = runc(runc_root, "exec", *flags, "r" + C1, *args, check=False)
            assert (what, ours.returncode) == (what, theirs.returncode), (ours.stderr,
                                                                          theirs.stderr)
            if ours.returncode == 255:
                assert len(ours.stderr.strip().splitlines()) == 1, (what, ours.stderr)
        assert not (workdir / "no").exists()
        # nothing of the failed execs was left running in the container
        assert runtime(root, "ps", "--format", "json", C1).stdout.strip().count(",") == 0
        runtime(root, "kill", C1, "KILL")
        runc(runc_root, "kill", "r" + C1, "KILL")
        wait_stopped(root, C1)
        ours = runtime(root, "exec", C1, "true", check=False)
        theirs = runc(runc_root, "exec", "r" + C1, "true", check=False)
        assert ours.returncode == theirs.returncode == 255, (ours.stderr, theirs.stderr)
    finally:
        runtime(root, "delete", "--force", C1)


def _cgroup_dirs(pid: int) -> dict[str, str]:
    """controller -> the cgroup of pid, from the host's view (v1 hierarchies)."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for ctrl in ctrls.split(","):
            if ctrl:
                out[ctrl] = path
    return out


def test_exec_cgroup_joins_a_sub_cgroup(root: Path, bundle: Path, workdir: Path) -> None:
    """runc 1.1's --cgroup: an existing sub-cgroup of the container's, for every
    hierarchy or for the controllers named; `delete --force` then removes it too."""
    _sleeper(bundle)
    pid = int(json.loads(runtime(root, "run", "-d", "--bundle", str(bundle),
                                 C1).stdout or "{}").get("pid", 0) or
              json.loads(runtime(root, "state", C1).stdout)["pid"])
    own = _cgroup_dirs(pid)
    made = []
    for ctrl in ("pids", "memory"):
        d = Path(f"/sys/fs/cgroup/{ctrl}{own[ctrl]}/sub")
        d.mkdir()
        made.append(d)
    orphans: list[int] = []
    try:
        pid_file = workdir / "exec.pid"
        runtime(root, "exec", "-d", "--pid-file", str(pid_file), "--cgroup", "pids,memory:sub",
                C1, "sleep", "30")
        child = int(pid_file.read_text())
        orphans.append(child)
        inside = _cgroup_dirs(child)
        assert inside["pids"] == own["pids"] + "/sub"
        assert inside["memory"] == own["memory"] + "/sub"
        assert inside["cpu"] == own["cpu"]  # not named: the container's own
        bad = runtime(root, "exec", "--cgroup", "sub", C1, "true", check=False)
        assert bad.returncode == 255 and "does not exist" in bad.stderr, bad.stderr
        bad = runtime(root, "exec", "--cgroup", "pids:../..", C1, "true", check=False)
        assert bad.returncode == 255 and "not a sub-cgroup" in bad.stderr, bad.stderr
        bad = runtime(root, "exec", "--cgroup", "nosuchctl:sub", C1, "true", check=False)
        assert bad.returncode == 255 and "unknown controller" in bad.stderr, bad.stderr
    finally:
        delete_reaping(root, C1, orphans)
    assert not any(d.exists() for d in made)


LINE = re.compile(r'^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" level=(debug|info|warning|error) '
                  r'msg="(?:[^"\\]|\\.)*"$')


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_every_command_writes_log_records(root: Path, bundle: Path, workdir: Path,
                                          fmt: str) -> None:
    log = workdir / f"runtime.{fmt}"
    flags = ("--debug", f"--log={log}", f"--log-format={fmt}")
    _sleeper(bundle)
    counts = []
    steps = [("create", "--bundle", str(bundle), C1), ("start", C1), ("state", C1),
             ("exec", C1, "true"), ("list",), ("kill", C1, "KILL"), ("delete", "--force", C1)]
    for step in steps:
        runtime(root, *flags, *step)
        counts.append(len(log.read_text().splitlines()))
    assert all(b > a for a, b in zip([0, *counts], counts, strict=False)), counts
    failed = runtime(root, *flags, "exec", C1, "true", check=False)
    assert failed.returncode == 255
    lines = log.read_text().splitlines()
    if fmt == "json":
        records = [json.loads(line) for line in lines]
        assert all(set(r) == {"level", "msg", "time"} for r in records)
        assert records[-1]["level"] == "error"
        assert records[-1]["msg"].startswith("exec failed: ") and C1 in records[-1]["msg"]
    else:
        assert all(LINE.match(line) for line in lines), lines
        assert lines[-1].split(" ", 2)[1:] == ["level=error",
                                               f'msg="exec failed: {failed.stderr.strip()[16:]}"']


@needs_runc
def test_text_log_quotes_as_runc(root: Path, bundle: Path, workdir: Path,
                                 runc_root: Path) -> None:  # noqa: F811
    """A message with quotes: logrus writes it with Go's %q, and so do we."""
    _sleeper(bundle)
    runtime(root, "run", "-d", "--bundle", str(bundle), C1)
    runc(runc_root, "run", "-d", "--bundle", str(bundle), "r" + C1)
    try:
        for name, run, state_root, c in (("ours", runtime, root, C1),
                                         ("runc", runc, runc_root, "r" + C1)):
            run(state_root, f"--log={workdir / name}", "exec", c, "/nonexistent",
                check=False)
    finally:
        runtime(root, "delete", "--force", C1)
    ours, theirs = ((workdir / n).read_text().splitlines()[-1] for n in ("ours", "runc"))
    assert LINE.match(ours) and LINE.match(theirs), (ours, theirs)
    assert '\\"/nonexistent\\"' in ours and '\\"/nonexistent\\"' in theirs
    assert os.path.exists(workdir / "ours")
