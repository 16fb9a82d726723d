"""Pure logic of the network package: -p specs, subnets and addresses, the files, the
nft script."""

from __future__ import annotations

import ipaddress

import pytest

from tomato.errors import Conflict, InvalidArgument
from tomato.network import files, ipam, nft
from tomato.network.ports import PortSpec, parse_expose, parse_publish


@pytest.mark.parametrize(("spec", "want"), [
    ("80", PortSpec("tcp", "", 0, 80)),
    ("18080:80", PortSpec("tcp", "", 18080, 80)),
    ("127.0.0.1:18080:80/udp", PortSpec("udp", "127.0.0.1", 18080, 80)),
    ("0.0.0.0:1:2", PortSpec("tcp", "", 1, 2)),
    ("127.0.0.1::80", PortSpec("tcp", "127.0.0.1", 0, 80)),
])
def test_publish_specs(spec: str, want: PortSpec) -> None:
    assert parse_publish(spec) == [want]


def test_publish_ranges_as_docker() -> None:
    """moby's nat.ParsePortSpec: same-size ranges map port to port; one container port
    with a host range takes the first free port of the range; sizes that differ are
    docker's error."""
    both = parse_publish("8000-8002:80-82/udp")
    assert both == [PortSpec("udp", "", 8000, 80), PortSpec("udp", "", 8001, 81),
                    PortSpec("udp", "", 8002, 82)]
    assert parse_publish("8000-8010:80") == [PortSpec("tcp", "", 8000, 80, 8010)]
    assert parse_publish("8000-8010:80")[0].as_dict()["host_port_end"] == 8010
    assert [p.container_port for p in parse_publish("90-92")] == [90, 91, 92]
    assert parse_publish("127.0.0.1::80-81") == [PortSpec("tcp", "127.0.0.1", 0, 80),
                                                 PortSpec("tcp", "127.0.0.1", 0, 81)]
    with pytest.raises(InvalidArgument, match="^invalid ranges specified for container and "
                       "host Ports: 80-90 and 8000-8005$"):
        parse_publish("8000-8005:80-90")
    for bad, message in (("9-8:80", "invalid hostPort: 9-8"),
                         ("80-", "invalid containerPort: 80-"),
                         ("1-70000", "invalid containerPort: 1-70000")):
        with pytest.raises(InvalidArgument, match=f"^{message}$"):
            parse_publish(bad)


def test_publish_ipv6_host_addresses() -> None:
    assert parse_publish("[::1]:8080:80") == [PortSpec("tcp", "::1", 8080, 80)]
    assert parse_publish("[fd00:0::1]::80/udp") == [PortSpec("udp", "fd00::1", 0, 80)]
    assert parse_publish("[::]:8080:80") == [PortSpec("tcp", "::", 8080, 80)]
    for bad in ("[::1:8080:80", "[::1]8080:80", "[zz::1]:1:2", "[::1]:1:2:3"):
        with pytest.raises(InvalidArgument):
            parse_publish(bad)


@pytest.mark.parametrize(("spec", "message"), [
    ("70000:80", "invalid hostPort: 70000"),
    ("a:b", "invalid containerPort: b"),
    ("80:a", "invalid containerPort: a"),
    ("1:2:3:4", "invalid port format"),
    ("80/sctp", "invalid proto: sctp"),
    ("300.1.1.1:80:80", "invalid IP address"),
    ("0:0", "invalid containerPort: 0"),
])
def test_bad_publish_specs(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_publish(spec)


def test_expose() -> None:
    assert parse_expose("80") == [(80, "tcp")]
    assert parse_expose("53/udp") == [(53, "udp")]
    assert parse_expose("8000-8002") == [(8000, "tcp"), (8001, "tcp"), (8002, "tcp")]
    for bad in ("x", "9-8", "1-"):
        with pytest.raises(InvalidArgument):
            parse_expose(bad)


def test_ipv6_addresses() -> None:
    net = ipam.parse_subnet6("fd00:1::/64")
    assert str(ipam.gateway6_of(net)) == "fd00:1::1"
    assert str(ipam.next_free6(net, {"fd00:1::1", "fd00:1::2"})) == "fd00:1::3"
    with pytest.raises(InvalidArgument, match="no matching subnet for gateway"):
        ipam.gateway6_of(net, "fd00:2::1")
    for bad in ("fd00:1::1/64", "10.0.0.0/8", "fd00::/127"):
        with pytest.raises(InvalidArgument):
            ipam.parse_subnet6(bad)
    ula = ipam.choose_subnet6([])
    assert ula.prefixlen == 64 and ula.network_address.packed[0] == 0xFD


def test_subnet_choice_skips_taken_and_host_routes() -> None:
    taken = [ipaddress.IPv4Network("172.17.0.0/16"), ipaddress.IPv4Network("172.18.5.0/24")]
    assert str(ipam.choose_subnet(taken)) == "172.19.0.0/16"
    with pytest.raises(Conflict):
        ipam.choose_subnet([ipaddress.IPv4Network("0.0.0.0/0")])


def test_gateway_must_be_inside() -> None:
    net = ipam.parse_subnet("10.1.2.0/24")
    assert str(ipam.gateway_of(net)) == "10.1.2.1"
    assert str(ipam.gateway_of(net, "10.1.2.254")) == "10.1.2.254"
    for bad in ("10.1.3.1", "10.1.2.0", "10.1.2.255"):
        with pytest.raises(InvalidArgument, match="no matching subnet for gateway"):
            ipam.gateway_of(net, bad)
    with pytest.raises(InvalidArgument):
        ipam.parse_subnet("10.1.2.3/24")  # host bits set


def test_next_free_never_repeats_and_runs_out() -> None:
    net = ipam.parse_subnet("10.9.0.0/29")
    used = {int(ipam.gateway_of(net))}
    got = []
    for _ in range(5):
        a = ipam.next_free(net, used)
        used.add(int(a))
        got.append(str(a))
    assert got == [f"10.9.0.{i}" for i in range(2, 7)]
    with pytest.raises(Conflict, match="no available IPv4 addresses"):
        ipam.next_free(net, used)


def test_a_released_address_is_the_last_given_again() -> None:
    net = ipam.parse_subnet("10.9.0.0/29")  # hosts .1 (gateway) to .6
    used = {int(ipam.gateway_of(net))}
    first = ipam.next_free(net, used)
    assert str(first) == "10.9.0.2"
    # .2 released at once: the next container still gets .3, and so on round
    assert str(ipam.next_free(net, used, int(first))) == "10.9.0.3"
    last = int(ipam.parse_ip("10.9.0.6"))
    assert str(ipam.next_free(net, used, last)) == "10.9.0.2"  # wraps past the end
    used |= {int(ipam.parse_ip(f"10.9.0.{i}")) for i in (2, 3, 4, 5)}
    assert str(ipam.next_free(net, used, int(ipam.parse_ip("10.9.0.5")))) == "10.9.0.6"
    used.add(last)
    with pytest.raises(Conflict, match="no available IPv4 addresses"):
        ipam.next_free(net, used, 3)


def test_mac() -> None:
    assert ipam.mac_for(ipaddress.IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"
    assert ipam.validate_mac("02:AA:bb:cc:dd:ee") == "02:aa:bb:cc:dd:ee"
    for bad in ("01:00:00:00:00:01", "zz:00:00:00:00:00", "02:00"):
        with pytest.raises(InvalidArgument):
            ipam.validate_mac(bad)


def test_host_routes_parse(tmp_path) -> None:  # type: ignore[no-untyped-def]
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    assert ipam.host_routes(str(table)) == [ipaddress.IPv4Network("192.0.2.0/24")]


def test_resolv_drops_loopback_resolvers() -> None:
    host = "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch a.example\n" \
           "options ndots:2\n"
    assert files.render_resolv(host) == \
        "nameserver 10.0.0.2\nsearch a.example\noptions ndots:2\n"
    assert files.render_resolv("nameserver 127.0.0.1\n").startswith("nameserver 8.8.8.8\n")
    assert files.render_resolv(host, ["1.1.1.1"], ["x.test"], ["debug"]) == \
        "nameserver 1.1.1.1\nsearch x.test\noptions debug\n"


def test_hosts() -> None:
    text = files.render_hosts("h1", ["10.0.0.2"], [("db", "10.0.0.9")],
                              [("10.0.0.3", ["web", "www", "web"])])
    assert "127.0.0.1\tlocalhost\n" in text
    assert "10.0.0.2\th1\n" in text
    assert "10.0.0.9\tdb\n" in text
    assert "10.0.0.3\tweb www\n" in text
    assert "127.0.1.1\th2\n" in files.render_hosts("h2", [], [], [])


def test_nft_script() -> None:
    nets = [nft.Net("br-a", "10.1.0.0/16"), nft.Net("br-b", "10.2.0.0/16"),
            nft.Net("br-i", "10.3.0.0/16", internal=True)]
    script = nft.render("t", nets, [nft.Port("tcp", "", 8080, "10.1.0.2", 80),
                                    nft.Port("udp", "127.0.0.1", 53, "10.1.0.3", 53)])
    assert script.startswith("table ip t {\n")
    assert "flush chain ip t ports\n" in script
    assert "tcp dport 8080 dnat to 10.1.0.2:80" in script
    assert "ip daddr 127.0.0.1 udp dport 53 dnat to 10.1.0.3:53" in script
    assert 'ip saddr 10.1.0.0/16 oifname != "br-a" masquerade' in script
    assert "10.3.0.0/16" not in script  # an internal network is never masqueraded
    assert 'iifname "br-a" oifname { "br-b", "br-i" } drop' in script
    assert 'iifname "br-i" oifname != "br-i" drop' in script
    assert "table ip6" not in script.replace("table ip6 t {}\ndelete table ip6 t\n", "")
    assert nft.render("t", [], []) == ("table ip t {}\ndelete table ip t\n"
                                       "table ip6 t {}\ndelete table ip6 t\n")


def test_nft_script_ipv6() -> None:
    """A dual-stack network: NAT66 and its ports in the ip6 twin of the table; a port
    published on an IPv4 address only is not DNATed for IPv6, nor one on ::1 for IPv4."""
    nets = [nft.Net("br-a", "10.1.0.0/16", subnet6="fd00:1::/64"),
            nft.Net("br-b", "10.2.0.0/16")]
    script = nft.render("t", nets, [
        nft.Port("tcp", "", 8080, "10.1.0.2", 80, "fd00:1::2"),
        nft.Port("tcp", "127.0.0.1", 8081, "10.1.0.2", 81, "fd00:1::2"),
        nft.Port("tcp", "fd00:9::1", 8082, "10.1.0.2", 82, "fd00:1::2")])
    v4, _, v6 = script.partition("table ip6 t {\n")
    assert 'ip6 saddr fd00:1::/64 oifname != "br-a" masquerade' in v6
    assert "tcp dport 8080 dnat to [fd00:1::2]:80" in v6
    assert "ip6 daddr fd00:9::1 tcp dport 8082 dnat to [fd00:1::2]:82" in v6
    assert "8081" not in v6 and "8082" not in v4
    assert "10.2.0.0" not in v6 and "127.0.0.0/8" not in v6
