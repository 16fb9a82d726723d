"""Volume and network endpoints.  Network changes go through the zygote (they
make namespaces and links); reads are answered here."""

from __future__ import annotations

from typing import Any

from tomato.api.body import Fields
from tomato.api.http import Request
from tomato.engine import volumes
from tomato.errors import InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.api.server import Api
    from tomato.engine.networks import Networks


# -- volumes --------------------------------------------------------------------------
def _vol_match(api: Api, v: Any, filters: dict[str, list[str]]) -> bool:
    from tomato.engine.listfilters import volume_matches

    return volume_matches(v, filters, lambda name: bool(volumes.users(api.cfg.root, name)))


def volume_list(api: Api, req: Request) -> None:
    filters = req.filters()
    out = [v.to_docker() for v in volumes.list_volumes(api.cfg.root)
           if _vol_match(api, v, filters)]
    req.json_response({"Volumes": out, "Warnings": None})


def volume_create(api: Api, req: Request) -> None:
    import os

    body = req.fields()
    driver = body.text("Driver") or "local"
    if driver != "local":
        raise NotFound(f'plugin "{driver}" not found')
    if body.text_map("DriverOpts"):
        raise InvalidArgument("volume driver options are not supported")
    name = body.text("Name") or os.urandom(32).hex()
    v = volumes.ensure(api.cfg.root, name, body.text_map("Labels"))
    req.json_response(v.to_docker(), 201)


def volume_inspect(api: Api, req: Request, name: str) -> None:
    req.json_response(volumes.get(api.cfg.root, name).to_docker())


def volume_delete(api: Api, req: Request, name: str) -> None:
    volumes.remove(api.cfg.root, name, force=req.flag("force"))
    req.no_content()


def volume_prune(api: Api, req: Request) -> None:
    removed = volumes.prune(api.cfg.root, req.filters())
    req.json_response({"VolumesDeleted": removed or None, "SpaceReclaimed": 0})


# -- networks -------------------------------------------------------------------------
def _store(api: Api) -> Networks:
    from tomato.engine import networks

    return networks.Networks(api.cfg.root)


def _network(api: Api, ref: str) -> dict[str, Any]:
    from tomato.engine.networks import network_json, pseudo_network

    if ref in ("host", "none"):
        return pseudo_network(api.cfg.root, ref)
    store = _store(api)
    try:
        return network_json(store, store.get(ref))
    except NotFound:
        for name in ("host", "none"):
            p = pseudo_network(api.cfg.root, name)
            if p["Id"].startswith(ref):
                return p
        raise NotFound(f"network {ref} not found") from None


def _net_match(n: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    from tomato.engine.listfilters import network_matches

    return network_matches(n, filters)


def network_list(api: Api, req: Request) -> None:
    from tomato.engine.networks import network_json, pseudo_network, sweep

    sweep(api.cfg.root)
    store = _store(api)
    out = [network_json(store, n) for n in store.all()]
    out += [pseudo_network(api.cfg.root, name) for name in ("host", "none")]
    filters = req.filters()
    req.json_response([n for n in out if _net_match(n, filters)])


def network_inspect(api: Api, req: Request, id: str) -> None:  # noqa: A002 — Docker's name
    req.json_response(_network(api, id))


def network_create(api: Api, req: Request) -> None:
    body = req.fields()
    if not body.text("Name"):
        raise InvalidArgument("network name is required")
    by_family: dict[bool, Fields] = {}
    for item in body.obj("IPAM").objs("Config"):
        six = ":" in item.text("Subnet")
        if six in by_family:
            raise InvalidArgument("only one IPAM config (one subnet) for each address "
                                  "family is supported")
        by_family[six] = item
    cfg, cfg6 = by_family.get(False, Fields({})), by_family.get(True, Fields({}))
    nid = api.zygote.call("net_create", {
        "name": body.text("Name"), "subnet": cfg.text("Subnet"), "gateway": cfg.text("Gateway"),
        "internal": body.boolean("Internal"), "labels": body.text_map("Labels"),
        "driver": body.text("Driver") or "bridge", "ipv6": body.boolean("EnableIPv6"),
        "subnet6": cfg6.text("Subnet"), "gateway6": cfg6.text("Gateway")})
    req.json_response({"Id": nid, "Warning": ""}, 201)


def network_delete(api: Api, req: Request, id: str) -> None:  # noqa: A002
    api.zygote.call("net_remove", {"id": id})
    req.no_content()


def network_prune(api: Api, req: Request) -> None:
    from tomato.engine.listfilters import prune_matches

    filters = req.filters()
    prune_matches(0, {}, filters)  # a bad filter is a 400 before anything goes
    removed = api.zygote.call("net_prune", {"filters": filters})
    req.json_response({"NetworksDeleted": removed or None})


def network_connect(api: Api, req: Request, id: str) -> None:  # noqa: A002
    body = req.fields()
    ep = body.obj("EndpointConfig")
    api.zygote.call("net_connect", {
        "container": body.text("Container"), "network": id,
        "ip": ep.obj("IPAMConfig").text("IPv4Address"),
        "ip6": ep.obj("IPAMConfig").text("IPv6Address"),
        "aliases": ep.texts("Aliases", lone=True)})
    req.send(200, b"", "text/plain")


def network_disconnect(api: Api, req: Request, id: str) -> None:  # noqa: A002
    body = req.fields()
    api.zygote.call("net_disconnect", {"container": body.text("Container"), "network": id})
    req.send(200, b"", "text/plain")


ROUTES = [
    ("GET", "/volumes", volume_list),
    ("POST", "/volumes/create", volume_create),
    ("POST", "/volumes/prune", volume_prune),
    ("GET", "/volumes/{name}", volume_inspect),
    ("DELETE", "/volumes/{name}", volume_delete),
    ("GET", "/networks", network_list),
    ("POST", "/networks/create", network_create),
    ("POST", "/networks/prune", network_prune),
    ("GET", "/networks/{id}", network_inspect),
    ("DELETE", "/networks/{id}", network_delete),
    ("POST", "/networks/{id}/connect", network_connect),
    ("POST", "/networks/{id}/disconnect", network_disconnect),
]
