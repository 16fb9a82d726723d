"""Pure pieces of the API server: routes, versions, error mapping, event filters,
the host address rules (HTTP heads and bodies: test_api_wire.py)."""

from __future__ import annotations

import pytest

from tomato.api.events import matches
from tomato.api.http import HttpError, docker_message, status_of, version_tuple
from tomato.api.server import all_routes, compile_routes, parse_host
from tomato.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    TomatoError,
    Unavailable,
)


def _route(method: str, path: str) -> tuple[str, dict[str, str]]:
    for m, rx, handler in compile_routes(all_routes()):
        hit = rx.match(path)
        if hit and m == method:
            return f"{handler.__module__.rsplit('.', 1)[1]}.{handler.__name__}", hit.groupdict()
    raise LookupError(path)


def test_routes() -> None:
    assert _route("POST", "/containers/create") == ("containers.create", {})
    assert _route("GET", "/containers/abc/json") == ("containers.inspect", {"id": "abc"})
    assert _route("POST", "/containers/abc/attach") == ("streams.attach", {"id": "abc"})
    # image names hold slashes and ports
    assert _route("GET", "/images/127.0.0.1:5000/team/app:v1/json") == \
        ("images.inspect", {"name": "127.0.0.1:5000/team/app:v1"})
    assert _route("DELETE", "/images/library/busybox:latest") == \
        ("images.delete", {"name": "library/busybox:latest"})
    assert _route("GET", "/images/json") == ("images.list_json", {})
    assert _route("POST", "/networks/create") == ("objects.network_create", {})
    assert _route("GET", "/networks/abc") == ("objects.network_inspect", {"id": "abc"})


def test_versions() -> None:
    assert version_tuple("1.43") > version_tuple("1.24") > version_tuple("1.9")
    assert version_tuple("2.0") > version_tuple("1.43")


def test_error_statuses_and_messages() -> None:
    assert status_of(NotFound("x")) == 404
    assert status_of(AlreadyExists("x")) == status_of(Conflict("x")) == 409
    assert status_of(InvalidArgument("x")) == 400
    assert status_of(Unavailable("x")) == 503
    assert status_of(TomatoError("x")) == 500
    assert status_of(HttpError(501, "x")) == 501
    assert docker_message(NotFound("no such image: a:b")) == "No such image: a:b"


def test_event_filters() -> None:
    ev = {"Type": "container", "Action": "die", "Actor": {"ID": "abc123",
                                                          "Attributes": {"name": "web",
                                                                         "image": "busybox",
                                                                         "tier": "front"}}}
    assert matches(ev, {})
    assert matches(ev, {"container": ["web"]}) and matches(ev, {"container": ["abc"]})
    assert not matches(ev, {"container": ["db"]})
    assert matches(ev, {"type": ["container"], "event": ["die", "start"]})
    assert not matches(ev, {"type": ["volume"]})
    assert matches(ev, {"label": ["tier=front"]}) and not matches(ev, {"label": ["tier=back"]})
    assert matches(ev, {"image": ["busybox"]})


def test_hosts() -> None:
    assert parse_host("unix:///run/tomato/docker.sock") == ("unix", "/run/tomato/docker.sock")
    assert parse_host("tcp://127.0.0.1:2375") == ("tcp", ("127.0.0.1", 2375))
    assert parse_host("tcp://[::1]:2375") == ("tcp6", ("::1", 2375))
    for bad in ("tcp://0.0.0.0:2375", "tcp://10.0.0.1:2375", "tcp://example.com:1",
                "unix://relative.sock", "http://127.0.0.1:1"):
        with pytest.raises(InvalidArgument):
            parse_host(bad)
