"""Several networks at create (issue 19): repeated --network, docker's advanced
--network name=,alias=,ip= form, the API's NetworkingConfig.EndpointsConfig with more
than one entry (API 1.44); `network connect --ip/--ip6/--alias`; --link NAME:ALIAS
(legacy links, as name resolution in /etc/hosts); --network-alias; --add-host with
host-gateway.

Traffic only between the host and containers these tests create."""

from __future__ import annotations

import pytest

from .conftest import HTTPD, Engine


def _sh(engine: Engine, *args: str, check: bool = True) -> str:
    return engine.run("run", "--rm", *args, check=check).stdout


def test_repeated_network_flags_attach_every_network(engine: Engine) -> None:
    engine.run("network", "create", "--subnet", "10.231.0.0/24", "fronta")
    engine.run("network", "create", "--subnet", "10.232.0.0/24", "backa")
    engine.run("run", "-d", "--name", "api", "--network", "fronta", "--ip", "10.231.0.50",
               "--network-alias", "svc", "--network", "name=backa,alias=db-side,ip=10.232.0.60",
               "busybox", "sh", "-c", HTTPD.format(text="api"))
    nets = engine.inspect("api")["NetworkSettings"]["Networks"]
    assert sorted(nets) == ["backa", "fronta"]
    assert nets["fronta"]["IPAddress"] == "10.231.0.50"
    assert nets["fronta"]["Aliases"] == ["svc"]
    assert nets["backa"]["IPAddress"] == "10.232.0.60"
    assert nets["backa"]["Aliases"] == ["db-side"]
    inside = engine.run("exec", "api", "sh", "-c", "ip -4 -o addr; ip route").stdout
    assert "eth0    inet 10.231.0.50/24" in inside and "eth1    inet 10.232.0.60/24" in inside
    assert "default via 10.231.0.1 dev eth0" in inside  # the first network routes
    # Peers on each network find it by the name and that network's alias.
    assert "svc" in _sh(engine, "--network", "fronta", "busybox", "grep", "10.231.0.50",
                        "/etc/hosts")
    assert "db-side" in _sh(engine, "--network", "backa", "busybox", "grep", "10.232.0.60",
                            "/etc/hosts")
    got = _sh(engine, "--network", "backa", "busybox", "sh", "-c",
              "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://db-side/ && break; "
              "sleep 0.2; done")
    assert got == "api\n"
    # Disconnected from one, it keeps the other.
    engine.run("network", "disconnect", "backa", "api")
    assert list(engine.inspect("api")["NetworkSettings"]["Networks"]) == ["fronta"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--network", "fronta", "--network", "fronta"], 'network "fronta" is specified '
                                                     "multiple times"),
    (["--network", "fronta", "--network", "bridge"], "conflicting options: cannot attach both "
                                                     "user-defined and non-user-defined "
                                                     "network-modes"),
    (["--network", "fronta", "--network", "nosuch"], "network nosuch not found"),
    (["--network", "name=fronta,mtu=9"], "invalid field key mtu"),
    (["--network", "host", "--link", "x:y"], "conflicting options: --link and the host "
                                             "network mode"),
    (["--link", "a:b:c"], 'invalid argument "a:b:c" for "--link" flag: bad format for '
                          "links: a:b:c"),
    (["--link", "nosuch:db"], "could not get container for nosuch"),
])
def test_refusals_are_dockers(engine: Engine, flags: list[str], message: str) -> None:
    engine.run("network", "create", "fronta")
    before = (engine.ids(), engine.netns_entries())
    proc = engine.run("run", "--rm", *flags, "busybox", "true", check=False)
    assert proc.returncode == 125, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (engine.ids(), engine.netns_entries()) == before


def test_connect_with_ip_ip6_and_alias(engine: Engine) -> None:
    engine.run("network", "create", "--subnet", "10.233.0.0/24", "plain")
    engine.run("network", "create", "--ipv6", "--subnet", "10.234.0.0/24", "--subnet",
               "fd00:234::/64", "dual2")
    engine.run("run", "-d", "--name", "late", "--network", "plain", "busybox", "sleep", "600")
    engine.run("network", "connect", "--ip", "10.234.0.77", "--ip6", "fd00:234::77",
               "--alias", "late-alias", "dual2", "late")
    ep = engine.inspect("late")["NetworkSettings"]["Networks"]["dual2"]
    assert (ep["IPAddress"], ep["GlobalIPv6Address"], ep["Aliases"]) == (
        "10.234.0.77", "fd00:234::77", ["late-alias"])
    inside = engine.run("exec", "late", "ip", "-6", "addr", "show", "eth1").stdout
    assert "inet6 fd00:234::77/64 scope global" in inside
    peer = _sh(engine, "--network", "dual2", "busybox", "sh", "-c",
               "grep late-alias /etc/hosts; ping -6 -c1 -W2 late-alias")
    assert "fd00:234::77\tlate" in peer and "1 packets received" in peer
    engine.run("run", "-d", "--name", "other", "--network", "plain", "busybox", "sleep", "600")
    for flags, message in ((["--ip6", "fd00:999::1"], "does not belong to network dual2"),
                           (["--ip6", "fd00:234::77"], "Address already in use"),
                           (["--ip6", "nonsense"], "invalid IPv6 address: nonsense")):
        bad = engine.run("network", "connect", *flags, "dual2", "other", check=False)
        assert bad.returncode != 0 and message in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    assert list(engine.inspect("other")["NetworkSettings"]["Networks"]) == ["plain"]


def test_published_ports_follow_a_reconnect(engine: Engine) -> None:
    """docker-compose v1 disconnects and connects every container before its start (to
    set its aliases): the published ports go to the address the container has now."""
    import urllib.request

    from .conftest import until

    engine.run("network", "create", "--subnet", "10.237.0.0/24", "recon")
    engine.run("create", "--name", "moved", "--network", "recon", "-p", "18097:80", "busybox",
               "sh", "-c", HTTPD.format(text="moved"))
    engine.run("network", "disconnect", "recon", "moved")
    engine.run("network", "connect", "--alias", "m", "recon", "moved")
    engine.run("start", "moved")
    ip = engine.ip("moved")
    assert ip != "10.237.0.2"  # a new lease: the old address is not given again at once
    assert f"dport 18097 dnat to {ip}:80" in engine.nft_table()

    def fetched() -> bool:
        try:
            with urllib.request.urlopen("http://127.0.0.1:18097/", timeout=2) as resp:
                return bool(resp.read() == b"moved\n")
        except OSError:
            return False
    assert until(fetched, timeout=10)


def test_links_alias_and_add_host_gateway(engine: Engine) -> None:
    engine.run("run", "-d", "--name", "dbsrv", "busybox", "sh", "-c", HTTPD.format(text="db"))
    db_ip = engine.ip("dbsrv")
    short = engine.inspect("dbsrv")["Id"][:12]
    gateway = engine.inspect("dbsrv")["NetworkSettings"]["Gateway"]
    # On the default bridge (no names there) a link is the way: NAME:ALIAS in /etc/hosts.
    engine.run("run", "-d", "--name", "app", "--link", "dbsrv:database", "--add-host",
               "host.docker.internal:host-gateway", "--add-host", "v6only=fd00::42",
               "busybox", "sleep", "600")
    hosts = engine.run("exec", "app", "cat", "/etc/hosts").stdout
    assert f"{db_ip}\tdatabase {short} dbsrv\n" in hosts
    assert f"{gateway}\thost.docker.internal\n" in hosts
    assert "fd00::42\tv6only\n" in hosts
    got = engine.run("exec", "app", "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do "
                     "wget -qO- http://database/ && break; sleep 0.2; done").stdout
    assert got == "db\n"
    assert engine.inspect("app")["HostConfig"]["Links"] == ["/dbsrv:/app/database"]
    # --link NAME alone: the alias is the name.
    assert f"{db_ip}\tdbsrv {short}\n" in _sh(engine, "--link", "dbsrv", "busybox", "cat",
                                               "/etc/hosts")


def test_api_endpoints_config_with_two_networks(engine: Engine) -> None:
    """API 1.44: NetworkingConfig.EndpointsConfig names every network; the one of
    NetworkMode is eth0, the others follow, each with its IPAMConfig and aliases."""
    from tomato.api.translate import run_options

    opts = run_options({"Image": "busybox", "HostConfig": {
        "NetworkMode": "one", "Links": ["db:database"]}, "NetworkingConfig": {
        "EndpointsConfig": {
            "one": {"Aliases": ["a1"], "IPAMConfig": {"IPv4Address": "10.235.0.9"}},
            "two": {"Aliases": ["a2"], "IPAMConfig": {"IPv6Address": "fd00:236::9"}}}}})
    assert (opts.network, opts.ip, opts.network_aliases) == ("one", "10.235.0.9", ["a1"])
    assert opts.extra_networks == [{"name": "two", "ip": "", "ip6": "fd00:236::9",
                                    "aliases": ["a2"]}]
    assert opts.links == ["db:database"]
