"""tomato-runtime-front (C) and the Python runtime answer every verb alike.

When installed, the front end is the launcher's interpreter: it answers state, start,
kill, delete, pause, resume and list itself and hands everything else to Python.
Each verb runs both ways here (TOMATO_RUNTIME_PYTHON=1 forces Python) and stdout,
stderr, exit codes and --log records are compared byte for byte; the ordinary cases
are proven never to reach Python (TOMATO_RUNTIME_FRONT_ONLY=1 makes a hand-over
exit 3); and hostile state files get the same one-line errors from both.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tomato import fastjson
from tomato.records import as_dict
from tomato.runtime.statedir import StateDir

from .rt import RUNTIME, runtime
from .rt_extra import cid, edit, wait_for

FRONT = Path(RUNTIME).parent / "tomato-runtime-front"
pytestmark = pytest.mark.skipif(not FRONT.exists(),
                                reason="tomato-runtime-front is not installed (no C compiler?)")

PATHS = {"front": {"TOMATO_RUNTIME_FRONT_ONLY": "1"}, "python": {"TOMATO_RUNTIME_PYTHON": "1"}}
C = cid("fe")


def call(root: Path, *args: str, path: str = "", env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[bytes]:
    """tomato-runtime, the front end alone (path="front"), Python alone ("python"), or
    as installed (""): stdout and stderr as bytes."""
    full = {**os.environ, **PATHS.get(path, {}), **(env or {})}
    return subprocess.run([RUNTIME, "--root", str(root), *args], capture_output=True,
                          stdin=subprocess.DEVNULL, env=full, timeout=60)


def same(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Both paths answer alike; the installed one's answer."""
    front, python = call(root, *args), call(root, *args, path="python")
    assert (front.returncode, front.stdout, front.stderr) == \
        (python.returncode, python.stdout, python.stderr), args
    assert b"Traceback" not in front.stderr, front.stderr
    return front


def ok(root: Path, *args: str, path: str) -> bytes:
    proc = call(root, *args, path=path)
    assert proc.returncode == 0, (args, path, proc.stderr)
    return proc.stdout


def status(root: Path, compare: bool = True) -> str:
    """The container's status (from both paths alike unless it may be changing)."""
    proc = same(root, "state", C) if compare else call(root, "state", C)
    return str(json.loads(proc.stdout)["status"])


def create(root: Path, bundle: Path, *args: str) -> None:
    edit(bundle, lambda cfg: cfg["process"].update(args=list(args) or ["sleep", "60"]))
    runtime(root, "create", "--bundle", str(bundle), C)


def test_state_written_by_python_is_read_by_the_front_end_and_back(root: Path,
                                                                   bundle: Path) -> None:
    create(root, bundle)
    try:
        assert status(root) == "created"
        assert json.loads(ok(root, "state", C, path="front"))["status"] == "created"
        ok(root, "start", C, path="front")  # the front end writes the record here
        text = (root / C / "state.json").read_text()
        rec = StateDir(str(root)).load(C)  # ... and Python reads it
        assert rec.status == "running"
        assert text == fastjson.dumps(as_dict(rec))  # what Python itself would write
        assert status(root) == "running"
    finally:
        runtime(root, "delete", "--force", C)


@pytest.mark.parametrize("path", PATHS)
def test_every_verb_both_ways(root: Path, bundle: Path, path: str) -> None:
    create(root, bundle)
    try:
        for argv in (["list"], ["list", "-f", "json"], ["list", "-q"], ["kill", C, "0"]):
            same(root, *argv)
        ok(root, "start", C, path=path)
        assert status(root) == "running"
        ok(root, "pause", C, path=path)
        assert status(root) == "paused"
        for argv in (["list"], ["list", "--format=json"], ["pause", C], ["start", C],
                     ["delete", C]):
            same(root, *argv)
        ok(root, "resume", C, path=path)
        assert status(root) == "running"
        ok(root, "kill", C, "0", path=path)
        ok(root, "kill", "--all", C, "KILL", path=path)
        assert wait_for(lambda: status(root, False) == "stopped")
        for argv in (["kill", C, "9"], ["kill", C, "0"], ["kill", "-a", C, "9"],
                     ["resume", C], ["list"]):
            same(root, *argv)
        ok(root, "kill", "--all", C, "9", path=path)
        ok(root, "delete", C, path=path)
        assert not (root / C).exists()
        for argv in (["state", C], ["delete", C], ["delete", "--force", C], ["kill", C],
                     ["list", "-f", "json"]):
            same(root, *argv)
        ok(root, "delete", "-f", C, path=path)
    finally:
        runtime(root, "delete", "--force", C)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("pause", [False, True], ids=["running", "paused"])
def test_delete_force_kills_and_removes(root: Path, bundle: Path, path: str,
                                        pause: bool) -> None:
    create(root, bundle, "sh", "-c", "sleep 60 & sleep 60")
    ok(root, "start", C, path=path)
    if pause:
        ok(root, "pause", C, path=path)
    cgroup = json.loads((root / C / "state.json").read_text())["cgroup"]
    dirs = list(cgroup["paths"].values()) if cgroup["version"] == 1 else [cgroup["path"]]
    assert all(os.path.isdir(d) for d in dirs)
    ok(root, "delete", "--force", C, path=path)
    assert not (root / C).exists()
    assert not any(os.path.exists(d) for d in dirs)


@pytest.mark.parametrize("path", PATHS)
def test_kill_of_a_paused_container(root: Path, bundle: Path, path: str) -> None:
    create(root, bundle)
    try:
        ok(root, "start", C, path=path)
        ok(root, "pause", C, path=path)
        ok(root, "kill", C, "TERM", path=path)  # stays paused: nobody runs to die
        assert status(root) == "paused"
        ok(root, "kill", C, "KILL", path=path)  # thawed to die
        assert wait_for(lambda: status(root, False) == "stopped")
    finally:
        runtime(root, "delete", "--force", C)


def test_errors_both_ways(root: Path, bundle: Path) -> None:
    for verb in ("state", "start", "kill", "delete", "pause", "resume"):
        for argv in ([verb, "nope"], [verb, "a/b"], [verb, ".."], [verb, ".x"],
                     [verb, "x" * 1025], [verb], [verb, "--bogus", "x"], [verb, "-", "x"]):
            proc = same(root, *argv)
            assert proc.returncode == 1 and proc.stderr.count(b"\n") == 1, (argv, proc)
    for argv in (["list", "--format", "yaml"], ["list", "--bogus"], ["delete", "-f", "nope"],
                 ["kill", "nope", "BOGUS"], ["list"], ["list", "-f", "json"]):
        same(root, *argv)
    create(root, bundle)
    try:
        for argv in (["pause", C], ["resume", C], ["kill", C, "SIGFOO"], ["kill", C, "65"],
                     ["state", C, "extra"], ["delete", "--bogus", C]):
            same(root, *argv)
    finally:
        runtime(root, "delete", "--force", C)


def test_signal_names_both_ways(root: Path, bundle: Path) -> None:
    """Every name Python's signal.Signals knows, numbers, and some it does not."""
    create(root, bundle, "true")
    ok(root, "start", C, path="front")
    assert wait_for(lambda: status(root, False) == "stopped")
    names = [*signal.Signals.__members__, "kill", "Term", "hup", "RTMIN", "0", "9", "64",
             "65", "007", "SIGFOO", "SIG", "9x", "RTMIN+1", " 9", "", "SIG_DFL", "-9"]
    try:
        for name in names:
            proc = same(root, "kill", "--all", C, name)
            answered = call(root, "kill", "--all", C, name, path="front").returncode == 0
            assert answered == (proc.returncode == 0 and name.strip() == name), name
    finally:
        runtime(root, "delete", "--force", C)


def _records(path: Path) -> str:
    text = path.read_text() if path.exists() else ""
    path.unlink(missing_ok=True)
    return re.sub(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', "TIME", text)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_records_both_ways(root: Path, bundle: Path, workdir: Path, fmt: str) -> None:
    log = workdir / "log"
    create(root, bundle)
    try:
        for argv in (["state", C], ["kill", C, "0"], ["list"], ["pause", C], ["start", "nope"],
                     ["state", "nope"], ["kill", C, "BOGUS"], ["delete", "nope"]):
            flags = ["--log", str(log), "--log-format", fmt, "--debug"]
            front = call(root, *flags, *argv)
            front_log = _records(log)
            python = call(root, *flags, *argv, path="python")
            assert (front.returncode, front.stdout, front.stderr, front_log) == \
                (python.returncode, python.stdout, python.stderr, _records(log)), argv
            assert front_log, argv  # --debug: at least the command's record
        for argv in (["--debug", "state", C], ["--debug", "kill", C, "BOGUS"]):
            same(root, *argv)  # without --log the records go to stderr
        same(root, "--log", str(log), "--log-format", "yaml", "state", C)
    finally:
        runtime(root, "delete", "--force", C)


def test_the_front_end_hands_over_what_it_does_not_answer(root: Path) -> None:
    for argv in (["create", "x"], ["run", "x"], ["exec", "x", "true"], ["update", "x"],
                 ["ps", "x"], ["events", "x"], ["features"], ["spec"], ["--version"],
                 ["--help"], [], ["--systemd-cgroup", "state", "x"], ["--explain", "state", "x"],
                 ["state", "-h"], ["--bogus", "state", "x"], ["--log-format", "yaml", "state",
                                                             "x"]):
        proc = call(root, *argv, path="front")
        assert proc.returncode == 3 and b"handed over" in proc.stderr, argv


def _valid_state(root: Path, bundle: Path) -> str:
    create(root, bundle)
    text = (root / C / "state.json").read_text()
    runtime(root, "delete", "--force", C)
    return text


HOSTILE: dict[str, object] = {
    "empty": b"",
    "truncated": lambda good: good[: len(good) // 2],
    "not an object": b"[1, 2]",
    "null": b"null",
    "no id": b"{}",
    "unknown member": lambda good: good[:-1] + ', "evil": 1}',
    "pid as text": lambda good: re.sub(r'"pid": \d+', '"pid": "1"', good),
    "pid as float": lambda good: re.sub(r'"pid": \d+', '"pid": 1.0', good),
    "pid as bool": lambda good: re.sub(r'"pid": \d+', '"pid": true', good),
    "pid NaN": lambda good: re.sub(r'"pid": \d+', '"pid": NaN', good),
    "huge pid": lambda good: re.sub(r'"pid": \d+', '"pid": ' + "9" * 40, good),
    "deep": b"[" * 100000 + b"]" * 100000,
    "bad utf-8": lambda good: good.replace('"bundle": "', '"bundle": "\udcff', 1),
    "lone surrogate": lambda good: good.replace('"bundle": "', '"bundle": "\\ud800', 1),
    "nul escape": lambda good: good.replace('"bundle": "', '"bundle": "\\u0000', 1),
    "control char": lambda good: good.replace('"bundle": "', '"bundle": "\x01', 1),
    "another id": lambda good: good.replace(f'"id": "{C}"', '"id": "other"', 1),
    "id with slash": lambda good: good.replace(f'"id": "{C}"', '"id": "../x"', 1),
    "cgroup of another driver": lambda good: good.replace('"cgroup": {',
                                                          '"cgroup": {"driver": "x", ', 1),
    "cgroup malformed": lambda good: re.sub(r'"cgroup": \{.*?\}, "config"',
                                            '"cgroup": {"version": 1}, "config"', good),
    "duplicate status": lambda good: good[:-1] + ', "status": "stopped"}',
    "annotation not text": lambda good: good.replace('"annotations": {',
                                                     '"annotations": {"a": 1', 1),
    "hooks not a list": lambda good: good.replace('"config": {',
                                                  '"config": {"hooks": {"poststop": 1}, ', 1),
}


def _write_state(root: Path, content: object, good: str) -> None:
    data = content(good) if callable(content) else content
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    (root / C).mkdir(exist_ok=True)
    (root / C / "state.json").write_bytes(raw)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_state_files(root: Path, bundle: Path, name: str) -> None:
    """A malformed, truncated or odd state.json: the same one-line answer from both
    paths, never a crash; delete --force takes the directory away."""
    good = _valid_state(root, bundle)
    for argv in (["state", C], ["start", C], ["kill", C, "0"], ["kill", "--all", C, "9"],
                 ["pause", C], ["resume", C], ["list"], ["list", "-f", "json"], ["delete", C],
                 ["delete", "--force", C]):
        answers = []
        for path in ("", "python"):
            _write_state(root, HOSTILE[name], good)
            proc = call(root, *argv, path=path)
            answers.append((proc.returncode, proc.stdout, proc.stderr, (root / C).exists()))
            assert b"Traceback" not in proc.stderr, (argv, proc.stderr)
            assert proc.stderr.count(b"\n") <= 1, (argv, proc.stderr)
        assert answers[0] == answers[1], (argv, answers)
        if argv == ["delete", "--force", C]:
            assert answers[0][0] == 0 and not answers[0][3], answers
    runtime(root, "delete", "--force", C)


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_a_state_file_that_is_no_file(root: Path, kind: str) -> None:
    """A FIFO (whose open would block), a directory, /dev/zero: corrupt, at once."""
    (root / C).mkdir()
    path = root / C / "state.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to("/dev/zero")
    for argv in (["state", C], ["kill", C, "0"], ["list", "-q"]):
        proc = same(root, *argv)
        assert proc.stderr.count(b"\n") <= 1, proc.stderr
    assert b"corrupt state file" in call(root, "state", C).stderr
    same(root, "delete", "--force", C)
    assert not (root / C).exists()


def test_a_huge_state_file(root: Path) -> None:
    (root / C).mkdir()
    with open(root / C / "state.json", "wb") as f:
        f.truncate((64 << 20) + 1)
    for argv in (["state", C], ["kill", C, "0"], ["list", "-q"]):
        proc = same(root, *argv)
        assert proc.stderr.count(b"\n") <= 1, proc.stderr
    assert b"larger than 64 MiB" in call(root, "state", C).stderr
    same(root, "delete", "--force", C)
    assert not (root / C).exists()


@pytest.mark.parametrize("path", PATHS)
def test_delete_kills_what_an_init_without_a_pid_namespace_left(root: Path, bundle: Path,
                                                                path: str) -> None:
    """In the host's pid namespace an init's children outlive it, in its cgroup:
    delete of the stopped container kills them (the config's namespaces, read raw)."""
    def no_pid_ns(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                      if ns["type"] != "pid"]
        cfg["root"]["readonly"] = False

    edit(bundle, no_pid_ns)
    create(root, bundle, "sh", "-c", "sleep 60 & echo $! > /tmp/child")
    ok(root, "start", C, path=path)
    assert wait_for(lambda: status(root, False) == "stopped")
    child = int((bundle / "rootfs" / "tmp" / "child").read_text())
    assert os.path.exists(f"/proc/{child}")
    ok(root, "delete", C, path=path)
    assert wait_for(lambda: not os.path.exists(f"/proc/{child}") or
                    open(f"/proc/{child}/stat").read().split(")")[1].split()[0] == "Z")


def test_the_front_end_primes_cgroup_moves_and_leaves_nothing(root: Path, bundle: Path,
                                                              workdir: Path) -> None:
    """A create handed to Python starts the primer (front/primer.c) before Python
    (--no-pivot: one create.c leaves to Python); Python stops and reaps it, and neither
    its variable nor its pipe reaches the container."""
    edit(bundle, lambda cfg: cfg["process"].update(args=["sh", "-c", "env; ls /proc/self/fd"]))
    out = workdir / "out"
    with open(out, "w") as f:
        proc = subprocess.run([RUNTIME, "--root", str(root), "--debug", "run", "--no-pivot",
                               "--bundle", str(bundle), C], stdout=f, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 0, proc.stderr
    primed = re.search(rb"primed since before Python started \(pid (\d+)\)", proc.stderr)
    assert primed, proc.stderr
    assert not os.path.exists(f"/proc/{int(primed.group(1))}")  # stopped and reaped
    text = out.read_text()
    assert "TOMATO_RUNTIME_PRIMER" not in text
    assert sorted(int(n) for n in text.split() if n.isdigit()) == [0, 1, 2, 3]  # ls's own 3


def test_a_primer_named_by_the_caller_is_not_taken(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].update(args=["true"]))
    for value in (f"1 {os.open('/dev/null', os.O_RDONLY)}", "x y", f"{os.getpid()} 0"):
        proc = call(root, "--debug", "run", "--bundle", str(bundle), C, path="python",
                    env={"TOMATO_RUNTIME_PRIMER": value})
        assert proc.returncode == 0 and b"primed" not in proc.stderr, (value, proc.stderr)
