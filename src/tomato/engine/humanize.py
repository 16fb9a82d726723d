"""Durations and statuses as Docker prints them (`docker ps`, the API's container list)."""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.engine.containers import State


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def status_text(state: State, health: str = "none") -> str:
    """The STATUS column: "Up 3 minutes", "Up 5 seconds (healthy)", "Exited (0) 2 seconds
    ago", ...; ``health``: the container's (health.status_of), shown while it runs."""
    now = time.time()
    if state.status == "running":
        suffix = "" if health == "none" else \
            " (health: starting)" if health == "starting" else f" ({health})"
        return f"Up {human_duration(now - state.started_at)}{suffix}"
    if state.status == "paused":
        return f"Up {human_duration(now - state.started_at)} (Paused)"
    if state.status == "restarting":
        return f"Restarting ({state.exit_code}) {human_duration(now - state.finished_at)} ago"
    if state.status == "exited":
        return f"Exited ({state.exit_code}) {human_duration(now - state.finished_at)} ago"
    return state.status.capitalize()
