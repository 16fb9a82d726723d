"""health.py's rules, without a container: Go's durations both ways, docker's CLI flags,
the merge with the image's config, and what each probe result does (moby's
handleProbeResult and getInterval)."""

from __future__ import annotations

import pytest

from tomato.engine import health
from tomato.errors import InvalidArgument

S = health.SECOND
MS = 1_000_000


@pytest.mark.parametrize("text, ns", [
    ("0", 0), ("1s", S), ("1.5s", S + 500 * MS), ("1m30s", 90 * S), ("500ms", 500 * MS),
    ("2h", 7200 * S), ("10us", 10_000), ("10µs", 10_000), ("3ns", 3), ("-2s", -2 * S),
    ("+1m", 60 * S), (".5s", 500 * MS), ("1h2m3.004s", 3723 * S + 4 * MS),
])
def test_parse_go_duration(text: str, ns: int) -> None:
    assert health.parse_go_duration(text) == ns


@pytest.mark.parametrize("text, message", [
    ("abc", 'time: invalid duration "abc"'), ("", 'time: invalid duration ""'),
    ("5", 'time: missing unit in duration "5"'), ("5x", 'time: unknown unit "x" in duration "5x"'),
    ("1..2s", 'time: invalid duration "1..2s"'), ("-", 'time: invalid duration "-"'),
    ("1s5", 'time: missing unit in duration "1s5"'),
])
def test_parse_go_duration_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        health.parse_go_duration(text)
    assert str(err.value) == message


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (S, "1s"), (S + 500 * MS, "1.5s"), (90 * S, "1m30s"), (500 * MS, "500ms"),
    (3600 * S, "1h0m0s"), (1, "1ns"), (1500, "1.5µs"), (MS, "1ms"), (-2 * S, "-2s"),
    (3723 * S + 4 * MS, "1h2m3.004s"),
])
def test_go_duration(ns: int, text: str) -> None:
    assert health.go_duration(ns) == text


def test_flags_as_docker_cli_builds_them() -> None:
    assert health.from_flags("", {}, 0, False) is None
    assert health.from_flags("", {}, 0, True) == {"Test": ["NONE"]}
    assert health.from_flags("curl -f x", {"interval": "2s", "timeout": "0s"}, 4, False) == {
        "Test": ["CMD-SHELL", "curl -f x"], "Interval": 2 * S, "Retries": 4}
    # durations alone: the image's command stays (merge)
    assert health.from_flags("", {"start-period": "1m"}, 0, False) == {"StartPeriod": 60 * S}


@pytest.mark.parametrize("args, message", [
    (("true", {}, 0, True), "--no-healthcheck conflicts with --health-* options"),
    (("", {"interval": "1s"}, 0, True), "--no-healthcheck conflicts with --health-* options"),
    (("", {"timeout": "-1s"}, 0, False), "--health-timeout cannot be negative"),
    (("", {}, -1, False), "--health-retries cannot be negative"),
    (("", {"start-interval": "x"}, 0, False),
     'invalid argument "x" for "--health-start-interval" flag: time: invalid duration "x"'),
])
def test_flags_refused(args: tuple, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidArgument) as err:
        health.from_flags(*args)
    assert str(err.value) == message


def test_daemon_checks() -> None:
    health.validate(None)
    health.validate({"Test": ["CMD", "true"], "Interval": MS, "Retries": 0})
    with pytest.raises(InvalidArgument, match="^Timeout in Healthcheck cannot be less than 1ms$"):
        health.validate({"Timeout": MS - 1})
    with pytest.raises(InvalidArgument, match="^StartInterval in Healthcheck cannot be less"):
        health.validate({"StartInterval": 5})
    with pytest.raises(InvalidArgument, match="^Retries in Healthcheck cannot be negative$"):
        health.validate({"Retries": -1})


def test_merge_with_the_image() -> None:
    image = {"Test": ["CMD", "true"], "Interval": 5 * S, "Retries": 2}
    assert health.merge(None, image) == image
    assert health.merge({}, image) == image
    assert health.merge({"Test": ["NONE"]}, image) == {"Test": ["NONE"], "Interval": 5 * S,
                                                       "Retries": 2}
    assert health.merge({"Interval": S}, image) == {**image, "Interval": S}
    assert health.merge({"Test": ["CMD-SHELL", "x"]}, None) == {"Test": ["CMD-SHELL", "x"]}
    assert health.merge(None, None) is None


def test_probe_command() -> None:
    assert health.probe_command({"Test": ["CMD", "a", "b c"]}, None) == ["a", "b c"]
    assert health.probe_command({"Test": ["CMD-SHELL", "a && b"]}, None) == [
        "/bin/sh", "-c", "a && b"]
    assert health.probe_command({"Test": ["CMD-SHELL", "x"]}, ["/bin/bash", "-ec"]) == [
        "/bin/bash", "-ec", "x"]
    for hc in (None, {}, {"Test": []}, {"Test": ["NONE"]}, {"Test": ["HTTP", "x"]},
               {"Test": ["CMD"]}):
        assert health.probe_command(hc, None) is None


def test_intervals() -> None:
    hc = {"Interval": 10 * S, "StartPeriod": 60 * S, "StartInterval": S}
    assert health.next_delay(hc, 0, True) == S  # starting, in the start period
    assert health.next_delay(hc, 0, False) == 10 * S  # healthy already
    assert health.next_delay(hc, 60 * S, True) == 10 * S  # the start period is over
    assert health.next_delay({}, 0, True) == 30 * S  # no start period by default
    assert health.timings({}) == (30 * S, 30 * S, 0, 5 * S, 3)
    assert health.timings({"Retries": -4})[4] == 3


def _result(code: int) -> dict[str, object]:
    return {"Start": "s", "End": "e", "ExitCode": code, "Output": ""}


def test_results() -> None:
    hc = {"Retries": 2, "StartPeriod": 10 * S}
    h = {"Status": "starting", "FailingStreak": 0, "Log": []}
    h = health.apply_result(h, _result(1), hc, 5 * S)  # in the start period: not counted
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)
    h = health.apply_result(h, _result(2), hc, 11 * S)  # any non-zero code fails
    assert (h["Status"], h["FailingStreak"]) == ("starting", 1)
    h = health.apply_result(h, _result(-1), hc, 12 * S)
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 2)
    h = health.apply_result(h, _result(0), hc, 13 * S)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)
    h = health.apply_result(h, _result(1), hc, 1 * S)  # healthy: the start period is moot
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 1)
    for _ in range(5):
        h = health.apply_result(h, _result(7), hc, 20 * S)
    assert h["Status"] == "unhealthy" and h["FailingStreak"] == 6
    assert [e["ExitCode"] for e in h["Log"]] == [7] * 5  # the last five only


def test_output_as_docker_keeps_it() -> None:
    assert health.limited_output(b"ok\n", False) == "ok\n"
    assert health.limited_output(b"a" * 4096, True) == "a" * 4096 + "..."
    assert health.limited_output(b"a" * 4097, False) == "a" * 4096 + "..."
    assert health.limited_output(b"\xff", False) == "\ufffd"


def test_health_file(tmp_path: object) -> None:
    from pathlib import Path

    cdir = Path(str(tmp_path))
    opts = {"healthcheck": {"Test": ["CMD", "true"]}}
    assert health.status_of(opts, True, cdir) == "starting"  # started, not yet written
    assert health.status_of(opts, False, cdir) == "none"  # never started
    assert health.state_health(opts, True, cdir) is None
    health.container_started(cdir)
    assert health.read(cdir) == {"Status": "starting", "FailingStreak": 0, "Log": []}
    health.write(cdir, {"Status": "healthy", "FailingStreak": 0, "Log": [_result(0)]})
    assert health.status_of(opts, True, cdir) == "healthy"
    assert health.status_of(opts, False, cdir) == "unhealthy"  # stopped
    health.container_stopped(cdir)
    health.container_started(cdir)  # a restart: starting again, the log kept
    assert health.read(cdir) == {"Status": "starting", "FailingStreak": 0,
                                 "Log": [_result(0)]}
    assert health.status_of({"healthcheck": {"Test": ["NONE"]}}, True, cdir) == "none"
    (cdir / "health.json").write_text("{broken")
    assert health.read(cdir) is None
    with pytest.raises(InvalidArgument, match="Unrecognised filter value for health: x"):
        health.check_filter("x")
