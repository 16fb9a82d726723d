"""The real docker CLI against `tomato serve`."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .conftest import DOCKER, Server


def test_version_negotiated(api: Server) -> None:
    out = api.docker("version", "--format", "{{json .}}").stdout
    data = json.loads(out)
    assert data["Server"]["ApiVersion"] == "1.43"
    assert data["Client"]["ApiVersion"] == "1.43"  # downgraded from the client's own
    info = json.loads(api.docker("info", "--format", "{{json .}}").stdout)
    assert info["Driver"] == "overlay2"
    assert info["Images"] >= 1


def test_run_rm_echo(api: Server) -> None:
    proc = api.docker("run", "--rm", "busybox", "echo", "hi")
    assert proc.stdout == "hi\n"
    assert proc.returncode == 0
    assert api.docker("ps", "-aq").stdout == ""  # --rm: gone when run returns


def test_foreground_output_after_a_pause(api: Server) -> None:
    # the CLI half-closes the attach connection when it has no stdin: output must go on
    proc = api.docker("run", "--rm", "busybox", "sh", "-c", "echo early; sleep 1.5; echo late")
    assert proc.stdout == "early\nlate\n"


@pytest.mark.parametrize("code", [1, 3, 42])
def test_exit_codes_propagate(api: Server, code: int) -> None:
    proc = api.docker("run", "--rm", "busybox", "sh", "-c", f"echo out; echo err >&2; exit {code}",
                      check=False)
    assert proc.returncode == code
    assert proc.stdout == "out\n"
    assert proc.stderr == "err\n"  # stderr demultiplexed from the 8-byte frames


def test_run_without_rm_keeps_the_container(api: Server) -> None:
    proc = api.docker("run", "--name", "kept", "busybox", "sh", "-c", "exit 4", check=False)
    assert proc.returncode == 4
    state = json.loads(api.docker("inspect", "kept").stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 4


def test_stdin_half_close(api: Server) -> None:
    proc = api.docker("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo end",
                      input="line1\nline2\n")
    assert proc.stdout == "line1\nline2\nend\n"


def test_detached_ps_logs_stop_rm(api: Server) -> None:
    cid = api.docker("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
                     "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"
                     ).stdout.strip()
    assert len(cid) == 64
    ps = api.docker("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout.split()
    assert ps[0] == cid[:12] and ps[1] == "ticker" and ps[2] == "Up"
    # logs -f follows new output
    follower = subprocess.Popen([DOCKER, "logs", "-f", "ticker"], stdout=subprocess.PIPE,
                                env=api.env(), text=True)
    assert follower.stdout is not None
    lines = [follower.stdout.readline() for _ in range(15)]
    assert lines[0] == "tick 0\n" and lines[14] == "tick 14\n"
    api.docker("stop", "-t", "1", "ticker")
    follower.wait(20)  # ends when the container does
    assert follower.returncode == 0
    state = json.loads(api.docker("inspect", "ticker").stdout)[0]["State"]
    assert state["Running"] is False and state["ExitCode"] == 137  # sh ignores TERM as pid 1
    tail = api.docker("logs", "--tail", "2", "-t", "ticker").stdout.splitlines()
    assert len(tail) == 2 and tail[0].split(" ", 1)[1].startswith("tick ")
    assert tail[0][:4].isdigit() and "T" in tail[0].split(" ")[0]  # RFC 3339 timestamps
    api.docker("rm", "ticker")
    assert api.docker("ps", "-aq").stdout == ""


def test_rm_force_running(api: Server) -> None:
    api.docker("run", "-d", "--name", "victim", "busybox", "sleep", "1000")
    proc = api.docker("rm", "victim", check=False)
    assert proc.returncode != 0 and "cannot remove a running container" in proc.stderr
    api.docker("rm", "-f", "victim")
    assert api.docker("ps", "-aq").stdout == ""


def test_exec_it_through_a_pty(api: Server) -> None:
    pexpect = pytest.importorskip("pexpect")
    api.docker("run", "-d", "--name", "box", "busybox", "sleep", "1000")
    child = pexpect.spawn(DOCKER, ["exec", "-it", "box", "sh"], env=api.env(), timeout=20,
                          dimensions=(33, 101))
    child.expect(r"# ")
    child.sendline("echo $((6*7)); tty; stty size")
    child.expect("42")
    child.expect("/dev/pts/")
    child.expect("33 101")  # the client's terminal size reached the exec's pty
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5
    proc = api.docker("exec", "box", "sh", "-c", "exit 9", check=False)
    assert proc.returncode == 9


def test_run_it_through_a_pty(api: Server) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(DOCKER, ["run", "-it", "--rm", "busybox", "sh"], env=api.env(),
                          timeout=20)
    child.expect(r"# ")
    child.sendline("echo sum-$((2+3))")
    child.expect("sum-5")
    child.sendline("exit 6")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 6


def test_inspect_top_pause_rename(api: Server) -> None:
    api.docker("run", "-d", "--name", "insp", "-e", "FOO=bar", "--label", "k=v",
               "--restart", "on-failure:3", "-m", "64m", "busybox", "sleep", "1000")
    data = json.loads(api.docker("inspect", "insp").stdout)[0]
    assert data["Name"] == "/insp"
    assert "FOO=bar" in data["Config"]["Env"]
    assert data["Config"]["Labels"] == {"k": "v"}
    assert data["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert data["HostConfig"]["Memory"] == 64 << 20
    assert api.docker("inspect", "-f", "{{.State.Pid}}", "insp").stdout.strip() == \
        str(data["State"]["Pid"])
    top = api.docker("top", "insp").stdout
    assert "sleep 1000" in top
    api.docker("pause", "insp")
    assert api.docker("inspect", "-f", "{{.State.Status}}", "insp").stdout.strip() == "paused"
    api.docker("unpause", "insp")
    api.docker("rename", "insp", "insp2")
    assert api.docker("ps", "--format", "{{.Names}}").stdout.strip() == "insp2"
    proc = api.docker("inspect", "nosuch", check=False)
    assert proc.returncode != 0 and "No such object: nosuch" in proc.stderr


def test_cp_both_ways(api: Server, workdir: Path) -> None:
    api.docker("run", "-d", "--name", "cpbox", "busybox", "sleep", "1000")
    src = workdir / "hello.txt"
    src.write_text("hello from the host\n")
    api.docker("cp", str(src), "cpbox:/tmp/")
    assert api.docker("exec", "cpbox", "cat", "/tmp/hello.txt").stdout == "hello from the host\n"
    (workdir / "tree" / "sub").mkdir(parents=True)
    (workdir / "tree" / "sub" / "f").write_text("deep")
    api.docker("cp", str(workdir / "tree"), "cpbox:/srv")
    assert api.docker("exec", "cpbox", "cat", "/srv/sub/f").stdout == "deep"
    api.docker("exec", "cpbox", "sh", "-c", "mkdir -p /out/d && echo inner > /out/d/x")
    api.docker("cp", "cpbox:/out", str(workdir / "back"))
    assert (workdir / "back" / "d" / "x").read_text() == "inner\n"
    api.docker("cp", "cpbox:/etc/hostname", str(workdir / "hn"))
    assert (workdir / "hn").read_text().strip() == \
        api.docker("inspect", "-f", "{{.Id}}", "cpbox").stdout.strip()[:12]
    proc = api.docker("cp", "cpbox:/does/not/exist", str(workdir), check=False)
    assert proc.returncode != 0 and "Could not find the file /does/not/exist" in proc.stderr
    changes = api.docker("diff", "cpbox").stdout.splitlines()
    assert "A /tmp/hello.txt" in changes


def test_stats_no_stream(api: Server) -> None:
    api.docker("run", "-d", "--name", "st", "busybox", "sleep", "1000")
    out = api.docker("stats", "--no-stream", "--format", "{{json .}}", "st").stdout
    row = json.loads(out)
    assert row["Name"] == "st"
    assert row["PIDs"] == "1"
    used, limit = row["MemUsage"].split(" / ")
    assert used.endswith(("B", "KiB", "MiB")) and limit.endswith(("GiB", "MiB"))
    assert row["CPUPerc"].endswith("%")


def test_volumes(api: Server) -> None:
    api.docker("volume", "create", "--label", "team=red", "vol1")
    names = api.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert "vol1" in names
    assert json.loads(api.docker("volume", "inspect", "vol1").stdout)[0]["Labels"] == \
        {"team": "red"}
    api.docker("run", "--rm", "-v", "vol1:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert api.docker("run", "--rm", "-v", "vol1:/data", "busybox", "cat", "/data/f").stdout \
        == "kept\n"
    api.docker("volume", "rm", "vol1")
    assert "vol1" not in api.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    proc = api.docker("volume", "rm", "vol1", check=False)
    assert proc.returncode != 0 and "no such volume" in proc.stderr


def test_bind_mount_and_port_binding_in_create(api: Server, workdir: Path) -> None:
    (workdir / "in.txt").write_text("bound\n")
    out = api.docker("run", "--rm", "-v", f"{workdir}:/mnt:ro", "busybox", "cat",
                     "/mnt/in.txt").stdout
    assert out == "bound\n"
    proc = api.docker("run", "--rm", "-v", f"{workdir}:/mnt:ro", "busybox", "touch", "/mnt/x",
                      check=False)
    assert proc.returncode != 0


def test_images_pull_rmi(api: Server, registry: object) -> None:
    ref = f"{registry.addr}/busybox:latest"  # type: ignore[attr-defined]
    proc = api.docker("pull", ref)
    assert "Pulling from busybox" in proc.stdout
    assert "Pull complete" in proc.stdout or "Already exists" in proc.stdout
    assert "Digest: sha256:" in proc.stdout
    assert f"Status: Downloaded newer image for {ref}" in proc.stdout
    again = api.docker("pull", ref).stdout
    assert "Image is up to date" in again
    images = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert ref in images and "busybox:latest" in images
    assert api.docker("run", "--rm", ref, "echo", "pulled").stdout == "pulled\n"
    api.docker("tag", ref, "retagged:v1")
    assert "retagged:v1" in api.docker("images", "--format",
                                       "{{.Repository}}:{{.Tag}}").stdout.split()
    out = api.docker("rmi", "retagged:v1").stdout
    assert "Untagged: retagged:v1" in out
    out = api.docker("rmi", ref).stdout
    assert f"Untagged: {ref}" in out
    assert ref not in api.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    proc = api.docker("pull", f"{registry.addr}/nosuch:latest", check=False)  # type: ignore
    assert proc.returncode != 0 and proc.stderr.strip()
    info = json.loads(api.docker("image", "inspect", "busybox").stdout)[0]
    assert info["RepoTags"] == ["busybox:latest"]
    assert api.docker("history", "-q", "busybox").stdout.strip()


def test_save_and_load(api: Server, workdir: Path) -> None:
    tar = workdir / "bb.tar"
    api.docker("save", "-o", str(tar), "busybox:latest")
    assert tar.stat().st_size > 100_000
    api.docker("tag", "busybox:latest", "copy:one")
    api.docker("rmi", "copy:one")
    out = api.docker("load", "-i", str(tar)).stdout
    assert "Loaded image: busybox:latest" in out


def test_events(api: Server) -> None:
    since = str(int(time.time()) - 1)
    api.docker("run", "--rm", "--name", "evented", "busybox", "true")
    until = str(int(time.time()) + 1)
    out = api.docker("events", "--since", since, "--until", until, "--filter",
                     "container=evented", "--format", "{{.Action}}").stdout.split()
    for action in ("create", "attach", "start", "die", "destroy"):
        assert out.count(action) == 1, out  # the engine reports each, the API no second time
    # a detached container nobody waits for still reports its death
    since = str(int(time.time()) - 1)
    api.docker("run", "-d", "--name", "loner", "busybox", "sh", "-c", "exit 3")
    deadline = time.monotonic() + 15
    while api.docker("inspect", "-f", "{{.State.Status}}", "loner").stdout.strip() != "exited":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)
    out = api.docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                     "--filter", "container=loner", "--filter", "event=die", "--format",
                     "{{.Action}} {{index .Actor.Attributes \"exitCode\"}}").stdout.split("\n")
    assert "die 3" in out, out
    # a live stream sees events as they happen
    watcher = subprocess.Popen([DOCKER, "events", "--filter", "type=volume", "--format",
                                "{{.Action}} {{.Actor.ID}}"], stdout=subprocess.PIPE,
                               env=api.env(), text=True)
    try:
        time.sleep(0.5)
        api.docker("volume", "create", "evvol")
        assert watcher.stdout is not None
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(watcher.stdout.readline()))
        reader.start()
        reader.join(15)
        assert box == ["create evvol\n"]
    finally:
        watcher.terminate()
        watcher.wait(10)


def test_container_prune_and_system_df(api: Server) -> None:
    api.docker("run", "--name", "done1", "busybox", "true")
    df = api.docker("system", "df", "--format", "{{.Type}} {{.TotalCount}}").stdout
    assert "Images" in df and "Containers 1" in df
    out = api.docker("container", "prune", "-f").stdout
    assert "Deleted Containers:" in out
    assert api.docker("ps", "-aq").stdout == ""


def test_networks(api: Server) -> None:
    api.docker("network", "create", "--subnet", "10.231.7.0/24", "appnet")
    assert "appnet" in api.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    api.docker("run", "-d", "--name", "srv", "--network", "appnet", "busybox", "httpd", "-f",
               "-p", "8080", "-h", "/etc")
    ip = api.docker("inspect", "-f", "{{.NetworkSettings.Networks.appnet.IPAddress}}",
                    "srv").stdout.strip()
    assert ip.startswith("10.231.7.")
    out = api.docker("run", "--rm", "--network", "appnet", "busybox", "wget", "-qO-",
                     "http://srv:8080/hostname").stdout
    assert out.strip() == api.docker("inspect", "-f", "{{.Id}}", "srv").stdout.strip()[:12]
    api.docker("rm", "-f", "srv")
    api.docker("network", "rm", "appnet")
    assert "appnet" not in api.docker("network", "ls", "--format", "{{.Name}}").stdout.split()


def test_default_bridge_and_ports(api: Server) -> None:
    api.docker("run", "-d", "--name", "web", "-p", "127.0.0.1::8080", "busybox", "httpd", "-f",
               "-p", "8080", "-h", "/etc")
    port = api.docker("port", "web", "8080").stdout.strip()
    assert port.startswith("127.0.0.1:")
    import urllib.request

    deadline = time.monotonic() + 10
    while True:
        try:
            body = urllib.request.urlopen(f"http://{port}/hostname", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert body.decode().strip() == api.docker("inspect", "-f", "{{.Id}}", "web"
                                               ).stdout.strip()[:12]


_ = os


def test_push(api: Server, registry: object) -> None:
    target = f"{registry.addr}/pushed/busybox:v2"  # type: ignore[attr-defined]
    api.docker("tag", "busybox:latest", target)
    out = api.docker("push", target).stdout
    assert f"The push refers to repository [{target.rsplit(':', 1)[0]}]" in out
    assert "v2: digest: sha256:" in out
    api.docker("rmi", target)
    assert "Downloaded newer image" in api.docker("pull", target).stdout
    api.docker("rmi", target)


def test_login_checks_the_registry(api: Server, workdir: Path) -> None:
    import sys
    import warnings

    sys.path.insert(0, str(Path(__file__).parents[2]))
    from helpers.registry import Registry, need

    need("docker-registry")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt through libxcrypt: what docker-registry's htpasswd wants

        hashed = crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH))
    (workdir / "htpasswd").write_text(f"alice:{hashed}\n")
    (workdir / "reg").mkdir()
    with Registry(workdir / "reg", htpasswd=workdir / "htpasswd") as reg:
        ok = api.docker("login", reg.addr, "-u", "alice", "--password-stdin", input="s3cret")
        assert "Login Succeeded" in ok.stdout
        bad = api.docker("login", reg.addr, "-u", "alice", "--password-stdin", input="nope",
                         check=False)
        assert bad.returncode != 0 and "401" in bad.stderr


def test_update_export_start_attach(api: Server, workdir: Path) -> None:
    api.docker("create", "--name", "later", "busybox", "sh", "-c", "echo started; exit 2")
    proc = api.docker("start", "-a", "later", check=False)
    assert proc.stdout == "started\n" and proc.returncode == 2
    api.docker("run", "-d", "--name", "upd", "busybox", "sleep", "1000")
    api.docker("update", "--memory", "48m", "--memory-swap", "96m", "--cpus", "0.5", "upd")
    limits = api.docker("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.CpuQuota}}",
                        "upd").stdout.split()
    assert limits == [str(48 << 20), "50000"]
    tar = workdir / "fs.tar"
    api.docker("export", "-o", str(tar), "upd")
    names = subprocess.run(["tar", "-tf", str(tar)], capture_output=True, text=True,
                           check=True).stdout.split()
    assert "bin/busybox" in names and "etc/hostname" in names


def test_run_it_gets_the_terminal_size(api: Server) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(DOCKER, ["run", "-it", "--rm", "busybox", "sh"], env=api.env(),
                          timeout=20, dimensions=(27, 91))
    child.expect(r"# ")
    child.sendline("stty size")
    child.expect("27 91")
    child.setwinsize(30, 100)  # SIGWINCH → POST /containers/{id}/resize
    child.sendline("stty size")
    child.expect("30 100")
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_network_connect_disconnect(api: Server) -> None:
    api.docker("network", "create", "side")
    api.docker("run", "-d", "--name", "multi", "busybox", "sleep", "1000")
    api.docker("network", "connect", "--alias", "m2", "side", "multi")
    nets = json.loads(api.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                 "multi").stdout)
    assert set(nets) == {"bridge", "side"}
    out = api.docker("run", "--rm", "--network", "side", "busybox", "ping", "-c1", "-W2",
                     "m2").stdout
    assert "1 packets received" in out
    api.docker("network", "disconnect", "side", "multi")
    nets = json.loads(api.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                 "multi").stdout)
    assert set(nets) == {"bridge"}
    proc = api.docker("network", "rm", "nosuchnet", check=False)
    assert proc.returncode != 0 and "nosuchnet" in proc.stderr


def test_commit_and_image_prune(api: Server) -> None:
    api.docker("run", "--name", "maker", "busybox", "sh", "-c", "echo made > /made")
    image_id = api.docker("commit", "-c", "CMD cat /made", "maker", "extra:tag").stdout.strip()
    assert image_id.startswith("sha256:")
    assert api.docker("run", "--rm", "extra:tag").stdout == "made\n"
    # `maker` keeps busybox in use: prune -a removes only the committed image
    out = api.docker("image", "prune", "-a", "-f").stdout
    assert "Total reclaimed space" in out
    names = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert "extra:tag" not in names and "busybox:latest" in names


def test_ps_filters(api: Server) -> None:
    for name in ("first", "second", "third"):
        api.docker("create", "--name", name, "--network", "none", "--expose", "7000",
                   "--label", f"order={name}", "busybox", "true")
        time.sleep(0.01)  # distinct creation times

    def names(*filters: str) -> list[str]:
        args = [a for f in filters for a in ("--filter", f)]
        return sorted(api.docker("ps", "-a", *args, "--format", "{{.Names}}").stdout.split())

    assert names("before=third") == ["first", "second"]
    assert names("since=first") == ["second", "third"]
    assert names("since=first", "before=third") == ["second"]
    assert names("label=order=second") == ["second"]
    assert names("expose=7000") == ["first", "second", "third"]
    assert names("expose=7001/tcp") == []
    assert names("publish=7000") == []
    assert names("health=none") == ["first", "second", "third"]
    assert names("health=healthy") == []
    assert names("is-task=true") == []
    bad = api.docker("ps", "--filter", "before=nonesuch", check=False)
    assert bad.returncode != 0 and "nonesuch" in bad.stderr
    api.docker("rm", "first", "second", "third")


def test_stop_and_restart_with_a_signal(api: Server) -> None:
    """`docker stop -s SIG` / `restart -s SIG` (API 1.42's ?signal=) send SIG first."""
    api.docker("run", "-d", "--name", "sig", "busybox", "sh", "-c",
               'trap "exit 3" USR1; echo ready; while :; do sleep 0.1; done')
    try:
        # (as pid 1, sh ignores USR1 until its trap is set: wait for that)
        deadline = time.monotonic() + 20
        while "ready" not in api.docker("logs", "sig").stdout and time.monotonic() < deadline:
            time.sleep(0.05)
        api.docker("stop", "-s", "USR1", "-t", "10", "sig")
        state = json.loads(api.docker("inspect", "sig").stdout)[0]["State"]
        assert state["ExitCode"] == 3, state
        api.docker("start", "sig")
        api.docker("restart", "-s", "USR1", "-t", "10", "sig")
        state = json.loads(api.docker("inspect", "sig").stdout)[0]["State"]
        assert state["Running"] is True
    finally:
        api.docker("rm", "-f", "sig", check=False)
