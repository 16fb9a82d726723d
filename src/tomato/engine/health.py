"""Healthchecks, as Docker runs them (moby's daemon/health.go): the config, its
merge with the image's, and what a probe's result does to a container's health.

A container's ``Config.Healthcheck`` is Docker's HealthConfig: ``Test`` (``["CMD",
args...]``, ``["CMD-SHELL", "command"]`` or ``["NONE"]``) and the durations in
nanoseconds, zero ones left out (zero: Docker's default).  The effective one -- the
run options' laid over the image's -- is kept in the container's record.

Its health (``State.Health``: Status, FailingStreak and the last five results) lives
in ``health.json`` in the container's directory: written by the probe (healthprobe.py,
one short process per check, started by the container's monitor: tomato-shim or the
Python monitor's loop) and by the monitor when the container starts (``starting``)
and stops (``unhealthy``, as Docker's ``CloseMonitorChannel``).  Only one of them
writes at a time: the monitor never runs two probes, and ends a probe before it
writes itself.

    starting --0--> healthy --(retries failures in a row)--> unhealthy --0--> healthy
    a failure while starting counts only after the start period
"""

from __future__ import annotations

import os

from tomato import fastjson as json  # each check imports us: json costs ~5 ms (re, enum)
from tomato.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs ~2 ms to import: the monitor imports us
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND  #: between probes (from the end of one to the next)
DEFAULT_TIMEOUT = 30 * SECOND  #: a probe running longer has failed (and is killed)
DEFAULT_START_PERIOD = 0  #: failures in it do not count until one probe passed
DEFAULT_START_INTERVAL = 5 * SECOND  #: between probes in the start period
DEFAULT_RETRIES = 3  #: failures in a row that make a container unhealthy
MIN_DURATION = 1_000_000  #: moby's containertypes.MinimumDuration (1ms)
MAX_LOG = 5  #: results kept in State.Health.Log
MAX_OUTPUT = 4096  #: bytes of a probe's output kept (then "...")

STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"
FILE = "health.json"

_DURATION_KEYS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


# -- durations, as Go's time package writes and reads them ----------------------------
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": SECOND,
          "m": 60 * SECOND, "h": 3600 * SECOND}


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration ("1m30s", "500ms", "-2s"), in nanoseconds; ValueError with
    Go's message."""
    s, total, neg = text, 0, False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        number, s = s[:i], s[i:]
        if not number or number == "." or number.count(".") > 1 or \
                not any(ch.isdigit() for ch in number):
            raise ValueError(f'time: invalid duration "{text}"')
        j = 0
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit, s = s[:j], s[j:]
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        whole, _, frac = number.partition(".")
        value = int(whole or "0") * _UNITS[unit]
        if frac:
            value += int(frac) * _UNITS[unit] // 10 ** len(frac)
        total += value
        if total > 2**63 - 1:
            raise ValueError(f'time: invalid duration "{text}"')
    return -total if neg else total


def go_duration(ns: int) -> str:
    """Go's Duration.String(): "1.5s", "1m30s", "500ms", "1h0m0s", "0s"."""
    if ns == 0:
        return "0s"
    sign, n = ("-", -ns) if ns < 0 else ("", ns)
    if n < SECOND:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                return sign + _fraction(n, size) + unit
    seconds = _fraction(n % (60 * SECOND), SECOND) + "s"
    minutes = n // (60 * SECOND)
    if not minutes:
        return sign + seconds
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{sign}{minutes}m{seconds}"
    return f"{sign}{hours}h{minutes}m{seconds}"


def _fraction(n: int, unit: int) -> str:
    whole, rest = divmod(n, unit)
    if not rest:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{str(rest).rjust(digits, '0').rstrip('0')}"


# -- the config -----------------------------------------------------------------------
def from_flags(cmd: str, durations: dict[str, str], retries: int,
               no_healthcheck: bool) -> dict[str, Any] | None:
    """docker's CLI: --health-* flags into a HealthConfig (None: none given).
    ``durations``: flag name ("interval", "timeout", "start-period", "start-interval")
    -> its text."""
    values: dict[str, int] = {}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        text = durations.get(flag)
        if text is None:
            continue
        try:
            values[key] = parse_go_duration(text)
        except ValueError as err:
            raise InvalidArgument(f'invalid argument "{text}" for "--health-{flag}" flag: '
                                  f"{err}") from None
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("retries", "Retries"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        value = retries if key == "Retries" else values.get(key, 0)
        if value < 0:
            raise InvalidArgument(f"--health-{flag} cannot be negative")
    given = bool(cmd) or retries != 0 or any(values.values())
    if no_healthcheck:
        if given:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    out: dict[str, Any] = {"Test": ["CMD-SHELL", cmd]} if cmd else {}
    out.update({k: v for k, v in values.items() if v})
    if retries:
        out["Retries"] = retries
    return out


def validate(hc: dict[str, Any] | None) -> None:
    """The daemon's checks (moby's validateHealthCheck), in its words."""
    if not hc:
        return
    for key in _DURATION_KEYS:
        value = hc.get(key, 0)
        if value and value < MIN_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than "
                                  f"{go_duration(MIN_DURATION)}")
    if hc.get("Retries", 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")


def merge(user: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """The container's healthcheck: the run's, its unset fields from the image's (moby's
    merge in daemon/commit.go)."""
    if not user:
        return dict(image) if image else None
    out = dict(user)
    for key in ("Test", *_DURATION_KEYS, "Retries"):
        if not out.get(key) and image and image.get(key):
            out[key] = image[key]
    return out


def probe_command(hc: dict[str, Any] | None, shell: list[str] | None) -> list[str] | None:
    """What a probe runs in the container, or None when there is no probe (no config,
    NONE, or a type Docker does not know: it warns and runs nothing)."""
    test = (hc or {}).get("Test") or []
    if not test:
        return None
    if test[0] == "CMD":
        return list(test[1:]) or None  # ["CMD"] alone: nothing to run
    if test[0] == "CMD-SHELL":
        return [*(shell or ["/bin/sh", "-c"]), *test[1:]]
    return None


def timings(hc: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(interval, timeout, start period, start interval, retries), defaults applied."""
    return (hc.get("Interval") or DEFAULT_INTERVAL, hc.get("Timeout") or DEFAULT_TIMEOUT,
            hc.get("StartPeriod") or DEFAULT_START_PERIOD,
            hc.get("StartInterval") or DEFAULT_START_INTERVAL,
            int(hc.get("Retries") or 0) if int(hc.get("Retries") or 0) > 0 else DEFAULT_RETRIES)


def next_delay(hc: dict[str, Any], since_start: int, starting: bool) -> int:
    """Nanoseconds until the next probe (moby's getInterval): the start interval while
    the start period lasts and the container is still starting, else the interval."""
    interval, _, start_period, start_interval, _ = timings(hc)
    if since_start >= start_period:
        return interval
    return start_interval if starting else interval


# -- results ----------------------------------------------------------------------------
def limited_output(data: bytes, truncated: bool) -> str:
    """A probe's output as Docker keeps it: the first 4096 bytes, "..." if there was more
    (invalid UTF-8 shown as U+FFFD, as Go's json writes it)."""
    text = data[:MAX_OUTPUT].decode("utf-8", errors="replace")
    return text + "..." if truncated or len(data) > MAX_OUTPUT else text


def apply_result(health: dict[str, Any], result: dict[str, Any], hc: dict[str, Any],
                 since_start: int) -> dict[str, Any]:
    """The health after one result (moby's handleProbeResult).  ``result``: Start, End,
    ExitCode, Output (Docker's HealthcheckResult); ``since_start``: nanoseconds from the
    container's start to the probe's."""
    _, _, start_period, _, retries = timings(hc)
    log = [*health.get("Log", []), result][-MAX_LOG:]
    status = health.get("Status", STARTING)
    streak = int(health.get("FailingStreak", 0))
    if result["ExitCode"] == 0:
        status, streak = HEALTHY, 0
    elif not (status == STARTING and since_start < start_period):
        streak += 1  # (in the start period a failure while starting does not count)
        if streak >= retries:
            status = UNHEALTHY
    return {"Status": status, "FailingStreak": streak, "Log": log}


# -- health.json -------------------------------------------------------------------------
def read(cdir: Path | str) -> dict[str, Any] | None:
    """The container's State.Health, or None when it has none (yet)."""
    try:
        with open(os.path.join(cdir, FILE), "rb") as f:
            health = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return health if isinstance(health, dict) and "Status" in health else None


def write(cdir: Path | str, health: dict[str, Any]) -> None:
    """Replaced whole (a reader sees the old or the new); a full disk loses this one
    result, never the container."""
    tmp = os.path.join(cdir, FILE + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(health).encode())
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(cdir, FILE))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def container_started(cdir: Path | str) -> None:
    """A (re)start: starting again, no failures, the log kept (moby's initHealthMonitor)."""
    write(cdir, {**(read(cdir) or {"Log": []}), "Status": STARTING, "FailingStreak": 0})


def container_stopped(cdir: Path | str) -> None:
    """The monitor stops probing: unhealthy, as Docker's CloseMonitorChannel says."""
    health = read(cdir)
    if health is not None:
        write(cdir, {**health, "Status": UNHEALTHY})


def status_of(options: dict[str, Any], running: bool, cdir: Path | str) -> str:
    """"none", or the health `ps --filter health=` and the STATUS column show."""
    if probe_command(options.get("healthcheck"), options.get("shell")) is None:
        return NONE
    health = read(cdir)
    if health is None:
        return NONE if not running else STARTING
    return health["Status"] if running else UNHEALTHY


def check_filter(value: str) -> None:
    """`ps --filter health=VALUE`: one of Docker's four words, or its error."""
    if value not in (STARTING, HEALTHY, UNHEALTHY, NONE):
        raise InvalidArgument(f"Unrecognised filter value for health: {value}")


def of_container(root: Path | str, c: Any) -> str:
    """A container record's health: "none", "starting", "healthy" or "unhealthy"."""
    return status_of(c.options, c.state.status == "running",
                     os.path.join(root, "containers", c.id))


def state_health(options: dict[str, Any], running: bool,
                 cdir: Path | str) -> dict[str, Any] | None:
    """``State.Health`` for inspect: None for a container without a probe, or one never
    started."""
    if probe_command(options.get("healthcheck"), options.get("shell")) is None:
        return None
    health = read(cdir)
    if health is None:
        return None
    if not running:
        health["Status"] = UNHEALTHY
    return health


__all__ = ["parse_go_duration", "go_duration", "from_flags", "validate", "merge",
           "probe_command", "timings", "next_delay", "limited_output", "apply_result",
           "read", "write", "container_started", "container_stopped", "status_of",
           "of_container", "check_filter",
           "state_health", "STARTING", "HEALTHY", "UNHEALTHY", "NONE"]
