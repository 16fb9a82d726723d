"""IPv6 (issue 19): `network create --ipv6` with an IPv4 and an IPv6 subnet, dual-stack
containers (an address of each, the gateways, routes, names in /etc/hosts), NAT66 out
of the network, `-p` on IPv6, inspect and network inspect in Docker's shapes.

Everything runs in the network namespace the package's conftest made (forwarding
and nft tables change there, never on the host); "outside" is one more namespace
this test makes, behind a veth, and kills after."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from .conftest import HTTPD, Engine, until

SUBNET4, SUBNET6 = "10.219.0.0/24", "fd00:19::/64"


def _dual(engine: Engine, name: str = "dual") -> None:
    engine.run("network", "create", "--ipv6", "--subnet", SUBNET4, "--subnet", SUBNET6, name)


def _fetch(url: str) -> str:
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


def _ip6_table(engine: Engine) -> str:
    proc = subprocess.run(["nft", "list", "table", "ip6", engine.table], capture_output=True,
                          text=True)
    return proc.stdout if proc.returncode == 0 else ""


@pytest.fixture
def outside() -> Iterator[str]:
    """A namespace beyond the host (fd99::2, the host's end fd99::1) that answers each
    TCP connection on port 7000 with the address it came from: what NAT66 shows.
    Yields the path of that namespace."""
    answer = ("import socket\n"
              "s = socket.socket(socket.AF_INET6); s.setsockopt(1, 2, 1)\n"
              "s.bind(('::', 7000)); s.listen()\n"
              "print('ready', flush=True)\n"
              "while True:\n"
              "    c, peer = s.accept(); c.sendall(peer[0].encode() + b'\\n'); c.close()\n")
    holder = subprocess.Popen(["unshare", "-n", "sleep", "300"])
    server = None
    try:
        assert until(lambda: os.readlink(f"/proc/{holder.pid}/ns/net") !=
                     os.readlink("/proc/self/ns/net"), timeout=5)
        ns = f"/proc/{holder.pid}/ns/net"
        subprocess.run(["ip", "link", "add", "i19out", "type", "veth", "peer", "name", "eth9",
                        "netns", ns], check=True)
        subprocess.run(["ip", "-6", "addr", "add", "fd99::1/64", "dev", "i19out", "nodad"],
                       check=True)
        subprocess.run(["ip", "link", "set", "i19out", "up"], check=True)
        inside = ["nsenter", f"--net={ns}", "sh", "-c",
                  "ip link set lo up && ip link set eth9 up && "
                  "ip -6 addr add fd99::2/64 dev eth9 nodad && "
                  "ip -6 route add default via fd99::1"]
        subprocess.run(inside, check=True)
        server = subprocess.Popen(["nsenter", f"--net={ns}", "/usr/bin/python3", "-c", answer],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        yield ns
    finally:
        for proc in (server, holder):
            if proc is not None:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "link", "del", "i19out"], capture_output=True)


def test_dual_stack_network_and_containers(engine: Engine) -> None:
    _dual(engine)
    net = json.loads(engine.run("network", "inspect", "dual").stdout)[0]
    assert net["EnableIPv6"] is True
    assert net["IPAM"]["Config"] == [{"Subnet": SUBNET4, "Gateway": "10.219.0.1"},
                                     {"Subnet": SUBNET6, "Gateway": "fd00:19::1"}]
    engine.run("run", "-d", "--name", "web6", "--network", "dual", "busybox", "sh", "-c",
               HTTPD.format(text="six"))
    ep = engine.inspect("web6")["NetworkSettings"]["Networks"]["dual"]
    assert (ep["IPAddress"], ep["GlobalIPv6Address"]) == ("10.219.0.2", "fd00:19::2")
    assert (ep["IPv6Gateway"], ep["GlobalIPv6PrefixLen"]) == ("fd00:19::1", 64)
    assert engine.inspect("web6")["NetworkSettings"]["GlobalIPv6Address"] == "fd00:19::2"
    listed = json.loads(engine.run("network", "inspect", "dual").stdout)[0]["Containers"]
    assert [c["IPv6Address"] for c in listed.values()] == ["fd00:19::2/64"]
    # A peer: its own two addresses, the routes, web6 by name over IPv6 and over HTTP.
    out = engine.run("run", "--rm", "--network", "dual", "--ip6", "fd00:19::99", "busybox",
                     "sh", "-c", "ip -6 addr show eth0; ip -6 route; ip -4 addr show eth0; "
                     "grep web6 /etc/hosts; ping -6 -c1 -W2 web6 && "
                     "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- 'http://[fd00:19::2]/' "
                     "&& break; sleep 0.2; done").stdout
    assert "inet6 fd00:19::99/64 scope global" in out
    assert "default via fd00:19::1 dev eth0" in out
    assert "inet 10.219.0.3/24" in out
    assert "fd00:19::2\tweb6" in out and "10.219.0.2\tweb6" in out
    assert "1 packets received" in out
    assert out.rstrip().endswith("six")
    # The host reaches the container's IPv6 address through the bridge.
    assert _fetch("http://[fd00:19::2]/") == "six\n"


def test_ipv6_refusals(engine: Engine) -> None:
    engine.run("network", "create", "four")
    bad = engine.run("run", "--rm", "--network", "four", "--ip6", "fd00:19::5", "busybox",
                     "true", check=False)
    assert bad.returncode == 125 and "has no IPv6 subnet" in bad.stderr
    _dual(engine)
    for args, message in (
            (["--ip6", "fd00:20::5"], "does not belong to network dual"),
            (["--ip6", "zz::1"], "invalid IPv6 address: zz::1")):
        proc = engine.run("run", "--rm", "--network", "dual", *args, "busybox", "true",
                          check=False)
        assert proc.returncode == 125 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    clash = engine.run("network", "create", "--ipv6", "--subnet", "fd00:19:0:0:1::/80", "x",
                       check=False)
    assert clash.returncode != 0 and "overlaps with fd00:19::/64" in clash.stderr
    no_flag = engine.run("network", "create", "--subnet", "fd00:30::/64", "y", check=False)
    assert no_flag.returncode != 0 and "needs --ipv6" in no_flag.stderr
    # --ipv6 alone: a unique local /64, as Docker 27 gives.
    engine.run("network", "create", "--ipv6", "auto6")
    config = json.loads(engine.run("network", "inspect", "auto6").stdout)[0]["IPAM"]["Config"]
    assert config[1]["Subnet"].startswith("fd") and config[1]["Subnet"].endswith("::/64")


def test_nat66_and_ports_published_on_ipv6(engine: Engine, outside: str) -> None:
    _dual(engine)
    # NAT66: the outside sees the host's address, never the container's.
    seen = engine.run("run", "--rm", "--network", "dual", "busybox", "sh", "-c",
                      "nc fd99::2 7000 </dev/null").stdout
    assert seen == "fd99::1\n"
    assert f'ip6 saddr {SUBNET6} oifname != "' in _ip6_table(engine)
    # -p on every address: 0.0.0.0 and ::, reached from outside and from the host itself.
    port = 18090
    engine.run("run", "-d", "--name", "pub6", "--network", "dual", "-p", f"{port}:80",
               "busybox", "sh", "-c", HTTPD.format(text="pub6"))
    assert engine.run("port", "pub6").stdout == (f"80/tcp -> 0.0.0.0:{port}\n"
                                                 f"80/tcp -> [::]:{port}\n")
    assert engine.inspect("pub6")["NetworkSettings"]["Ports"] == {"80/tcp": [
        {"HostIp": "0.0.0.0", "HostPort": str(port)}, {"HostIp": "::", "HostPort": str(port)}]}
    assert _fetch(f"http://[fd99::1]:{port}/") == "pub6\n"
    listed = engine.run("ps", "--filter", "name=pub6", "--format", "{{.Ports}}").stdout
    assert listed == f"0.0.0.0:{port}->80/tcp, [::]:{port}->80/tcp\n"
    got = subprocess.run(["nsenter", f"--net={outside}", "/usr/bin/python3", "-c",
                          "import urllib.request;print(urllib.request.urlopen("
                          f"'http://[fd99::1]:{port}/', timeout=5).read().decode(), end='')"],
                         capture_output=True, text=True, timeout=30)
    assert got.stdout == "pub6\n", got.stderr
    # -p [address]:port:80 publishes on that IPv6 address only.
    engine.run("run", "-d", "--name", "only6", "--network", "dual", "-p",
               f"[fd99::1]:{port + 1}:80", "busybox", "sh", "-c", HTTPD.format(text="only6"))
    assert engine.run("port", "only6").stdout == f"80/tcp -> [fd99::1]:{port + 1}\n"
    assert _fetch(f"http://[fd99::1]:{port + 1}/") == "only6\n"
    assert f"ip6 daddr fd99::1 tcp dport {port + 1} dnat to [fd00:19::3]:80" in \
        _ip6_table(engine)
    assert f"dport {port + 1}" not in engine.nft_table()
    # [::1]: refused in one line (IPv6 has no route_localnet; Docker needs its proxy).
    loop = engine.run("run", "--rm", "--network", "dual", "-p", f"[::1]:{port + 2}:80",
                      "busybox", "true", check=False)
    assert loop.returncode == 125 and "cannot publish on [::1]" in loop.stderr
    # Gone with the containers and the network: no ip6 table is left.
    engine.run("rm", "-f", "pub6", "only6")
    engine.run("network", "rm", "dual")
    assert until(lambda: _ip6_table(engine) == "", timeout=5)

