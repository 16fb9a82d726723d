"""Port ranges as Docker reads them (issue 19): `-p 8000-8010:80-90` maps port to port,
`-p 8000-8010:80` takes the first free port of the range, sizes that differ are
docker's error, and `-P` publishes each port of an EXPOSEd range.

Traffic only between the host and containers these tests create."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from .conftest import Engine, until

#: three httpds, each answering its own port number
SERVE = ("mkdir -p /www && for p in {ports}; do mkdir -p /www/$p && echo port$p > "
         "/www/$p/index.html && httpd -p $p -h /www/$p; done; exec sleep 600")


def _fetch(url: str) -> str:
    """GET with a bounded retry while the httpds start."""
    found: list[str] = []

    def ok() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                found.append(resp.read().decode())
            return True
        except OSError:
            return False
    assert until(ok, timeout=10), f"{url} never answered"
    return found[0]


def _free_block(size: int) -> int:
    """The first port of ``size`` consecutive ports nobody holds (bounded search)."""
    for start in range(21000, 40000, 97):
        held = []
        try:
            for port in range(start, start + size):
                s = socket.socket()
                s.bind(("0.0.0.0", port))
                held.append(s)
            return start
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise AssertionError("no free block of ports")


def test_range_to_range_maps_port_to_port(engine: Engine) -> None:
    first = _free_block(3)
    engine.run("run", "-d", "--name", "ranged", "-p", f"{first}-{first + 2}:80-82", "busybox",
               "sh", "-c", SERVE.format(ports="80 81 82"))
    for i in range(3):
        assert _fetch(f"http://127.0.0.1:{first + i}/") == f"port{80 + i}\n"
    assert engine.run("port", "ranged").stdout == "".join(
        f"{80 + i}/tcp -> 0.0.0.0:{first + i}\n" for i in range(3))
    bindings = engine.inspect("ranged")["HostConfig"]["PortBindings"]
    assert bindings == {f"{80 + i}/tcp": [{"HostIp": "", "HostPort": str(first + i)}]
                        for i in range(3)}
    # A second container cannot have any port of the range: nothing of it is made.
    before = engine.ids()
    busy = engine.run("run", "--rm", "-p", f"{first + 1}-{first + 3}:80-82", "busybox",
                      "true", check=False)
    assert busy.returncode == 125
    assert f"Bind for 0.0.0.0:{first + 1} failed: port is already allocated" in busy.stderr
    assert engine.ids() == before


def test_host_range_takes_the_first_free_port(engine: Engine) -> None:
    first = _free_block(4)
    squatter = socket.socket()  # a process of the host holds the first port of the range
    squatter.bind(("0.0.0.0", first))
    squatter.listen()
    try:
        engine.run("run", "-d", "--name", "one", "-p", f"{first}-{first + 3}:80", "busybox",
                   "sh", "-c", SERVE.format(ports="80"))
        engine.run("run", "-d", "--name", "two", "-p", f"{first}-{first + 3}:80", "busybox",
                   "sh", "-c", SERVE.format(ports="80"))
    finally:
        squatter.close()
    assert engine.run("port", "one", "80").stdout == f"0.0.0.0:{first + 1}\n"
    assert engine.run("port", "two", "80").stdout == f"0.0.0.0:{first + 2}\n"
    assert _fetch(f"http://127.0.0.1:{first + 2}/") == "port80\n"
    # Inspect keeps what was asked (the range) and shows what was given, as Docker's.
    one = engine.inspect("one")
    assert one["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": f"{first}-{first + 3}"}]}
    assert one["NetworkSettings"]["Ports"] == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(first + 1)}]}
    # The squatter gone, its port is the first free one; then the range is used up:
    # docker's refusal, nothing made.
    engine.run("run", "-d", "--name", "three", "-p", f"{first}-{first + 3}:80", "busybox",
               "sleep", "60")
    assert engine.run("port", "three", "80").stdout == f"0.0.0.0:{first}\n"
    before = engine.ids()
    full = engine.run("run", "--rm", "-p", f"{first}-{first + 2}:80", "busybox", "true",
                      check=False)
    assert full.returncode == 125
    assert f"Bind for 0.0.0.0:{first}-{first + 2} failed: port is already allocated" in \
        full.stderr
    assert engine.ids() == before


@pytest.mark.parametrize(("spec", "message"), [
    ("8000-8005:80-90", "invalid ranges specified for container and host Ports: 80-90 and "
                        "8000-8005"),
    ("9000-8000:80", "invalid hostPort: 9000-8000"),
    ("80-x", "invalid containerPort: 80-x"),
    ("[::1:80:80", "invalid port format for --publish: [::1:80:80"),
])
def test_bad_ranges_are_dockers_errors(engine: Engine, spec: str, message: str) -> None:
    proc = engine.run("run", "--rm", "-p", spec, "busybox", "true", check=False)
    assert proc.returncode == 125
    assert proc.stderr.strip().splitlines()[0].endswith(message)
    assert "Traceback" not in proc.stderr
    bad = engine.run("run", "--rm", "--expose", "90-80", "busybox", "true", check=False)
    assert (bad.returncode, "Traceback" in bad.stderr) == (125, False)
    assert "invalid range format for --expose: 90-80" in bad.stderr


def test_publish_all_publishes_each_port_of_an_exposed_range(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "allp", "-P", "--expose", "80-82", "busybox", "sh", "-c",
               SERVE.format(ports="80 81 82"))
    ports = engine.inspect("allp")["NetworkSettings"]["Ports"]
    assert sorted(ports) == ["80/tcp", "81/tcp", "82/tcp"]
    for number in (80, 81, 82):
        host = ports[f"{number}/tcp"][0]["HostPort"]
        assert _fetch(f"http://127.0.0.1:{host}/") == f"port{number}\n"
    assert len({ports[k][0]["HostPort"] for k in ports}) == 3


def test_api_port_binding_with_a_host_range(engine: Engine) -> None:
    """HostConfig.PortBindings with HostPort "A-B" (what docker's CLI sends for
    -p A-B:80) through the API's translation, as `tomato serve` gets it."""
    from tomato.api.translate import run_options

    first = _free_block(2)
    opts = run_options({"Image": "busybox", "HostConfig": {"PortBindings": {
        "80/tcp": [{"HostIp": "", "HostPort": f"{first}-{first + 1}"}]}}})
    assert opts.publish == [{"proto": "tcp", "host_ip": "", "host_port": first,
                             "container_port": 80, "host_port_end": first + 1}]
    with pytest.raises(Exception, match="invalid hostPort"):
        run_options({"Image": "busybox", "HostConfig": {"PortBindings": {
            "80/tcp": [{"HostPort": "9-1"}]}}})
