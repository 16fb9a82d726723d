"""Hooks as the spec and runc have them fail: create-time and startContainer failures fail
their operation with "error running hook" and the hook's output; poststart and poststop
failures are warnings after which the remaining hooks and the lifecycle go on;
startContainer hooks run under the container's seccomp filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .rt import run_in, runtime, state
from .rt_extra import assert_nothing_left, assert_one_line_error, cid, edit, wait_stopped
from .runc_side import needs_runc, runc, runc_root  # noqa: F401 (fixture)

C1 = cid("hf")
FAIL = {"path": "/bin/sh", "args": ["sh", "-c", "echo said-out; echo said-err >&2; exit 3"]}


@needs_runc
def test_failing_prestart_hook_is_reported_as_runc_does(root: Path, bundle: Path,
                                                       runc_root: Path) -> None:  # noqa: F811
    edit(bundle, lambda cfg: cfg.__setitem__("hooks", {"prestart": [FAIL]}))
    ours = runtime(root, "create", "--bundle", str(bundle), C1, check=False)
    theirs = runc(runc_root, "create", "--bundle", str(bundle), "r" + C1, check=False)
    assert theirs.returncode == ours.returncode == 1
    # runc: "error running hook #0: error running hook: exit status 3, stdout: said-out
    # \n, stderr: said-err\n" (over lines); ours the same words on one line.
    for words in ("error running hook #0", "exit status 3", "stdout: said-out",
                  "stderr: said-err"):
        assert words in theirs.stderr, theirs.stderr
    assert_one_line_error(ours, "error running hook #0", "exit status 3",
                          "stdout: said-out", "stderr: said-err")
    assert_nothing_left(root)


def test_failing_start_container_hook_fails_start(root: Path, bundle: Path) -> None:
    """runc's start returns 0 and the container silently dies; the spec says the
    operation fails, so `start` waits for the hooks' outcome (only when there are any)."""
    def fn(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = {"startContainer": [FAIL]}
        cfg["root"]["readonly"] = False
        cfg["process"]["args"] = ["touch", "/ran"]
    edit(bundle, fn)
    runtime(root, "create", "--bundle", str(bundle), C1)
    proc = runtime(root, "start", C1, check=False)
    assert_one_line_error(proc, "error running hook #0", "startContainer /bin/sh",
                          "exit status 3", "said-err")
    wait_stopped(root, C1)
    assert not (bundle / "rootfs" / "ran").exists()
    runtime(root, "delete", C1)
    assert_nothing_left(root)


def test_failing_start_container_hook_fails_run(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg.__setitem__("hooks", {"startContainer": [FAIL]}))
    proc = run_in(root, bundle, C1, "true", check=False)
    assert_one_line_error(proc, "error running hook", "startContainer", "exit status 3")
    assert_nothing_left(root)


def test_passing_start_container_hook_lets_start_through(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg.__setitem__("hooks", {"startContainer": [
        {"path": "/bin/true"}]}))
    runtime(root, "create", "--bundle", str(bundle), C1)
    pid = state(root, C1)["pid"]
    runtime(root, "start", C1)
    status = Path(f"/proc/{pid}/comm").read_text().strip() if Path(f"/proc/{pid}").exists() \
        else "gone"
    assert status != "tomato-init"  # start returned after the exec (or the exit)
    runtime(root, "delete", "--force", C1)


def test_every_poststart_and_poststop_hook_runs_after_a_failure(root: Path, bundle: Path,
                                                                  workdir: Path) -> None:
    marks = workdir / "marks"
    marks.mkdir()

    def mark(name: str) -> dict[str, Any]:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"touch {marks}/{name}"]}
    edit(bundle, lambda cfg: cfg.__setitem__("hooks", {
        "poststart": [FAIL, mark("poststart-2")],
        "poststop": [FAIL, mark("poststop-2")]}))
    proc = run_in(root, bundle, C1, "sh", "-c", "exit 4", check=False)
    assert proc.returncode == 4, proc.stderr  # the lifecycle went on: the process's code
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert any("poststart" in w and "error running hook #0" in w for w in warnings), \
        proc.stderr
    assert any("poststop" in w and "error running hook #0" in w for w in warnings), \
        proc.stderr
    assert sorted(p.name for p in marks.iterdir()) == ["poststart-2", "poststop-2"]
    assert_nothing_left(root)


def test_start_container_hooks_run_under_the_seccomp_filter(root: Path, bundle: Path) -> None:
    """As runc: the filter is loaded before startContainer hooks run (they run inside)."""
    def fn(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = False
        cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]}
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", "grep Seccomp: /proc/self/status > /hook-seccomp"]}]}
        cfg["process"]["args"] = ["true"]
    edit(bundle, fn)
    run_in(root, bundle, C1)
    assert (bundle / "rootfs" / "hook-seccomp").read_text().split() == ["Seccomp:", "2"]
