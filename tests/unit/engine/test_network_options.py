"""The network flags' parsers (issue 19): --network's advanced form, --link, --add-host
with IPv6 and host-gateway, as docker's CLI reads them."""

from __future__ import annotations

import pytest

from tomato.engine.options import parse_add_host, parse_link, parse_network_attachment
from tomato.errors import InvalidArgument


def test_network_attachment_forms() -> None:
    assert parse_network_attachment("front") == {"name": "front", "ip": "", "ip6": "",
                                                 "aliases": []}
    assert parse_network_attachment("default")["name"] == "bridge"
    assert parse_network_attachment("container:db")["name"] == "container:db"
    assert parse_network_attachment("slirp4netns:mtu=9000")["name"] == "slirp4netns:mtu=9000"
    assert parse_network_attachment("name=back,alias=a,alias=b,ip=10.0.0.5,ip6=fd00::5") == {
        "name": "back", "ip": "10.0.0.5", "ip6": "fd00::5", "aliases": ["a", "b"]}
    for bad, message in (("alias=a", "network name is missing"),
                         ("name=x,mtu=9", "invalid field key mtu"),
                         ("name=x,alias", "must be a key=value pair")):
        with pytest.raises(InvalidArgument, match=message):
            parse_network_attachment(bad)


def test_links() -> None:
    assert parse_link("db") == "db:db"
    assert parse_link("/db:database") == "db:database"
    for bad in ("", ":x", "a:b:c"):
        with pytest.raises(InvalidArgument, match="bad format for links"):
            parse_link(bad)


def test_add_host_ipv6_and_host_gateway() -> None:
    assert parse_add_host("db:10.0.0.9") == "db:10.0.0.9"
    assert parse_add_host("gw:host-gateway") == "gw:host-gateway"
    assert parse_add_host("six:fd00::1") == "six:fd00::1"
    assert parse_add_host("six=fd00:0::1") == "six:fd00::1"
    assert parse_add_host("six:[::1]") == "six:::1"
    for bad in ("foo", "foo:", ":1.2.3.4"):
        with pytest.raises(InvalidArgument, match="bad format for add-host"):
            parse_add_host(bad)
    with pytest.raises(InvalidArgument, match='invalid IP address in add-host: "zz"'):
        parse_add_host("a:zz")
