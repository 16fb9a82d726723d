"""`--format` parity, judged by docker itself: the docker CLI renders its templates on
the client from what `tomato serve` answers, so for the same engine root and the same
template `tomato`'s own rendering must print what docker prints.  Also the API's side
of issue 19: list filters docker sends, container sizes, /events filters and times,
/system/df's container sizes."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse

import pytest
from helpers.engine import TOMATO

from .conftest import Server


def tomato(api: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOMATO_ROOT": str(api.root)}
    proc = subprocess.run([TOMATO, *args], capture_output=True, text=True, env=env,
                          timeout=60, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"tomato {' '.join(args)} failed ({proc.returncode}): "
                             f"{proc.stderr}")
    return proc


def both(api: Server, *args: str) -> tuple[str, str]:
    return api.docker(*args).stdout, tomato(api, *args).stdout


@pytest.fixture
def web(api: Server) -> str:
    api.docker("volume", "create", "--label", "team=red", "pvol")
    api.docker("run", "-d", "--name", "pweb", "-l", "tier=front", "-l", "x=<y>",
               "-v", "pvol:/data", "busybox", "sleep", "300")
    api.docker("run", "--name", "pdone", "busybox", "sh", "-c", "echo hi > /made; exit 3",
               check=False)
    return "pweb"


# templates of the forms people use; none depends on the second it runs in
INSPECT = [
    "{{.State.Pid}} {{.State.Running}} {{.State.ExitCode}}",
    "{{json .Config.Cmd}} {{json .Config.Labels}}",
    "{{range .Mounts}}{{.Type}}:{{.Name}}:{{.Destination}} {{end}}",
    '{{(index .NetworkSettings.Networks "bridge").IPAddress}}',
    '{{index .Config.Labels "tier"}}',
    "{{if .State.Running}}up{{else}}down{{end}} {{.Name}} {{lower .State.Status}}",
    '{{printf "%s|%-8s|%q" .Name .State.Status .Config.Image}} {{len .Config.Cmd}}',
    '{{join .Config.Cmd ","}} {{upper .Config.Image}} {{title .State.Status}}',
    "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
    "{{.Config.Labels}} {{.HostConfig.AutoRemove}} {{.Config.Tty}}",
    "{{with .State}}{{.Status}}{{end}}",
]


@pytest.mark.parametrize("template", INSPECT)
def test_inspect_format_prints_what_docker_prints(api: Server, web: str,
                                                  template: str) -> None:
    theirs, ours = both(api, "inspect", "-f", template, web, "pdone")
    assert ours == theirs


LISTS = [
    ("ps", "-a", "--format", "table {{.Names}}\t{{.Label \"tier\"}}\t{{.Label \"x\"}}"),
    ("ps", "-a", "--format", "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.Names}}\t{{.State}}"),
    ("ps", "-a", "--format", "{{.Names}} {{.Labels}} {{.Networks}} {{.LocalVolumes}}"),
    ("ps", "-a", "--no-trunc", "--format", "{{.ID}}\t{{.Command}}"),
    ("ps", "--filter", "label=tier=front", "--format", "{{.Names}}"),
    ("ps", "-a", "--filter", "exited=3", "--format", "{{.Names}}"),
    ("ps", "-a", "--filter", "status=exited", "--filter", "ancestor=busybox", "-q"),
    ("images", "--format", "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}"),
    ("images", "--format", "{{json .Repository}} {{.VirtualSize}}"),
    ("images", "--digests", "--format", "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}"),
    ("images", "--filter", "dangling=false", "--filter", "reference=busy*", "-q"),
    ("network", "ls", "--format", "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"),
    ("network", "ls", "--filter", "type=builtin", "--filter", "driver=bridge", "-q"),
    ("volume", "ls", "--format", "table {{.Name}}\t{{.Driver}}\t{{.Mountpoint}}"),
    ("volume", "ls", "--filter", "label=team=red", "--filter", "dangling=false", "-q"),
    ("network", "inspect", "-f", "{{.Name}} {{.Driver}} {{range .IPAM.Config}}{{.Subnet}}"
                                 "{{end}} {{json .Internal}}", "bridge"),
    ("volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Labels}} {{.Mountpoint}}", "pvol"),
    ("image", "inspect", "-f", "{{.Os}} {{.Architecture}} {{json .RootFS.Layers}}",
     "busybox"),
    ("history", "--format", "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}",
     "busybox"),
    ("history", "--no-trunc", "-H=false", "--format", "{{.ID}} {{.Size}} {{.CreatedSince}}",
     "busybox"),
    ("info", "--format", "{{.Containers}} {{.ContainersRunning}} {{.Driver}} "
                         "{{json .Plugins.Volume}} {{.OSType}}"),
]


@pytest.mark.parametrize("args", LISTS, ids=[" ".join(a[:3]) for a in LISTS])
def test_list_formats_print_what_docker_prints(api: Server, web: str,
                                               args: tuple[str, ...]) -> None:
    theirs, ours = both(api, *args)
    if args[0] == "images":  # an image's rows: docker's order comes from a Go map's
        theirs, ours = (_header_then_sorted(t) for t in (theirs, ours))
    assert ours == theirs
    assert ours.strip()


def _header_then_sorted(text: str) -> str:
    lines = text.splitlines()
    head = lines[:1] if lines and lines[0].startswith("REPOSITORY") else []
    return "\n".join(head + sorted(lines[len(head):]))


def test_json_rows_are_dockers(api: Server, web: str) -> None:
    for args in (("images", "--format", "json"), ("volume", "ls", "--format", "json"),
                 ("network", "ls", "--format", "json")):
        theirs, ours = (_header_then_sorted(t) for t in both(api, *args))
        # IPv4: docker 28 reads API 1.47's EnableIPv4, which 1.43 lacks; CreatedSince:
        # the two commands may run in different seconds
        drop = {"IPv4", "CreatedSince"}
        assert [{k: v for k, v in json.loads(line).items() if k not in drop}
                for line in ours.splitlines()] == \
            [{k: v for k, v in json.loads(line).items() if k not in drop}
             for line in theirs.splitlines()], args
    # a row's own JSON (docker's context marshalled: keys sorted, <> escaped)
    ours = tomato(api, "ps", "--filter", "name=pweb", "--format", "{{json .}}").stdout
    assert '"Labels":"' in ours and "\\u003cy\\u003e" in ours and ours.index('"Command"') < \
        ours.index('"Names"')


def test_template_errors_are_dockers(api: Server, web: str) -> None:
    for args in (("ps", "--format", "{{.Nope}}"), ("ps", "--format", "{{.ID"),
                 ("ps", "--format", "{{.Label}}"), ("ps", "--format", "{{.Names.X}}"),
                 ("inspect", "-f", "{{.State.Pid.X}}", web),
                 ("inspect", "-f", "{{index .Config.Cmd 9}}", web),
                 ("inspect", "-f", "{{.Nope}}", web), ("inspect", "-f", "{{.Nope", web),
                 ("info", "--format", "{{.Nope}}")):
        theirs = api.docker(*args, check=False)
        ours = tomato(api, *args, check=False)
        assert ours.returncode == theirs.returncode, (args, ours.stderr, theirs.stderr)
        assert ours.stdout.strip() == theirs.stdout.strip() == ""
        # word for word, docker's own context names (*formatter.ContainerContext) included
        assert ours.stderr.strip().removeprefix("tomato: ") == theirs.stderr.strip(), args
        assert "Traceback" not in ours.stderr


def test_events_print_what_docker_prints(api: Server, web: str) -> None:
    since = str(int(time.time()) - 600)
    until = str(int(time.time()) + 1)
    time.sleep(1.1)  # until must have passed for both to replay and stop
    for extra in ((), ("--filter", "type=container", "--filter", "event=start"),
                  ("--filter", f"container={web}"), ("--filter", "label=tier=front"),
                  ("--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"),
                  ("--format", "{{json .}}"), ("--filter", "type=volume")):
        theirs, ours = both(api, "events", "--since", since, "--until", until, *extra)
        assert ours == theirs, extra
        assert ours.strip(), extra


def test_api_list_filters_docker_sends(api: Server, web: str) -> None:
    def get(path: str, **filters: list[str]) -> object:
        query = urllib.parse.quote(json.dumps(filters))
        status, body = api.request("GET", f"{path}?all=1&filters={query}")
        assert status == 200, body
        return body

    names = [c["Names"][0] for c in get("/containers/json", before=["pdone"])]  # type: ignore
    assert names == ["/pweb"]
    names = [c["Names"][0] for c in get("/containers/json", since=["pweb"])]  # type: ignore
    assert names == ["/pdone"]
    assert get("/containers/json", volume=["pvol"])[0]["Names"] == ["/pweb"]  # type: ignore
    assert get("/images/json", label=["nope=1"]) == []
    assert get("/images/json", before=["busybox"]) == []
    assert get("/volumes", dangling=["true"])["Volumes"] == []  # type: ignore
    # dockerd: not dangling is predefined or in use
    assert sorted(n["Name"] for n in get("/networks", dangling=["false"])) == \
        ["bridge", "host", "none"]  # type: ignore
    assert get("/networks", dangling=["true"]) == []
    status, body = api.request("GET", "/images/json?filters=" +
                               urllib.parse.quote(json.dumps({"bogus": ["1"]})))
    assert status == 400 and "invalid filter 'bogus'" in str(body)
    status, body = api.request("GET", "/events?until=1&filters=" +
                               urllib.parse.quote(json.dumps({"nope": ["x"]})))
    assert status == 400 and "invalid filter 'nope'" in str(body)


def test_api_container_sizes(api: Server, web: str) -> None:
    status, rows = api.request("GET", "/containers/json?all=1&size=1")
    assert status == 200
    done = next(r for r in rows if r["Names"] == ["/pdone"])
    assert done["SizeRw"] == 3  # "hi\n"
    assert done["SizeRootFs"] > done["SizeRw"]
    status, doc = api.request("GET", "/containers/pdone/json?size=1")
    assert status == 200 and doc["SizeRw"] == 3 and doc["SizeRootFs"] == done["SizeRootFs"]
    status, df = api.request("GET", "/system/df")
    assert next(c for c in df["Containers"] if c["Names"] == ["/pdone"])["SizeRw"] == 3
    sizes = api.docker("ps", "-a", "-s", "--filter", "name=pdone", "--format",
                       "{{.Size}}").stdout.strip()
    assert sizes == tomato(api, "ps", "-a", "-s", "--filter", "name=pdone", "--format",
                           "{{.Size}}").stdout.strip()
    assert sizes.startswith("3B (virtual ")


def test_api_prunes_with_filters_and_space(api: Server, web: str) -> None:
    api.docker("run", "--name", "pkeep", "-l", "keep=1", "busybox", "true")
    query = urllib.parse.quote(json.dumps({"label!": ["keep=1"], "until": ["0s"]}))
    status, body = api.request("POST", f"/containers/prune?filters={query}")
    assert status == 200, body
    assert body["SpaceReclaimed"] == 3  # pdone's "hi\n"
    assert len(body["ContainersDeleted"]) == 1
    names = api.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert sorted(names) == ["pkeep", "pweb"]
    status, body = api.request("POST", "/containers/prune?filters=" +
                               urllib.parse.quote(json.dumps({"colour": ["red"]})))
    assert status == 400 and "invalid filter 'colour'" in str(body)
    # docker's own CLI sends them
    out = api.docker("container", "prune", "-f", "--filter", "label=keep").stdout
    assert "Total reclaimed space: 0B" in out
    assert api.docker("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["pweb"]


def test_api_log_config_and_platform(api: Server) -> None:
    api.docker("run", "-d", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "x")
    api.docker("wait", "quiet")
    logs = api.docker("logs", "quiet", check=False)
    assert logs.returncode != 0
    assert "configured logging driver does not support reading" in logs.stderr
    bad = api.docker("run", "--rm", "--log-driver", "syslog", "busybox", "true", check=False)
    assert bad.returncode == 125 and "no log driver named 'syslog'" in bad.stderr
    bad = api.docker("run", "--rm", "--log-opt", "colour=red", "busybox", "true", check=False)
    assert bad.returncode == 125 and "unknown log opt 'colour'" in bad.stderr
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    other = "arm64" if arch != "arm64" else "amd64"
    status, body = api.request("POST", f"/containers/create?platform=linux/{other}",
                               {"Image": "busybox", "Cmd": ["true"]})
    assert status >= 400 and f"linux/{other}" in str(body)
    status, body = api.request("POST", f"/containers/create?platform=linux/{arch}",
                               {"Image": "busybox", "Cmd": ["true"]})
    assert status == 201, body
