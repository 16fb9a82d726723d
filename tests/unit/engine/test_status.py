"""The engine's one state machine (engine/status.py): every status change is checked
against the table, in the transaction that makes it, and takes typed fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from tomato.engine.config import EngineConfig
from tomato.engine.containers import Container, Containers, State
from tomato.engine.create import plan_network
from tomato.engine.options import RunOptions
from tomato.engine.status import (
    CREATED,
    EXITED,
    PAUSED,
    RESTARTING,
    RUNNING,
    TRANSITIONS,
    InvalidTransition,
    StateChange,
    check_transition,
    exited,
    running,
)


def test_a_misspelt_field_is_an_error() -> None:
    with pytest.raises(TypeError):
        StateChange(stauts=RUNNING)  # type: ignore[call-arg]
    assert StateChange(pid=3).items() == [("pid", 3)]


@pytest.mark.parametrize(("old", "new"), [
    (CREATED, RUNNING), (RUNNING, PAUSED), (PAUSED, RUNNING), (RUNNING, EXITED),
    (PAUSED, EXITED), (EXITED, RESTARTING), (RESTARTING, RUNNING), (EXITED, RUNNING),
    (EXITED, EXITED), (CREATED, CREATED)])
def test_docker_s_moves_are_allowed(old: str, new: str) -> None:
    check_transition("c" * 64, old, new)


@pytest.mark.parametrize(("old", "new"), [
    (CREATED, PAUSED), (CREATED, EXITED), (EXITED, PAUSED), (RUNNING, CREATED),
    (PAUSED, RESTARTING), (RUNNING, "runing")])
def test_other_moves_are_refused(old: str, new: str) -> None:
    with pytest.raises(InvalidTransition, match=f"cannot go from {old} to {new}"):
        check_transition("c" * 64, old, new)


def test_every_status_has_a_row() -> None:
    for targets in TRANSITIONS.values():
        assert targets <= set(TRANSITIONS)


def _record(root: Path) -> Containers:
    records = Containers(root)
    records.add(Container("a" * 64, "box", "busybox", "sha256:x", 0.0, {}, {}, State()))
    return records


def test_set_state_checks_the_move_in_its_transaction(tmp_path: Path) -> None:
    records = _record(tmp_path / "root")
    with pytest.raises(InvalidTransition):
        records.set_state("a" * 64, StateChange(status=PAUSED))
    assert records.get("box").state.status == CREATED  # nothing written
    state = records.set_state("a" * 64, running(42, 1234, 1.5))
    assert (state.status, state.pid, state.pid_start, state.started_at) == (RUNNING, 42, 1234,
                                                                             1.5)
    state = records.set_state("a" * 64, exited(137, 2.5, error="killed"))
    assert (state.status, state.pid, state.exit_code, state.error) == (EXITED, 0, 137,
                                                                        "killed")
    assert records.get("box").state == state


def test_planning_the_network_leaves_the_options_alone(tmp_path: Path) -> None:
    """_network_plan once rewrote its caller's opts.network and opts.publish."""
    cfg = EngineConfig(root=tmp_path / "root")
    opts = RunOptions(image="busybox", network="none", publish=[
        {"proto": "tcp", "host_ip": "", "host_port": 8080, "container_port": 80}],
        publish_all=True)
    before = opts.to_dict()
    plan = plan_network(cfg, opts, {"ExposedPorts": {"53/udp": {}}})
    assert (plan.mode, plan.publish, plan.publish_all, plan.nets) == ("none", (), False, None)
    assert opts.to_dict() == before
