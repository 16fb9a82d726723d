"""Events come from the engine's use cases, whoever drives them: the `tomato` CLI
here (the API tests read the same log through `docker events`).  Each happens
once, and a detached container's monitor reports its death."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .conftest import Engine, until


def _events(root: Path, since_ns: int, actor: str = "") -> list[dict[str, Any]]:
    try:
        lines = (root / "events.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    found = [json.loads(line) for line in lines if line.strip()]
    return [e for e in found if e["timeNano"] >= since_ns
            and (not actor or e["Actor"]["ID"] == actor)]


def _actions(root: Path, since_ns: int, actor: str) -> list[str]:
    return [e["Action"] for e in _events(root, since_ns, actor)]


def test_a_containers_life_from_the_cli(engine: Engine) -> None:
    since = time.time_ns()
    cid = engine.run("run", "-d", "--name", "lives", "--label", "team=red",
                     "--network", "none", "busybox", "sleep", "60").stdout.strip()
    engine.run("pause", "lives")
    engine.run("unpause", "lives")
    engine.run("stop", "-t", "1", "lives")
    engine.run("rename", "lives", "lived")
    engine.run("rm", "lived")
    actions = _actions(engine.root, since, cid)
    # sleep as pid 1 ignores SIGTERM: after the second, SIGKILL (Docker's order too)
    assert actions == ["create", "start", "pause", "unpause", "kill", "kill", "die", "stop",
                       "rename", "destroy"], actions
    create = _events(engine.root, since, cid)[0]
    assert create["Type"] == "container" and create["status"] == "create"
    assert create["Actor"]["Attributes"] == {"name": "lives", "image": "busybox",
                                             "team": "red"}
    die = next(e for e in _events(engine.root, since, cid) if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "137"
    kills = [e["Actor"]["Attributes"]["signal"] for e in _events(engine.root, since, cid)
             if e["Action"] == "kill"]
    assert kills == ["15", "9"]
    rename = next(e for e in _events(engine.root, since, cid) if e["Action"] == "rename")
    assert rename["Actor"]["Attributes"]["oldName"] == "/lives"
    assert rename["Actor"]["Attributes"]["name"] == "lived"


def test_a_detached_container_that_exits_reports_die_once(engine: Engine) -> None:
    since = time.time_ns()
    cid = engine.run("run", "-d", "--rm", "--network", "none", "busybox", "sh", "-c",
                     "exit 3").stdout.strip()
    assert until(lambda: "destroy" in _actions(engine.root, since, cid))
    assert _actions(engine.root, since, cid) == ["create", "start", "die", "destroy"]
    die = next(e for e in _events(engine.root, since, cid) if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "3"


def test_a_restart_policy_reports_each_start(engine: Engine) -> None:
    since = time.time_ns()
    cid = engine.run("run", "-d", "--restart", "on-failure:2", "--network", "none",
                     "busybox", "sh", "-c", "exit 1").stdout.strip()
    assert until(lambda: _actions(engine.root, since, cid).count("die") == 3)
    assert _actions(engine.root, since, cid) == ["create", "start", "die", "start", "die",
                                                 "start", "die"]
    engine.run("rm", "-f", cid)


def test_volumes_and_networks_report_too(engine: Engine) -> None:
    since = time.time_ns()
    engine.run("volume", "create", "evvol")
    engine.run("volume", "rm", "evvol")
    vol = [(e["Type"], e["Action"]) for e in _events(engine.root, since, "evvol")]
    assert vol == [("volume", "create"), ("volume", "destroy")]


def test_a_failed_command_reports_nothing(engine: Engine) -> None:
    since = time.time_ns()
    bad = engine.run("run", "--memory", "1x", "busybox", "true", check=False)
    assert bad.returncode == 125
    missing = engine.run("rm", "no-such-container", check=False)
    assert missing.returncode != 0
    assert _events(engine.root, since) == []
