"""`stop -s SIG` / `restart -s SIG` send SIG first (they were accepted and ignored)."""

from __future__ import annotations

from .conftest import Engine


def test_stop_and_restart_send_the_signal_asked_for(engine: Engine) -> None:
    cid = engine.run("run", "-d", "--network", "none", "busybox", "sh", "-c",
                     'trap "exit 3" USR1; trap "exit 4" TERM; '
                     "while :; do sleep 0.1; done").stdout.strip()
    try:
        engine.run("stop", "-s", "USR1", "-t", "10", cid)
        assert engine.inspect(cid)["State"]["ExitCode"] == 3
        engine.run("start", cid)
        engine.run("restart", "--signal", "SIGUSR1", "-t", "10", cid)
        assert engine.inspect(cid)["State"]["Status"] == "running"
        engine.run("stop", "-t", "10", cid)
        assert engine.inspect(cid)["State"]["ExitCode"] == 4  # SIGTERM by default
    finally:
        engine.run("rm", "-f", cid)
