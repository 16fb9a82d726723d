"""`stop -s SIG` / `restart -s SIG` send SIG first (they were accepted and ignored)."""

from __future__ import annotations

from .conftest import Engine, until


def test_stop_and_restart_send_the_signal_asked_for(engine: Engine) -> None:
    cid = engine.run("run", "-d", "--network", "none", "busybox", "sh", "-c",
                     'trap "exit 3" USR1; trap "exit 4" TERM; echo ready; '
                     "while :; do sleep 0.1; done").stdout.strip()
    try:
        # (as pid 1, sh ignores USR1 until its trap is set: wait for that)
        assert until(lambda: "ready" in engine.run("logs", cid).stdout)
        engine.run("stop", "-s", "USR1", "-t", "10", cid)
        assert engine.inspect(cid)["State"]["ExitCode"] == 3
        engine.run("start", cid)
        assert until(lambda: engine.run("logs", cid).stdout.count("ready") == 2)
        engine.run("restart", "--signal", "SIGUSR1", "-t", "10", cid)
        assert engine.inspect(cid)["State"]["Status"] == "running"
        assert until(lambda: engine.run("logs", cid).stdout.count("ready") == 3)
        engine.run("stop", "-t", "10", cid)
        assert engine.inspect(cid)["State"]["ExitCode"] == 4  # SIGTERM by default
    finally:
        engine.run("rm", "-f", cid)
