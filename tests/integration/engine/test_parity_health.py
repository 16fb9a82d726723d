"""Healthchecks as Docker runs them (issue 19): --health-* flags, the image's HEALTHCHECK,
State.Health in inspect, the STATUS column and `ps --filter health=`, health_status
events, probes run by the container's monitor (tomato-shim) with nothing left between
checks.  Short intervals and bounded polling: no timing is asserted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import Engine, until

FAST = ("--health-interval", "100ms")


def _run(engine: Engine, *args: str) -> str:
    return engine.run("run", "-d", "--network", "none", *args).stdout.strip()


def _health(engine: Engine, cid: str) -> dict[str, Any] | None:
    return engine.inspect(cid)["State"].get("Health")  # type: ignore[no-any-return]


def _status(engine: Engine, cid: str) -> str:
    health = _health(engine, cid)
    return health["Status"] if health else "none"


def _events(engine: Engine, cid: str) -> list[str]:
    path = engine.root / "events.jsonl"
    return [e["Action"] for e in map(json.loads, path.read_text().splitlines())
            if e["Actor"]["ID"] == cid]


def _ps_status(engine: Engine, cid: str) -> str:
    return engine.run("ps", "-a", "--filter", f"id={cid}", "--format",
                      "{{.Status}}").stdout.strip()


def test_starting_healthy_unhealthy_and_back(engine: Engine) -> None:
    cid = _run(engine, "--health-cmd", "test -e /tmp/ok", *FAST, "--health-retries", "2",
               "busybox", "sleep", "1000")
    assert engine.inspect(cid)["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 100_000_000, "Retries": 2}
    assert until(lambda: _status(engine, cid) == "unhealthy")
    health = _health(engine, cid)
    assert health is not None and health["FailingStreak"] >= 2
    assert {e["ExitCode"] for e in health["Log"]} == {1}
    assert "(unhealthy)" in _ps_status(engine, cid)
    assert engine.run("ps", "-q", "--no-trunc", "--filter",
                      "health=unhealthy").stdout.split() == [cid]

    engine.run("exec", cid, "touch", "/tmp/ok")
    assert until(lambda: _status(engine, cid) == "healthy")
    health = _health(engine, cid)
    assert health is not None and health["FailingStreak"] == 0
    assert health["Log"][-1]["ExitCode"] == 0 and len(health["Log"]) <= 5
    assert _ps_status(engine, cid).startswith("Up ") and _ps_status(engine, cid).endswith(
        " (healthy)")
    assert engine.run("ps", "-q", "--filter", "health=unhealthy").stdout == ""
    assert engine.run("ps", "-q", "--no-trunc", "--filter",
                      "health=healthy").stdout.split() == [cid]
    # (as dockerd: the state first, then its event)
    assert until(lambda: "health_status: healthy" in _events(engine, cid))
    actions = _events(engine, cid)
    assert actions.index("health_status: unhealthy") < actions.index("health_status: healthy")

    # stopped: unhealthy (Docker's CloseMonitorChannel); started again: starting, log kept
    engine.run("stop", "-t", "1", cid)
    assert _status(engine, cid) == "unhealthy"
    assert "health" not in _ps_status(engine, cid)
    engine.run("start", cid)
    assert until(lambda: _status(engine, cid) == "healthy")
    assert len(_health(engine, cid)["Log"]) == 5  # type: ignore[index]


def test_a_probe_over_its_timeout_is_killed(engine: Engine) -> None:
    cid = _run(engine, "--health-cmd", "echo partial; exec sleep 60", *FAST,
               "--health-timeout", "300ms", "--health-retries", "1", "busybox",
               "sleep", "1000")
    assert until(lambda: _status(engine, cid) == "unhealthy")
    entry = _health(engine, cid)["Log"][0]  # type: ignore[index]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (300ms): partial\n"
    # The probe (sh exec'd into sleep) was killed, not left running in the container.
    procs = engine.run("exec", cid, "ps", "-o", "args").stdout
    assert until(lambda: "sleep 60" not in engine.run("exec", cid, "ps", "-o",
                                                      "args").stdout), procs


def test_output_truncated_and_any_nonzero_code_fails(engine: Engine) -> None:
    cid = _run(engine, "--health-cmd", 'head -c 5000 /dev/zero | tr "\\0" a; exit 3', *FAST,
               "--health-retries", "1", "busybox", "sleep", "1000")
    assert until(lambda: _status(engine, cid) == "unhealthy")
    entry = _health(engine, cid)["Log"][0]  # type: ignore[index]
    assert entry["ExitCode"] == 3
    assert entry["Output"] == "a" * 4096 + "..."


def test_a_missing_command_counts_as_a_failure(engine: Engine) -> None:
    cid = _run(engine, "--health-cmd", "no-such-probe", *FAST, "--health-retries", "1",
               "busybox", "sleep", "1000")
    assert until(lambda: _status(engine, cid) == "unhealthy")
    entry = _health(engine, cid)["Log"][0]  # type: ignore[index]
    assert entry["ExitCode"] == 127 and "no-such-probe: not found" in entry["Output"]


def test_start_period_failures_do_not_count(engine: Engine) -> None:
    cid = _run(engine, "--health-cmd", "exit 1", *FAST, "--health-start-period", "1h",
               "--health-start-interval", "100ms", "--health-retries", "1",
               "busybox", "sleep", "1000")
    assert until(lambda: len((_health(engine, cid) or {}).get("Log", [])) >= 3)
    health = _health(engine, cid)
    assert health is not None and health["Status"] == "starting"
    assert health["FailingStreak"] == 0
    assert "(health: starting)" in _ps_status(engine, cid)
    assert engine.run("ps", "-q", "--no-trunc", "--filter",
                      "health=starting").stdout.split() == [cid]


def test_the_image_healthcheck_merged_and_no_healthcheck(engine: Engine,
                                                         workdir: Path) -> None:
    (workdir / "Dockerfile").write_text(
        'FROM busybox\nHEALTHCHECK --interval=100ms --retries=2 CMD ["true"]\n')
    engine.run("build", "-q", "-t", "healthy:1", str(workdir))
    try:
        assert json.loads(engine.run("image", "inspect", "-f", "{{json .Config.Healthcheck}}",
                                     "healthy:1").stdout) == {
            "Test": ["CMD", "true"], "Interval": 100_000_000, "Retries": 2}
        from_image = _run(engine, "healthy:1", "sleep", "1000")
        assert until(lambda: _status(engine, from_image) == "healthy")
        overridden = _run(engine, "--health-cmd", "exit 1", "healthy:1", "sleep", "1000")
        assert engine.inspect(overridden)["Config"]["Healthcheck"] == {
            "Test": ["CMD-SHELL", "exit 1"], "Interval": 100_000_000, "Retries": 2}
        assert until(lambda: _status(engine, overridden) == "unhealthy")
        none = _run(engine, "--no-healthcheck", "healthy:1", "sleep", "1000")
        assert engine.inspect(none)["Config"]["Healthcheck"]["Test"] == ["NONE"]
        assert _health(engine, none) is None
        assert _ps_status(engine, none).startswith("Up ")
        assert "(" not in _ps_status(engine, none)
        assert engine.run("ps", "-q", "--no-trunc", "--filter",
                          "health=none").stdout.split() == [none]
        # commit keeps the container's healthcheck, as Docker's does
        engine.run("commit", overridden, "healthy:2")
        assert json.loads(engine.run("image", "inspect", "-f", "{{json .Config.Healthcheck}}",
                                     "healthy:2").stdout)["Test"] == ["CMD-SHELL", "exit 1"]
    finally:
        for cid in engine.ids():
            engine.run("rm", "-f", cid, check=False)
        engine.run("rmi", "healthy:2", "healthy:1", check=False)


def test_a_foreground_run_probes_too(engine: Engine) -> None:
    """`run` attached: the Python monitor serves the container itself (no shim)."""
    # the second probe begins after the first one's result is in
    proc = engine.run("run", "--name", "fg-health", "--network", "none", "--health-cmd",
                      "echo x >> /probed", *FAST, "busybox", "sh", "-c",
                      "until [ \"$(cat /probed 2>/dev/null | wc -l)\" -ge 2 ]; do sleep 0.05;"
                      " done; echo done")
    assert proc.stdout == "done\n"
    health = _health(engine, "fg-health")
    assert health is not None and health["Status"] == "unhealthy"  # stopped
    assert health["Log"] and health["Log"][0]["ExitCode"] == 0
    engine.run("rm", "fg-health")


@pytest.mark.parametrize("flags, message", [
    (("--no-healthcheck", "--health-cmd", "true"),
     "--no-healthcheck conflicts with --health-* options"),
    (("--health-interval", "abc"),
     'invalid argument "abc" for "--health-interval" flag: time: invalid duration "abc"'),
    (("--health-timeout", "5"),
     'invalid argument "5" for "--health-timeout" flag: time: missing unit in duration "5"'),
    (("--health-interval", "10us"), "Interval in Healthcheck cannot be less than 1ms"),
    (("--health-start-period", "-1s"), "--health-start-period cannot be negative"),
    (("--health-retries", "-1"), "--health-retries cannot be negative"),
])
def test_bad_flags(engine: Engine, flags: tuple[str, ...], message: str) -> None:
    proc = engine.run("run", "--rm", *flags, "busybox", "true", check=False)
    assert proc.returncode == 125
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert engine.ids() == []


def test_bad_health_filter(engine: Engine) -> None:
    cid = _run(engine, "busybox", "sleep", "1000")
    proc = engine.run("ps", "--filter", "health=bogus", check=False)
    assert proc.returncode != 0
    assert "Unrecognised filter value for health: bogus" in proc.stderr
    engine.run("rm", "-f", cid)


def _monitor_children(engine: Engine, cid: str) -> list[int]:
    pid = engine.inspect(cid)["State"]["Pid"]
    with open(f"/proc/{pid}/stat") as f:
        monitor = int(f.read().rpartition(")")[2].split()[1])
    children = []
    for task in os.listdir(f"/proc/{monitor}/task"):
        with open(f"/proc/{monitor}/task/{task}/children") as f:
            children += [int(p) for p in f.read().split()]
    return [p for p in children if p != pid]


def test_no_process_between_checks(engine: Engine) -> None:
    """The monitor (tomato-shim) starts one short probe per check and nothing stays."""
    # (failing in its start period: still starting, probed at the start interval)
    cid = _run(engine, "--health-cmd", "exit 1", "--health-interval", "1h",
               "--health-start-period", "1h", "--health-start-interval", "300ms",
               "busybox", "sleep", "1000")
    assert until(lambda: len((_health(engine, cid) or {}).get("Log", [])) >= 2)
    pid = engine.inspect(cid)["State"]["Pid"]
    with open(f"/proc/{pid}/stat") as f:
        monitor = int(f.read().rpartition(")")[2].split()[1])
    assert os.readlink(f"/proc/{monitor}/exe").endswith("tomato-shim")
    # Between checks the shim has no child but the container's init.
    assert until(lambda: _monitor_children(engine, cid) == [])


def test_paused_is_unhealthy_until_probed_again(engine: Engine) -> None:
    """Docker stops a paused container's probes, which makes it unhealthy; the first
    probe after unpause tells again."""
    cid = _run(engine, "--health-cmd", "true", *FAST, "busybox", "sleep", "1000")
    assert until(lambda: _status(engine, cid) == "healthy")
    engine.run("pause", cid)
    assert _status(engine, cid) == "unhealthy"
    assert _ps_status(engine, cid).endswith("(Paused)")
    engine.run("unpause", cid)
    assert until(lambda: _status(engine, cid) == "healthy")
