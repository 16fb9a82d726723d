"""Many containers at once (issue 13, item 14): `stats --no-stream` reads every
container, waits one interval, reads every container again (not an interval per
container: 100 s for 200); `stop`, `kill`, `rm`, `pause`, `unpause` and `restart` act
on them side by side, print in argument order and fail per container, as docker's CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .conftest import TOMATO, Engine

#: the real command's code (tomato.cli.engine.main), with an audit hook noting which
#: cgroup files it opens; no fork server (it would run the command elsewhere)
_OPENS_DRIVER = """
import sys
opened = []
def note(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].endswith("/memory.stat"):
        opened.append(args[0])
sys.addaudithook(note)
from tomato.cli.engine import main
code = main(sys.argv[2:])
sys.stdout.flush()
record = "\\n".join(opened)
with open(sys.argv[1], "w") as f:
    f.write(record)
sys.exit(code)
"""


def _start(engine: Engine, names: list[str]) -> list[str]:
    """Detached sleepers named ``names``, started at once; their ids."""
    procs = [subprocess.Popen([TOMATO, "run", "-d", "--name", name, "--network", "none",
                               "busybox", "sleep", "600"], env=engine.env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL) for name in names]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids.append(out.strip())
    return ids


def _events(root: Path, since_ns: int) -> list[dict[str, Any]]:
    lines = (root / "events.jsonl").read_text().splitlines()
    found = [json.loads(line) for line in lines if line.strip()]
    return [e for e in found if e["timeNano"] >= since_ns]


def _state(engine: Engine, ref: str) -> dict[str, Any]:
    return engine.inspect(ref)["State"]  # type: ignore[no-any-return]


def test_stats_no_stream_reads_all_then_all_again(engine: Engine, tmp_path: Path) -> None:
    names = [f"stat{i}" for i in range(20)]
    ids = _start(engine, names)
    record = tmp_path / "opened"
    proc = subprocess.run([sys.executable, "-c", _OPENS_DRIVER, str(record), "stats",
                           "--no-stream", "--format", "json"],
                          env={**engine.env(), "TOMATO_NO_FORKSERVER": "1"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(r["Name"] for r in rows) == sorted(names)
    by_id = {r["ID"]: r for r in rows}
    assert set(by_id) == {cid[:12] for cid in ids}
    for r in rows:  # every row whole: a sleeping busybox, its memory, its one process
        assert r["PIDs"] == "1" and r["CPUPerc"].endswith("%"), r
        assert not r["MemUsage"].startswith("0B"), r
    # which container each memory.stat read belonged to, in order
    reads = [Path(p).parent.name for p in record.read_text().split()]
    reads = [cid for cid in reads if cid in ids]
    assert len(reads) == 2 * len(ids), reads
    first, second = reads[:len(ids)], reads[len(ids):]
    # one pass over all, then one more in the same order -- not each container twice
    # in a row around a sleep of its own
    assert sorted(first) == sorted(ids) and second == first


def test_stop_many_side_by_side_in_argument_order(engine: Engine) -> None:
    names = [f"halt{i}" for i in range(20)]
    ids = _start(engine, names)
    refs = names[::-1]  # not the order they were made in
    refs.insert(7, "no-such-one")
    since = time.time_ns()
    proc = engine.run("stop", "-t", "2", *refs, check=False, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.split() == [r for r in refs if r != "no-such-one"]
    assert proc.stderr.splitlines() == ["tomato: No such container: no-such-one"]
    for name in names:
        state = _state(engine, name)
        assert state["Status"] == "exited" and state["ExitCode"] == 137, state
    # Side by side: busybox's sleep (pid 1) ignores SIGTERM, so each stop waits out its
    # 2 s of grace; one after another, no container got its SIGTERM before the first
    # one had stopped.
    events = _events(engine.root, since)
    first_stop = next(i for i, e in enumerate(events) if e["Action"] == "stop")
    termed = {e["id"] for e in events[:first_stop]
              if e["Action"] == "kill" and e["Actor"]["Attributes"]["signal"] == "15"}
    assert len(termed) >= len(ids) // 2, (len(termed), [e["Action"] for e in events])
    assert sum(e["Action"] == "stop" for e in events) == len(ids)
    # and all removed by one rm, in argument order
    proc = engine.run("rm", *names, "no-such-one", check=False, timeout=120)
    assert proc.returncode == 1 and proc.stdout.split() == names
    assert proc.stderr.splitlines() == ["tomato: No such container: no-such-one"]
    assert engine.ids() == []


def test_kill_pause_restart_rm_many(engine: Engine) -> None:
    names = [f"many{i}" for i in range(10)]
    ids = _start(engine, names)
    proc = engine.run("pause", *names, "gone", check=False)
    assert proc.returncode == 1 and proc.stdout.split() == names
    assert proc.stderr.splitlines() == ["tomato: No such container: gone"]
    assert all(_state(engine, n)["Status"] == "paused" for n in names)
    # many0 twice: unpaused, then not paused any more (one worker, one after the other)
    proc = engine.run("unpause", *names, "many0", check=False)
    assert proc.returncode == 1 and proc.stdout.split() == names
    assert len(proc.stderr.splitlines()) == 1 and "is not paused" in proc.stderr
    assert all(_state(engine, n)["Status"] == "running" for n in names)

    pids = {n: _state(engine, n)["Pid"] for n in names[:4]}
    since = time.time_ns()
    proc = engine.run("restart", "-t", "0", *names[:4][::-1], "gone", check=False,
                      timeout=120)
    assert proc.returncode == 1 and proc.stdout.split() == names[:4][::-1]
    assert proc.stderr.splitlines() == ["tomato: No such container: gone"]
    for name, pid in pids.items():
        state = _state(engine, name)
        assert state["Status"] == "running" and state["Pid"] not in (0, pid), state
    # stopped side by side, then started one after another (never a thread beside the
    # monitor's fork): every stop before the first start
    actions = [e["Action"] for e in _events(engine.root, since)]
    assert actions.count("stop") == 4 and actions.count("start") == 4, actions
    assert max(i for i, a in enumerate(actions) if a == "stop") < actions.index("start")

    proc = engine.run("kill", *names[4:8], check=False)
    assert proc.returncode == 0 and proc.stdout.split() == names[4:8]
    assert all(_state(engine, n)["ExitCode"] == 137 for n in names[4:8])
    proc = engine.run("kill", names[4], check=False)  # not running any more: an error
    assert proc.returncode == 1 and "is not running" in proc.stderr

    # the same container by name and by id: one after the other, never side by side
    proc = engine.run("rm", "-f", names[0], ids[0], *names[1:], check=False, timeout=120)
    assert proc.returncode == 1 and proc.stdout.split() == [names[0], *names[1:]]
    assert proc.stderr.splitlines() == [f"tomato: No such container: {ids[0]}"]
    assert engine.ids() == []
