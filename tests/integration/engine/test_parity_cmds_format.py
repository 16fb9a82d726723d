"""Issue 19's commands through the CLI against a real engine: Go templates in every
--format (docker's table headers, json rows, Go's printing), `ps -s` sizes, `system df`
and `-v`, `events` with docker's times and filters, prunes; docker's exit codes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers.engine import Engine, engine_root_with_busybox


def test_inspect_templates_print_as_go(engine: Engine) -> None:
    cid = engine.run("run", "-d", "--name", "tpl", "-l", "a=1", "-l", "b=two", "busybox",
                     "sleep", "100").stdout.strip()
    out = engine.run("inspect", "-f", "{{.State.Pid}}|{{.State.Running}}|{{json .Config.Cmd}}|"
                     "{{.Config.Labels}}|{{range $k, $v := .Config.Labels}}{{$k}}{{end}}|"
                     "{{if .State.Paused}}p{{else}}np{{end}}|{{upper .Name}}|"
                     '{{printf "%.5s" .Id}}|{{len .Config.Cmd}}|{{index .Config.Labels "b"}}',
                     "tpl").stdout
    pid = engine.inspect(cid)["State"]["Pid"]
    assert out == f'{pid}|true|["sleep","100"]|map[a:1 b:two]|ab|np|/TPL|{cid[:5]}|2|two\n'
    # docker inspect's raw fallback: a missing key is an error (exit 1), a bad template 64
    missing = engine.run("inspect", "-f", "{{.Nope}}", "tpl", check=False)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert 'map has no entry for key "Nope"' in missing.stderr
    broken = engine.run("inspect", "-f", "{{.State", "tpl", check=False)
    assert (broken.returncode, broken.stdout) == (64, "")
    assert broken.stderr == "tomato: template parsing error: template: :1: unclosed action\n"
    nil = engine.run("inspect", "-f", "{{.State.Health.Status}}", "tpl", check=False)
    assert nil.returncode == 1 and "Traceback" not in nil.stderr
    # --type, and an image through the same command
    assert engine.run("inspect", "--type", "image", "-f", "{{.Os}}", "busybox").stdout == \
        "linux\n"
    wrong = engine.run("inspect", "--type", "image", "tpl", check=False)
    assert wrong.returncode == 1 and "No such object: tpl" in wrong.stderr


def test_ps_table_json_and_sizes(engine: Engine) -> None:
    engine.run("run", "--name", "sized", "busybox", "sh", "-c",
               "head -c 5000 /dev/zero > /blob")
    table = engine.run("ps", "-a", "-s", "--filter", "name=sized").stdout.splitlines()
    assert table[0].split("   ")[0] == "CONTAINER ID"
    assert table[0].rstrip().endswith("NAMES     SIZE")
    assert table[1].endswith("5kB (virtual " + table[1].split("(virtual ")[1])
    rows = [json.loads(line) for line in engine.run("ps", "-a", "--format", "json").stdout
            .splitlines()]
    row = next(r for r in rows if r["Names"] == "sized")
    assert list(row) == sorted(row)  # docker marshals its context as a map
    assert row["State"] == "exited" and row["Command"].startswith('"sh -c')
    custom = engine.run("ps", "-a", "--filter", "name=sized", "--format",
                        "table {{.Names}}\t{{.Status}}\t{{.Size}}").stdout.splitlines()
    assert custom[0].split() == ["NAMES", "STATUS", "SIZE"]
    assert custom[0].startswith("NAMES     STATUS   ")  # Go's tabwriter: min width 10, pad 3
    assert custom[1].startswith("sized     Exited (0) ")
    assert "5kB (virtual" in custom[1]
    bad = engine.run("ps", "--format", "{{.Nope}}", check=False)
    assert bad.returncode == 1 and bad.stdout == ""
    assert "can't evaluate field Nope in type *formatter.ContainerContext" in bad.stderr
    inspected = engine.run("inspect", "-s", "-f", "{{.SizeRw}}", "sized").stdout
    assert inspected == "5000\n"


def test_ps_filters(engine: Engine) -> None:
    first = engine.run("create", "--name", "f1", "-l", "k=v", "busybox", "true").stdout.strip()
    engine.run("create", "--name", "f2", "busybox", "true")
    names = lambda *f: engine.run("ps", "-a", *f, "--format", "{{.Names}}").stdout.split()  # noqa: E731
    assert names("--filter", "before=f2") == ["f1"]
    assert names("--filter", "since=f1") == ["f2"]
    assert names("--filter", "label=k=v") == ["f1"]
    assert names("--filter", f"id={first[:10]}") == ["f1"]
    assert names("--filter", "status=created", "--filter", "name=^f") == ["f2", "f1"]
    assert engine.run("ps", "-a", "-l", "--format", "{{.Names}}").stdout == "f2\n"
    for bad in ("nope=1", "status=sleeping", "before=no-such"):
        proc = engine.run("ps", "-a", "--filter", bad, check=False)
        assert proc.returncode == 125 and proc.stderr.startswith("tomato: "), bad


def test_list_formats_for_images_networks_volumes(engine: Engine) -> None:
    engine.run("volume", "create", "--label", "team=red", "fmtvol")
    images = engine.run("images", "--format", "table {{.Repository}}:{{.Tag}}\t{{.Size}}"
                        ).stdout.splitlines()
    assert images[0].split() == ["REPOSITORY:TAG", "SIZE"]
    assert any(line.startswith("busybox:latest ") for line in images[1:])
    nets = engine.run("network", "ls", "--format", "{{.Name}}={{.Driver}}").stdout.split()
    assert "none=null" in nets and "host=host" in nets
    vols = engine.run("volume", "ls", "--filter", "label=team=red", "--format",
                      "{{.Name}} {{.Labels}}").stdout
    assert vols == "fmtvol team=red\n"
    assert engine.run("volume", "inspect", "-f", "{{.Labels.team}}", "fmtvol").stdout == "red\n"
    busybox = engine.run("images", "-q", "busybox").stdout
    assert busybox in engine.run("images", "--filter", "dangling=false", "-q").stdout
    assert busybox not in engine.run("images", "--filter", "dangling=true", "-q").stdout
    bad = engine.run("images", "--filter", "colour=red", check=False)
    assert bad.returncode != 0 and "invalid filter 'colour'" in bad.stderr
    engine.run("volume", "rm", "fmtvol")


def test_info_version_stats_df_formats(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "st", "busybox", "sleep", "100")
    info = engine.run("info", "--format", "{{.Driver}} {{json .Plugins.Volume}}").stdout
    assert info == 'overlay2 ["local"]\n'
    assert json.loads(engine.run("info", "--format", "json").stdout)["Driver"] == "overlay2"
    version = engine.run("version", "--format", "{{.Server.Os}}/{{.Client.Os}}").stdout
    assert version == "linux/linux\n"
    stats = engine.run("stats", "--no-stream", "--format",
                       "table {{.Name}}\t{{.PIDs}}\t{{.Container}}", "st").stdout.splitlines()
    assert stats[0].split() == ["NAME", "PIDS", "CONTAINER"]
    assert stats[1].split() == ["st", "1", "st"]
    df = engine.run("system", "df").stdout.splitlines()
    assert [line.split("  ")[0] for line in df] == ["TYPE", "Images", "Containers",
                                                    "Local Volumes", "Build Cache",
                                                    "Pull Cache"]
    rows = [json.loads(line) for line in engine.run("system", "df", "--format", "json")
            .stdout.splitlines()]
    containers = next(r for r in rows if r["Type"] == "Containers")
    assert int(containers["TotalCount"]) >= 1 and int(containers["Active"]) >= 1
    verbose = engine.run("system", "df", "-v").stdout
    for section in ("Images space usage:", "Containers space usage:",
                    "Local Volumes space usage:", "Build cache usage: "):
        assert section in verbose
    doc = json.loads(engine.run("system", "df", "-v", "--format", "json").stdout)
    assert any(c["Names"] == "st" for c in doc["Containers"])
    assert set(doc) == {"Images", "Containers", "Volumes", "BuildCache"}


def test_network_prune_filters(engine: Engine) -> None:
    engine.run("network", "create", "--label", "keep=1", "keepnet")
    engine.run("network", "create", "dropnet")
    try:
        assert engine.run("network", "prune", "-f", "--filter", "label=nope").stdout == ""
        out = engine.run("network", "prune", "-f", "--filter", "label!=keep=1",
                         "--filter", "until=0s").stdout
        assert out == "Deleted Networks:\ndropnet\n"
        names = engine.run("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert "keepnet" in names and "dropnet" not in names
        bad = engine.run("network", "prune", "-f", "--filter", "colour=red", check=False)
        assert bad.returncode != 0 and "invalid filter 'colour'" in bad.stderr
    finally:
        engine.run("network", "rm", "keepnet", check=False)
        engine.run("network", "rm", "dropnet", check=False)


def test_events_follow_until_interrupted(engine: Engine) -> None:
    import os
    import signal
    import subprocess

    from helpers.engine import TOMATO, until

    since = f"{time.time():.3f}"  # (however late it starts, it replays from here)
    with subprocess.Popen([TOMATO, "events", "--since", since, "--filter", "type=volume",
                           "--format", "{{.Action}} {{.Actor.ID}}"], env=engine.env(),
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            engine.run("volume", "create", "followed")
            assert proc.stdout is not None
            os.set_blocking(proc.stdout.fileno(), False)
            seen: list[str] = []
            assert until(lambda: seen.extend(proc.stdout.readlines()) or  # type: ignore
                         "create followed\n" in seen)
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(10) == 0
    engine.run("volume", "rm", "followed")


def test_events_since_until_filters_format(engine: Engine) -> None:
    start = time.time()
    engine.run("run", "--name", "ev1", "-l", "team=red", "busybox", "true")
    engine.run("create", "--name", "ev2", "busybox", "true")
    # a name no other test gives a volume: the "10m" replay below sees the root's
    # last ten minutes, and test_events.py makes and removes an "evvol" in the same root
    engine.run("volume", "create", "evfmtvol")
    time.sleep(1.1)  # --until must be in the past for the replay to end
    until = str(int(time.time()))
    since = f"{start - 1:.3f}"

    def events(*args: str) -> list[str]:
        return engine.run("events", "--since", since, "--until", until, *args,
                          timeout=30).stdout.splitlines()

    lines = events()
    assert any(" container create " in line and "name=ev1" in line for line in lines)
    assert lines[0][:4].isdigit() and lines[0][29] == "Z"  # 2006-01-02T15:04:05.000000000Z
    assert events("--filter", "type=volume", "--filter", "volume=evfmtvol", "--format",
                  "{{.Type}} {{.Action}} {{.Actor.ID}}") == ["volume create evfmtvol"]
    acts = events("--filter", "container=ev1", "--format", "{{.Action}}")
    assert acts[:2] == ["create", "start"] and "die" in acts and "ev2" not in " ".join(acts)
    assert events("--filter", "label=team=red", "--filter", "event=create",
                  "--format", "{{.Actor.Attributes.name}}") == ["ev1"]
    doc = json.loads(events("--filter", "container=ev2", "--format", "json")[0])
    assert list(doc)[:3] == ["status", "id", "from"] and doc["Action"] == "create"
    # docker's other time forms: a duration back from now, an RFC 3339 date
    assert engine.run("events", "--since", "10m", "--until", "0s", "--filter",
                      "volume=evfmtvol", "--format", "{{.Actor.ID}}").stdout == "evfmtvol\n"
    day = time.strftime("%Y-%m-%d", time.gmtime(start - 86400 * 2))  # a day long gone
    assert engine.run("events", "--since", day, "--until", day).stdout == ""
    for args, message in ((("--filter", "colour=red"), "invalid filter 'colour'"),
                          (("--since", "last week"), "failed to parse value as time"),
                          (("--format", "{{.Nope"), "failed to parse template")):
        bad = engine.run("events", "--until", "0s", *args, check=False)
        assert bad.returncode == 1 and message in bad.stderr, (args, bad.stderr)
    assert engine.run("system", "events", "--since", since, "--until", until, "--filter",
                      "type=volume", "--filter", "volume=evfmtvol", "--format",
                      "{{.Actor.ID}}").stdout == "evfmtvol\n"
    engine.run("volume", "rm", "evfmtvol")


def test_system_and_image_prune(workdir: Path, busybox_rootfs: Path) -> None:
    # a root of its own: `image prune -a` takes every unused image, busybox too
    engine = Engine(engine_root_with_busybox(workdir / "prune-root", busybox_rootfs))
    engine.run("run", "--network", "none", "--name", "gone", "busybox", "sh", "-c",
               "head -c 3000 /dev/zero > /x")
    engine.run("run", "--network", "none", "--name", "kept", "-l", "keep=1", "busybox", "true")
    engine.run("volume", "create", "prunevol")
    engine.run("volume", "create", "--label", "keep=1", "keptvol")
    engine.run("commit", "gone", "pruneme:1")
    out = engine.run("container", "prune", "-f", "--filter", "label!=keep=1", "--filter",
                     "until=0s").stdout
    assert out.startswith("Deleted Containers:\n") and out.endswith(
        "\n\nTotal reclaimed space: 3kB\n")
    assert engine.run("ps", "-a", "--format", "{{.Names}}").stdout == "kept\n"
    kept = engine.run("ps", "-aq", "--no-trunc").stdout
    assert engine.run("container", "prune", "-f").stdout == \
        f"Deleted Containers:\n{kept}\nTotal reclaimed space: 0B\n"
    bad = engine.run("container", "prune", "-f", "--filter", "colour=red", check=False)
    assert bad.returncode == 125 and "invalid filter 'colour'" in bad.stderr
    out = engine.run("volume", "prune", "-f", "--filter", "label!=keep").stdout
    assert out == "Deleted Volumes:\nprunevol\n\nTotal reclaimed space: 0B\n"
    engine.run("volume", "create", "prunevol")
    out = engine.run("system", "prune", "-f", "--volumes").stdout
    assert "Deleted Volumes:\nkeptvol\nprunevol" in out
    assert "Total reclaimed space:" in out
    assert engine.run("ps", "-aq").stdout == ""
    assert "pruneme" in engine.run("images", "--format", "{{.Repository}}").stdout
    refused = engine.run("image", "prune", "-f", "--filter", "until=1h", check=False)
    assert refused.returncode == 1 and "'until' filter is not supported" in refused.stderr
    out = engine.run("image", "prune", "-a", "-f").stdout
    assert "untagged: pruneme:1" in out and "untagged: busybox:latest" in out
    assert engine.run("images", "-q").stdout == ""
