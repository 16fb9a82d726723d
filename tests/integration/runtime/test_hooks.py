"""OCI hooks: every kind runs at its point with the state JSON on stdin;
failures and timeouts of the create-time hooks fail create and leave nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .rt import run_in, runtime, state
from .rt_extra import assert_nothing_left, assert_one_line_error, cid, edit, wait_stopped

C1 = cid("c1")
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Records its stdin as <kind>.json and appends <kind> to the order file.
RECORDER = """#!/bin/sh
cat > "$OUT/$1.json"
echo "$1" >> "$OUT/order"
"""


def _recorder(where: Path) -> Path:
    script = where / "hook.sh"
    script.write_text(RECORDER)
    script.chmod(0o755)
    return script


def _hook(path: Path | str, kind: str, out: str, **extra: Any) -> dict[str, Any]:
    return {"path": str(path), "args": ["hook.sh", kind], "env": [PATH, f"OUT={out}"], **extra}


def test_every_hook_kind_gets_the_state(root: Path, bundle: Path, workdir: Path) -> None:
    out = workdir / "out"
    out.mkdir()
    host_hook = _recorder(workdir)
    _recorder(bundle / "rootfs")  # startContainer runs inside: its path is the rootfs's

    def fn(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                              "options": ["bind", "rw"]})
        cfg["hooks"] = {
            "prestart": [_hook(host_hook, "prestart", str(out))],
            "createRuntime": [_hook(host_hook, "createRuntime", str(out))],
            "createContainer": [_hook(host_hook, "createContainer", str(out))],
            "startContainer": [_hook("/hook.sh", "startContainer", "/out")],
            "poststart": [_hook(host_hook, "poststart", str(out))],
            "poststop": [_hook(host_hook, "poststop", str(out))],
        }
        cfg["process"]["args"] = ["sh", "-c", "echo main >> /out/order"]
    edit(bundle, fn)
    runtime(root, "create", "--bundle", str(bundle), C1)
    pid = state(root, C1)["pid"]
    order = (out / "order").read_text().split()
    assert order == ["prestart", "createRuntime", "createContainer"]
    runtime(root, "start", C1)
    wait_stopped(root, C1)
    runtime(root, "delete", C1)
    order = (out / "order").read_text().split()
    # startContainer runs in the container just before its process; poststart in
    # `start` once the process was let go, so those two may come in either order.
    assert order[:3] == ["prestart", "createRuntime", "createContainer"]
    assert sorted(order[3:6]) == ["main", "poststart", "startContainer"]
    assert order.index("startContainer") < order.index("main")
    assert order[6:] == ["poststop"]
    for kind in ("prestart", "createRuntime", "createContainer", "startContainer",
                 "poststart", "poststop"):
        st = json.loads((out / f"{kind}.json").read_text())
        assert st["id"] == C1, kind
        assert st["bundle"] == str(bundle), kind
        assert "ociVersion" in st and "status" in st, kind
        if kind != "poststop":
            assert st["pid"] == pid, kind
    # The spec's status at each point of the lifecycle (runtime.md, "Lifecycle").
    statuses = {kind: json.loads((out / f"{kind}.json").read_text())["status"]
                for kind in ("prestart", "createRuntime", "createContainer", "startContainer",
                             "poststart", "poststop")}
    assert statuses == {"prestart": "creating", "createRuntime": "creating",
                        "createContainer": "creating", "startContainer": "created",
                        "poststart": "running", "poststop": "stopped"}


def _failing_create(root: Path, bundle: Path, kind: str, hook: dict[str, Any]) -> Any:
    edit(bundle, lambda cfg: cfg.__setitem__("hooks", {kind: [hook]}))
    return runtime(root, "create", "--bundle", str(bundle), C1, check=False)


def test_failing_prestart_hook_fails_create(root: Path, bundle: Path) -> None:
    proc = _failing_create(root, bundle, "prestart", {
        "path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 3"]})
    assert_one_line_error(proc, "error running hook #0", "prestart /bin/sh",
                          "exit status 3, stdout: , stderr: boom")
    assert_nothing_left(root)


def test_failing_create_runtime_hook_fails_create(root: Path, bundle: Path) -> None:
    proc = _failing_create(root, bundle, "createRuntime", {
        "path": "/bin/sh", "args": ["sh", "-c", "exit 4"]})
    assert_one_line_error(proc, "error running hook", "createRuntime", "exit status 4")
    assert_nothing_left(root)


def test_failing_create_container_hook_fails_create(root: Path, bundle: Path) -> None:
    proc = _failing_create(root, bundle, "createContainer", {
        "path": "/bin/sh", "args": ["sh", "-c", "exit 5"]})
    assert_one_line_error(proc, "error running hook", "createContainer", "exit status 5")
    assert_nothing_left(root)


def test_prestart_hook_timeout_fails_create(root: Path, bundle: Path) -> None:
    proc = _failing_create(root, bundle, "prestart", {
        "path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1})
    assert_one_line_error(proc, "error running hook", "prestart /bin/sleep",
                          "ran past specified timeout of 1.0s")
    assert_nothing_left(root)


def test_missing_hook_binary_fails_create(root: Path, bundle: Path) -> None:
    proc = _failing_create(root, bundle, "prestart", {"path": "/nonexistent/hook"})
    assert_one_line_error(proc, "/nonexistent/hook")
    assert_nothing_left(root)


def test_failing_start_container_hook_stops_the_container(root: Path, bundle: Path) -> None:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = {"startContainer": [{"path": "/bin/false"}]}
        cfg["root"]["readonly"] = False
        cfg["process"]["args"] = ["touch", "/ran"]
    edit(bundle, fn)
    proc = run_in(root, bundle, C1, check=False)
    assert proc.returncode != 0
    assert not (bundle / "rootfs" / "ran").exists()
    assert_nothing_left(root)


def test_failing_poststart_and_poststop_hooks_are_warnings(root: Path, bundle: Path) -> None:
    fail = {"path": "/bin/sh", "args": ["sh", "-c", "exit 9"]}
    edit(bundle, lambda cfg: cfg.__setitem__("hooks", {"poststart": [fail],
                                                        "poststop": [dict(fail)]}))
    proc = run_in(root, bundle, C1, "sh", "-c", "exit 0", check=False)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert any("poststart" in w for w in warnings), proc.stderr
    assert any("poststop" in w for w in warnings), proc.stderr
    assert_nothing_left(root)


def test_hook_args_and_env(root: Path, bundle: Path, workdir: Path) -> None:
    out = workdir / "argv"
    script = workdir / "show.sh"
    script.write_text('#!/bin/sh\necho "$0|$1|$2|$GREETING|${HOME-unset}" > "$DEST"\n')
    script.chmod(0o755)
    edit(bundle, lambda cfg: cfg.__setitem__("hooks", {"prestart": [{
        "path": str(script), "args": ["show", "one", "two words"],
        "env": ["GREETING=hi", f"DEST={out}", PATH]}]}))
    run_in(root, bundle, C1, "true")
    # $0 is the script for sh; the arguments and only the given environment follow
    assert out.read_text().strip().split("|")[1:] == ["one", "two words", "hi", "unset"]
    shutil.rmtree(workdir / "argv", ignore_errors=True)


def test_hook_without_env_inherits_the_runtimes(root: Path, bundle: Path, workdir: Path) -> None:
    import os

    out = workdir / "env"
    edit(bundle, lambda cfg: cfg.__setitem__("hooks", {"prestart": [{
        "path": "/bin/sh", "args": ["sh", "-c", f'echo "$PATH" > {out}']}]}))
    run_in(root, bundle, C1, "true")
    assert out.read_text().strip() == os.environ["PATH"]
