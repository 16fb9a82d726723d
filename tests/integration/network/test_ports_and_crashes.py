"""Published ports (DNAT from 127.0.0.1, the bridge address and the host's own
address), and nothing left behind after rm or kill -9 of any tomato process.

Traffic only between the host and containers these tests create."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import HTTPD, TOMATO, Engine, links, links_gone, until


def _fetch(url: str, attempts: int = 50) -> str:
    """GET with a bounded retry while httpd starts."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode()
        except OSError as err:
            last = err
            time.sleep(0.1)
    raise AssertionError(f"{url}: {last}")


def _port_is_free(port: int) -> bool:
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture
def port() -> int:
    if _port_is_free(18080):
        return 18080
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    free = int(s.getsockname()[1])
    s.close()
    return free


def test_published_port_reachable_and_freed(engine: Engine, port: int) -> None:
    engine.run("run", "-d", "--name", "pub", "-p", f"{port}:80", "busybox", "sh", "-c",
               HTTPD.format(text="published"))
    assert engine.run("port", "pub").stdout == f"80/tcp -> 0.0.0.0:{port}\n"
    assert engine.run("port", "pub", "80").stdout == f"0.0.0.0:{port}\n"
    settings = engine.inspect("pub")["NetworkSettings"]
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    assert engine.inspect("pub")["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    assert _fetch(f"http://127.0.0.1:{port}/") == "published\n"
    assert _fetch(f"http://{settings['Gateway']}:{port}/") == "published\n"
    assert f"dport {port} dnat to {settings['IPAddress']}:80" in engine.nft_table()
    # A port in use is refused before anything is made.
    before = (engine.ids(), engine.netns_entries(), links())
    busy = engine.run("run", "--rm", "-p", f"{port}:80", "busybox", "true", check=False)
    assert busy.returncode == 125
    assert f"Bind for 0.0.0.0:{port} failed: port is already allocated" in busy.stderr
    assert (engine.ids(), engine.netns_entries(), links()) == before  # nothing was made
    engine.run("rm", "-f", "pub")
    assert f"dport {port}" not in engine.nft_table()
    assert engine.query("SELECT * FROM ports") == []
    # Freed: the port can be published again at once.
    engine.run("run", "-d", "--name", "again", "-p", f"127.0.0.1:{port}:80", "busybox", "sh",
               "-c", HTTPD.format(text="again"))
    assert _fetch(f"http://127.0.0.1:{port}/") == "again\n"


def test_port_held_by_a_host_process_is_refused(engine: Engine, port: int) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen(1)
    try:
        proc = engine.run("run", "--rm", "-p", f"127.0.0.1:{port}:80", "busybox", "true",
                          check=False)
    finally:
        holder.close()
    assert proc.returncode == 125 and "port is already allocated" in proc.stderr
    assert engine.ids() == [] and engine.netns_entries() == []


def test_random_and_all_ports(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "rnd", "-p", "80", "-P", "--expose", "8080", "busybox",
               "sh", "-c", HTTPD.format(text="random"))
    lines = engine.run("port", "rnd").stdout.splitlines()
    assert len(lines) == 2
    mapped = dict(line.split(" -> ") for line in lines)
    assert set(mapped) == {"80/tcp", "8080/tcp"}
    host_port = int(mapped["80/tcp"].rsplit(":", 1)[1])
    assert host_port > 0
    assert _fetch(f"http://127.0.0.1:{host_port}/") == "random\n"


def _state_of(engine: Engine, cid: str) -> dict:  # type: ignore[type-arg]
    import json

    row = engine.query("SELECT state FROM containers WHERE id=?", cid)
    return json.loads(row[0][0]) if row else {}  # type: ignore[no-any-return]


def _nothing_left(engine: Engine, before: set[str]) -> None:
    assert engine.netns_entries() == []
    assert engine.query("SELECT * FROM endpoints") == []
    assert engine.query("SELECT * FROM ports") == []
    assert links_gone(before, keep=engine.default_bridge())  # it stays, as docker0
    assert engine.container_rules() == []


def test_rm_and_kill9_of_the_monitor_leave_nothing(engine: Engine, port: int) -> None:
    before = links()
    cid = engine.run("run", "-d", "--rm", "-p", f"{port}:80", "busybox", "sleep",
                     "60").stdout.strip()
    pid = engine.inspect(cid)["State"]["Pid"]
    os.kill(_state_of(engine, cid)["monitor_pid"], signal.SIGKILL)
    # The next look finds the monitor dead and kills the container (nobody would read
    # its output or record its exit); nobody was left to remove it (--rm): the record
    # and its network stay until rm, which releases everything.
    assert until(lambda: engine.inspect(cid)["State"]["Status"] == "exited")
    assert until(lambda: not os.path.exists(f"/proc/{pid}/stat") or
                 open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z")
    engine.run("rm", cid)
    _nothing_left(engine, before)


def test_kill9_of_the_cli_during_run(engine: Engine) -> None:
    before = links()
    proc = subprocess.Popen([TOMATO, "run", "--rm", "busybox", "sh", "-c",
                             "echo up; sleep 2"], env=engine.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    proc.kill()
    proc.wait()
    # The container runs on; its monitor removes it (--rm) and its network with it.
    assert until(lambda: engine.ids() == [], timeout=20)
    _nothing_left(engine, before)


CRASH_MID_CREATE = """
import os, sys
from pathlib import Path
from tomato.engine.networks import Networks
nets = Networks(Path(sys.argv[1]))
cid = os.urandom(32).hex()
with nets.claim(cid):
    nets.attach(cid, "bridge", ports=[{"proto": "tcp", "host_ip": "127.0.0.1",
                                        "host_port": 0, "container_port": 80}])
    nets.settle()  # the rules are in: where a create writes its record
    print(cid, flush=True)
    os.kill(os.getpid(), 9)  # as kill -9 between the network and the record
"""


def test_kill9_during_create_is_swept_by_the_next_command(engine: Engine) -> None:
    before = links()
    proc = subprocess.run([sys.executable, "-c", CRASH_MID_CREATE, str(engine.root)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    cid = proc.stdout.strip()
    assert engine.netns_entries() == [f".{cid}.lock", cid]  # the claim died with it
    assert engine.query("SELECT container_id FROM endpoints") == [(cid,)]
    assert "dnat to" in engine.nft_table()
    assert links() - before - {engine.default_bridge()}  # the veth
    engine.run("ps", "-a")  # any command that lists containers reconciles
    assert engine.netns_entries() == []
    assert engine.query("SELECT * FROM endpoints") == []
    assert engine.query("SELECT * FROM ports") == []
    assert engine.container_rules() == []
    assert links_gone(before, keep=engine.default_bridge())


def test_create_in_progress_is_not_swept(engine: Engine) -> None:
    from pathlib import Path

    from tomato.engine.networks import Networks

    nets = Networks(Path(engine.root))
    cid = os.urandom(32).hex()
    with nets.claim(cid):
        nets.attach(cid, "bridge")
        nets.settle()
        try:
            engine.run("ps", "-a")  # sweeps, but the create still holds its claim
            assert engine.netns_entries() == [f".{cid}.lock", cid]
        finally:
            nets.teardown(cid)
    assert engine.netns_entries() == []


def test_pyroute2_sees_what_we_made(engine: Engine) -> None:
    """An independent netlink reader: the veth is a port of the bridge, both up."""
    pyroute2 = pytest.importorskip("pyroute2", reason="pyroute2 cross-checks our netlink")
    engine.run("network", "create", "--subnet", "10.213.12.0/24", "seen")
    cid = engine.run("run", "-d", "--network", "seen", "busybox", "sleep", "60").stdout.strip()
    net_id = engine.query("SELECT id, bridge FROM networks WHERE name='seen'")[0]
    with pyroute2.IPRoute() as ipr:
        br = ipr.link_lookup(ifname=net_id[1])[0]
        veth = ipr.link_lookup(ifname=f"tv{cid[:7]}{net_id[0][:6]}")[0]
        link = ipr.get_links(veth)[0]
        assert link.get_attr("IFLA_MASTER") == br
        assert link["flags"] & 1  # IFF_UP
        addrs = [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=br)]
        assert "10.213.12.1" in addrs
    with pyroute2.NetNS(str(engine.root / "netns" / cid)) as ns:
        eth0 = ns.link_lookup(ifname="eth0")[0]
        assert [a.get_attr("IFA_ADDRESS") for a in ns.get_addr(index=eth0, family=2)] == [
            "10.213.12.2"]
        gateways = [r.get_attr("RTA_GATEWAY") for r in ns.get_routes() if r["dst_len"] == 0]
        assert gateways == ["10.213.12.1"]


def test_published_port_from_another_hosts_view(engine: Engine, port: int,
                                                workdir: Path) -> None:
    """A "remote host": a netns of the test's own behind a veth pair, fetching the
    engine host's address; the packet comes in from outside, so prerouting DNATs it."""
    from tomato.network import netns
    from tomato.network.netlink import Netlink

    engine.run("run", "-d", "--name", "far", "-p", f"{port}:80", "busybox", "sh", "-c",
               HTTPD.format(text="far"))
    remote = str(workdir / "remote-netns")
    inside = netns.create(remote)
    try:
        with inside, Netlink() as host:
            fd = netns.open_fd(remote)
            try:
                host.add_veth("tvremote0", "eth0", fd)
            finally:
                os.close(fd)
            host.add_address(host.link_index("tvremote0"), "10.213.50.1", 24)
            inside.set_up(1)
            eth0 = inside.link_index("eth0")
            inside.add_address(eth0, "10.213.50.2", 24)
            inside.set_up(eth0)
        fetch = ("import urllib.request, time\n"
                 "for _ in range(50):\n"
                 "    try:\n"
                 f"        print(urllib.request.urlopen('http://10.213.50.1:{port}/',"
                 " timeout=2).read().decode(), end=''); break\n"
                 "    except OSError: time.sleep(0.1)\n")
        out = subprocess.run(["nsenter", f"--net={remote}", sys.executable, "-c", fetch],
                             capture_output=True, text=True, timeout=60)
        assert out.stdout == "far\n", out.stderr
    finally:
        with Netlink() as host:
            host.delete_link("tvremote0")
        netns.remove(remote)
