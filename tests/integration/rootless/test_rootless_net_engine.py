"""The rootless engine's networks (engine/rootless_net.py) as an unprivileged user the
test makes: the default network is slirp4netns (outbound, DNS through 10.0.2.3), `-p`
forwards a host port >= ip_unprivileged_port_start, lower ones are refused in one line.

Traffic stays on this machine: the container reaches only a server this test runs on
the host's 127.0.0.1 (through 10.0.2.2, when host loopback is allowed), and the test
reaches the container through a forwarded port of 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from helpers.rootless import RootlessUser

from .conftest import free_port


def _read(port: int) -> str:
    """What the server behind the host's 127.0.0.1:PORT says (bounded retries: the
    container's server may not listen yet)."""
    last: OSError | None = None
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                data = c.recv(100).decode()
                if data:
                    return data
        except OSError as err:
            last = err
        time.sleep(0.05)
    raise AssertionError(f"nothing answered on 127.0.0.1:{port}: {last}")


def test_default_network_is_slirp4netns(busybox_user: RootlessUser, host_server: int) -> None:
    u = busybox_user
    out = u.tomato("run", "--rm", "busybox", "sh", "-c",
                   "ip -4 -o addr show tap0; ip route; cat /etc/resolv.conf; "
                   f"nc -w 2 10.0.2.2 {host_server} </dev/null; echo rc=$?").stdout
    assert "inet 10.0.2.100/24" in out
    assert "default via 10.0.2.2 dev tap0" in out
    assert "nameserver 10.0.2.3" in out
    assert "host loopback" not in out  # the host's 127.0.0.1 is hidden by default
    allowed = u.tomato("run", "--rm", "--network", "slirp4netns:allow_host_loopback=true",
                       "busybox", "nc", "-w", "5", "10.0.2.2", str(host_server)).stdout
    assert allowed == "host loopback\n"
    # No slirp4netns outlives its container.
    _no_slirp_left(u)


def _no_slirp_left(u: RootlessUser) -> None:
    """No slirp4netns outlives its container (the monitor of a `run --rm` may still be
    removing it when the command returns: bounded wait)."""
    for _ in range(100):
        left = [p for p in u.pids() if _comm(p) == "slirp4netns"]
        if not left:
            return
        time.sleep(0.1)
    raise AssertionError(f"slirp4netns left running: {left}")


def _comm(pid: int) -> str:
    """A live process's name ("" for a zombie: a killed slirp4netns waits for the
    subreaper, pytest, to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return ""
    name, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
    return "" if state in "ZX" else name


def test_publish_forwards_a_host_port(busybox_user: RootlessUser) -> None:
    u = busybox_user
    port = free_port()
    cid = u.tomato("run", "-d", "-p", f"{port}:80", "busybox", "sh", "-c",
                   "while true; do echo hello from 80 | nc -l -p 80; done").stdout.strip()
    try:
        assert _read(port) == "hello from 80\n"
        ports = json.loads(u.tomato("inspect", cid).stdout)[0]["NetworkSettings"]["Ports"]
        assert ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
        taken = u.tomato("run", "--rm", "-p", f"{port}:80", "busybox", "true", check=False)
        assert taken.returncode == 125
        assert taken.stderr.strip().endswith(
            f"Bind for 0.0.0.0:{port} failed: port is already allocated"), taken.stderr
    finally:
        u.tomato("rm", "-f", cid)
    _no_slirp_left(u)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_privileged_ports_are_refused(busybox_user: RootlessUser) -> None:
    u = busybox_user
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        start = int(f.read())
    if start <= 80:
        pytest.skip(f"this host lets users bind port 80 (ip_unprivileged_port_start={start})")
    proc = u.tomato("run", "--rm", "-p", "80:80", "busybox", "true", check=False)
    assert proc.returncode == 125
    assert proc.stderr == (f"tomato: cannot publish port 80: ports below {start} need root "
                           f"(net.ipv4.ip_unprivileged_port_start={start})\n")
    assert u.tomato("ps", "-a", "-q").stdout == ""
    bad = u.tomato("run", "--rm", "--network", "slirp4netns:mtu=9000", "busybox", "true",
                   check=False)
    assert bad.returncode == 125
    assert bad.stderr.startswith("tomato: unknown option for slirp4netns: mtu")


def test_user_network_names_and_ports(busybox_user: RootlessUser) -> None:
    """Root's bridge networks, in the user's network namespace: peers by name, a
    published port through slirp4netns and the namespace's DNAT rule."""
    u = busybox_user
    u.tomato("network", "create", "appnet")
    port, local = free_port(), free_port()
    web = u.tomato("run", "-d", "--name", "web", "--network", "appnet", "-p", f"{port}:80",
                   "-p", f"127.0.0.1:{local}:80", "busybox", "sh", "-c",
                   "while true; do echo from-web | nc -l -p 80; done").stdout.strip()
    try:
        out = u.tomato("run", "--rm", "--network", "appnet", "busybox", "sh", "-c",
                       "for i in $(seq 50); do nc -w 2 web 80 </dev/null && exit 0; "
                       "sleep 0.1; done; exit 1").stdout
        assert out == "from-web\n"
        assert _read(port) == "from-web\n"
        assert _read(local) == "from-web\n"  # a host address: slirp4netns binds it
        resolv = u.tomato("run", "--rm", "--network", "appnet", "busybox", "cat",
                          "/etc/resolv.conf").stdout
        assert "nameserver 10.0.2.3" in resolv
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            if int(f.read()) > 80:  # (a host that lets users bind 80 publishes it)
                low = u.tomato("run", "--rm", "--network", "appnet", "-p", "80:80",
                               "busybox", "true", check=False)
                assert low.returncode == 125
                assert low.stderr.startswith("tomato: cannot publish port 80: ports below "), \
                    low.stderr
        busy = u.tomato("network", "rm", "appnet", check=False)
        assert busy.returncode != 0 and "has active endpoints" in busy.stderr
    finally:
        u.tomato("rm", "-f", web)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    u.tomato("network", "rm", "appnet")
    assert "appnet" not in u.tomato("network", "ls").stdout


def test_without_slirp4netns_one_line_and_nothing_left(busybox_user: RootlessUser) -> None:
    u = busybox_user
    tools = u.home / "tools"  # a PATH with what the engine needs, but slirp4netns
    tools.mkdir()
    for name in ("newuidmap", "newgidmap"):
        (tools / name).symlink_to(f"/usr/bin/{name}")
    proc = u.tomato("run", "--rm", "busybox", "true", check=False, PATH=str(tools))
    assert proc.returncode == 125, proc.stderr
    assert proc.stderr.splitlines() == [
        "tomato: slirp4netns is missing from PATH: a rootless container's network needs "
        "it (apt-get install slirp4netns), or use --network none"], proc.stderr
    assert u.tomato("ps", "-aq").stdout == ""
    assert not list((u.data_root / "netns").glob("*"))
    assert u.tomato("run", "--rm", "--network", "none", "busybox", "true",
                    PATH=str(tools)).returncode == 0
