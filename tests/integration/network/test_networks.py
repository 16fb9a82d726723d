"""Bridge and user networks end to end: names, isolation, internal networks, modes,
fixed addresses, the files Docker writes, connect/disconnect.

Traffic only between the host and containers these tests create."""

from __future__ import annotations

import subprocess

from .conftest import HTTPD, TOMATO, Engine, links, links_gone, until


def _sh(engine: Engine, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return engine.run("run", "--rm", *args, check=check)


def _serve(engine: Engine, name: str, *flags: str, text: str = "hello") -> None:
    engine.run("run", "-d", "--name", name, *flags, "busybox", "sh", "-c",
               HTTPD.format(text=text))


def test_user_network_names_aliases_http_and_isolation(engine: Engine) -> None:
    engine.run("network", "create", "front")
    engine.run("network", "create", "back")
    _serve(engine, "web", "--network", "front", "--network-alias", "www")
    client = _sh(engine, "--network", "front", "busybox", "sh", "-c",
                 "ping -c1 -W2 web && ping -c1 -W2 www && "
                 "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://web/ && break; "
                 "sleep 0.2; done")
    assert "1 packets received" in client.stdout
    assert client.stdout.rstrip().endswith("hello")
    # By alias too, over HTTP; and by short id, as Docker's DNS answers.
    assert _sh(engine, "--network", "front", "busybox", "wget", "-qO-",
               "http://www/").stdout == "hello\n"
    short = engine.inspect("web")["Id"][:12]
    assert "1 packets received" in _sh(engine, "--network", "front", "busybox", "ping", "-c1",
                                       "-W2", short).stdout
    # Another network: no name, and no route through the host to the address.
    web_ip = engine.ip("web")
    other = _sh(engine, "--network", "back", "busybox", "sh", "-c",
                f"ping -c1 -W1 web; echo name=$?; ping -c1 -W1 {web_ip}; echo ip=$?",
                check=False)
    assert "name=1" in other.stdout or "bad address" in other.stderr + other.stdout
    assert "ip=1" in other.stdout
    # The default bridge cannot reach it either.
    assert "ip=1" in _sh(engine, "busybox", "sh", "-c",
                         f"ping -c1 -W1 {web_ip}; echo ip=$?").stdout


def test_internal_network_has_no_route_out(engine: Engine) -> None:
    engine.run("network", "create", "--internal", "vault")
    engine.run("network", "create", "open")
    _serve(engine, "outside", "--network", "open")
    gateway = engine.inspect("outside")["NetworkSettings"]["Networks"]["open"]["Gateway"]
    out = _sh(engine, "--network", "vault", "busybox", "sh", "-c",
              f"ip route; ping -c1 -W1 {engine.ip('outside')}; echo ping=$?").stdout
    assert "default" not in out
    assert "ping=1" in out
    # Containers on the internal network still talk to each other.
    _serve(engine, "inner", "--network", "vault", text="inside")
    assert _sh(engine, "--network", "vault", "busybox", "sh", "-c",
               "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://inner/ && break; "
               "sleep 0.2; done").stdout == "inside\n"
    assert gateway  # the open network has a gateway, the internal one no route to it


def test_default_bridge_route_and_files(engine: Engine) -> None:
    out = _sh(engine, "--hostname", "box", "--dns", "10.255.0.53", "--dns-search",
              "corp.test", "--add-host", "db.test:10.1.2.3", "--add-host",
              "gw.test:host-gateway", "busybox", "sh", "-c",
              "ip -o -4 addr show eth0; ip route; cat /etc/hosts /etc/resolv.conf; hostname"
              ).stdout
    assert "default via" in out
    assert "10.1.2.3\tdb.test" in out
    assert "nameserver 10.255.0.53\nsearch corp.test\n" in out
    assert out.rstrip().endswith("box")
    addr = out.split("inet ")[1].split("/")[0]
    assert f"{addr}\tbox" in out
    gw_line = [line for line in out.splitlines() if line.endswith("gw.test")][0]
    assert gw_line.split()[0] == out.split("default via ")[1].split()[0]
    # The container's rules and veth go with it; the default bridge and its masquerade
    # stay for the next container, as Docker's docker0.
    assert engine.container_rules() == []
    bridge = engine.default_bridge()
    assert bridge and bridge in links()
    assert f'oifname != "{bridge}" masquerade' in engine.nft_table()


def test_fixed_ip_mac_and_duplicates(engine: Engine) -> None:
    engine.run("network", "create", "--subnet", "10.213.7.0/24", "--gateway", "10.213.7.254",
               "fixed")
    engine.run("run", "-d", "--name", "a", "--network", "fixed", "--ip", "10.213.7.10",
               "--mac-address", "02:00:00:aa:bb:cc", "busybox", "sleep", "60")
    out = engine.run("exec", "a", "ip", "addr", "show", "eth0").stdout
    assert "inet 10.213.7.10/24" in out
    assert "02:00:00:aa:bb:cc" in out
    assert "default via 10.213.7.254" in engine.run("exec", "a", "ip", "route").stdout
    dup = engine.run("run", "--rm", "--network", "fixed", "--ip", "10.213.7.10", "busybox",
                     "true", check=False)
    assert dup.returncode == 125
    assert "Address already in use" in dup.stderr
    outside = engine.run("run", "--rm", "--network", "fixed", "--ip", "10.99.0.5", "busybox",
                         "true", check=False)
    assert outside.returncode == 125 and "does not belong to network fixed" in outside.stderr
    assert engine.ids() == [engine.inspect("a")["Id"]]  # nothing half-made
    # The default bridge refuses --ip, as Docker's.
    assert engine.run("run", "--rm", "--ip", "172.17.0.50", "busybox", "true",
                      check=False).returncode == 125


def test_addresses_are_never_given_twice_and_come_back(engine: Engine) -> None:
    engine.run("network", "create", "--subnet", "10.213.8.0/29", "tiny")
    names = [f"t{i}" for i in range(5)]
    for name in names:
        engine.run("create", "--name", name, "--network", "tiny", "busybox", "true")
    ips = [engine.ip(n) for n in names]
    assert len(set(ips)) == 5 and "10.213.8.1" not in ips
    full = engine.run("create", "--network", "tiny", "busybox", "true", check=False)
    assert full.returncode == 125 and "no available IPv4 addresses" in full.stderr
    engine.run("rm", "t2")
    engine.run("create", "--name", "t5", "--network", "tiny", "busybox", "true")
    assert engine.ip("t5") == ips[2]
    rows = engine.query("SELECT ip FROM endpoints e JOIN networks n ON n.id=e.network_id "
                        "WHERE n.name='tiny'")
    assert sorted(r[0] for r in rows) == sorted(ips)


def test_none_host_and_container_modes(engine: Engine) -> None:
    none = _sh(engine, "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert [line.split(":")[1].strip() for line in none.splitlines()] == ["lo"]
    host = _sh(engine, "--network", "host", "busybox", "ip", "-o", "link").stdout
    seen = {line.split(":")[1].strip().split("@")[0] for line in host.splitlines()}
    engine.run("network", "create", "visible")  # a bridge in the engine's namespace
    host = _sh(engine, "--network", "host", "busybox", "ip", "-o", "link").stdout
    seen = {line.split(":")[1].strip().split("@")[0] for line in host.splitlines()}
    assert seen == links()
    assert "tomato-" + engine.query("SELECT id FROM networks WHERE name='visible'")[0][0][:8] \
        in seen
    engine.run("run", "-d", "--name", "owner", "busybox", "sleep", "60")
    owner = engine.run("exec", "owner", "ip", "-o", "-4", "addr").stdout
    joined = _sh(engine, "--network", "container:owner", "busybox", "ip", "-o", "-4",
                 "addr").stdout
    assert joined == owner and engine.ip("owner") in joined


def test_connect_and_disconnect(engine: Engine) -> None:
    engine.run("network", "create", "one")
    engine.run("network", "create", "two")
    engine.run("run", "-d", "--name", "mover", "--network", "one", "busybox", "sleep", "60")
    engine.run("run", "-d", "--name", "peer", "--network", "two", "busybox", "sleep", "60")
    assert "bad address" in engine.run("exec", "peer", "ping", "-c1", "-W1", "mover",
                                       check=False).stderr
    engine.run("network", "connect", "--alias", "mv", "two", "mover")
    assert "eth1" in engine.run("exec", "mover", "ip", "-o", "link").stdout
    nets = engine.inspect("mover")["NetworkSettings"]["Networks"]
    assert set(nets) == {"one", "two"}
    assert "1 packets received" in engine.run("exec", "peer", "ping", "-c1", "-W2",
                                              "mv").stdout
    again = engine.run("network", "connect", "two", "mover", check=False)
    assert again.returncode != 0 and "already" in again.stderr
    engine.run("network", "disconnect", "two", "mover")
    assert "eth1" not in engine.run("exec", "mover", "ip", "-o", "link").stdout
    assert "mover" not in engine.run("exec", "peer", "cat", "/etc/hosts").stdout
    assert set(engine.inspect("mover")["NetworkSettings"]["Networks"]) == {"one"}


def test_network_commands_and_bad_input(engine: Engine) -> None:
    before_links = links()
    engine.run("network", "create", "--subnet", "10.213.9.0/24", "--label", "k=v", "alpha")
    info = engine.run("network", "inspect", "alpha").stdout
    assert '"Subnet": "10.213.9.0/24"' in info and '"k": "v"' in info
    listed = engine.run("network", "ls").stdout
    assert all(name in listed for name in ("alpha", "bridge", "host", "none"))
    cases = [
        (("network", "create", "--subnet", "10.213.9.128/25", "beta"), "overlaps"),
        (("network", "create", "--subnet", "10.213.10.0/24", "--gateway", "10.213.11.1",
          "beta"), "no matching subnet for gateway"),
        (("network", "create", "--subnet", "10.213.10.0/33", "beta"), "invalid subnet"),
        (("network", "create", "alpha"), "already exists"),
        (("network", "create", "bad name"), "invalid network name"),
        (("network", "rm", "bridge"), "pre-defined"),
        (("network", "inspect", "nope"), "network nope not found"),
        (("run", "--rm", "--network", "nope", "busybox", "true"), "network nope not found"),
        (("run", "--rm", "-p", "70000:80", "busybox", "true"), "invalid hostPort: 70000"),
        (("run", "--rm", "-p", "a:b", "busybox", "true"), "invalid containerPort: b"),
        (("run", "--rm", "--mac-address", "zz", "busybox", "true"), "not a valid mac"),
    ]
    for args, message in cases:
        proc = engine.run(*args, check=False)
        assert proc.returncode != 0, args
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    engine.run("create", "--name", "user", "--network", "alpha", "busybox", "true")
    busy = engine.run("network", "rm", "alpha", check=False)
    assert busy.returncode == 1 and "has active endpoints" in busy.stderr
    assert engine.run("network", "prune").stdout == ""
    engine.run("rm", "user")
    assert engine.run("network", "prune").stdout == "Deleted Networks:\nalpha\n"
    assert engine.ids() == [] and engine.user_networks() == []
    assert links_gone(before_links, keep=engine.default_bridge())


def test_address_survives_restart_and_a_lost_netns(engine: Engine) -> None:
    engine.run("network", "create", "--subnet", "10.213.13.0/24", "keep")
    engine.run("run", "-d", "--name", "k", "--network", "keep", "busybox", "sleep", "60")
    ip = engine.ip("k")
    engine.run("stop", "-t", "0", "k")
    engine.run("start", "k")
    assert f"inet {ip}/24" in engine.run("exec", "k", "ip", "-o", "-4", "addr").stdout
    engine.run("stop", "-t", "0", "k")
    # As after a reboot: the pinned netns (and so the veth) is gone, the lease is not.
    from tomato.network import netns

    cid = engine.inspect("k")["Id"]
    netns.remove(str(engine.root / "netns" / cid))
    assert until(lambda: not [n for n in links() if n.startswith(f"tv{cid[:7]}")])
    engine.run("start", "k")
    out = engine.run("exec", "k", "ip", "-o", "-4", "addr").stdout
    assert f"inet {ip}/24" in out
    assert "default via 10.213.13.1" in engine.run("exec", "k", "ip", "route").stdout


def test_concurrent_creates_get_distinct_addresses(engine: Engine) -> None:
    """Ten `run -d` at once: each sweeps, none may take another's netns or address."""
    procs = [subprocess.Popen([TOMATO, "run", "-d", "busybox", "sleep", "60"],
                              env=engine.env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(10)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 10, [r[1] for r in results]
    ids = [r[0].strip() for r in results]
    ips = [engine.ip(cid) for cid in ids]
    assert len(set(ips)) == 10 and "" not in ips
    for cid in ids:  # each still has its own eth0
        assert "eth0" in engine.run("exec", cid, "ip", "-o", "link").stdout
