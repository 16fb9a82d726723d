"""`tomato run --explain` and `tomato exec --explain` show the steps they take."""

from __future__ import annotations

import json

from tomato.explain import parse_steps

from .conftest import Engine


def test_run_explain_shows_the_overlay_and_namespaces(engine: Engine) -> None:
    out = engine.run("run", "--name", "ex", "--network", "none", "--explain=full", "busybox",
                     "echo", "hi")
    assert out.stdout == "hi\n"
    calls = [c for c, _ in parse_steps(out.stderr)]
    data = json.loads(engine.run("inspect", "ex").stdout)[0]["GraphDriver"]["Data"]
    overlay = next(c for c in calls if c.startswith('mount("overlay"'))
    assert f"upperdir={data['UpperDir']}" in overlay and f"workdir={data['WorkDir']}" in overlay
    assert data["LowerDir"].split(":")[0] in overlay
    assert any(c.startswith("clone(") and "CLONE_NEWPID" in c for c in calls)
    assert any(c.startswith("pivot_root(") for c in calls)
    assert calls[-1].startswith("execve(") and "echo" in calls[-1]
    quiet = engine.run("run", "--rm", "--network", "none", "busybox", "true")
    assert parse_steps(quiet.stderr) == []


def test_exec_explain_shows_setns(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "exx", "--network", "none", "busybox", "sleep", "60")
    out = engine.run("exec", "--explain=full", "exx", "true")
    calls = [c for c, _ in parse_steps(out.stderr)]
    joined = [c for c in calls if c.startswith("setns(")]
    assert len(joined) >= 4  # ipc, uts, net, mnt (and pid through the runtime)
    assert calls[-1].startswith("execve(")


def test_run_explain_shows_the_veth_steps(engine: Engine) -> None:
    out = engine.run("run", "--rm", "--explain=full", "busybox", "true")
    steps = parse_steps(out.stderr)
    shells = [shell for _, shell in steps]
    assert any(s.startswith("ip link add ") and "type veth peer name eth0" in s for s in shells)
    assert any(s.startswith("ip addr add ") for s in shells)
    assert any(s.startswith("ip route add default via ") for s in shells)
