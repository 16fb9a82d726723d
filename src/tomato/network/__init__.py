"""Container networking on the host's kernel: the parts, not the policy.

- ``netlink``: a small rtnetlink client (links, veth pairs, addresses, routes,
  batched deletion).  Not pyroute2: its import costs 85-130 ms, more than the
  whole `run --rm` budget; the tests use pyroute2 as an independent reader.
- ``netns``: network namespaces pinned on a file under the engine's root
  (``ROOT/netns/<id>``), configured from inside without forking.
- ``bridge``: the bridge device (gateway address, route_localnet,
  ip_forward) and one veth pair per container (eth0 inside).
- ``nft``: Tomato's own nftables table, rendered whole from records
  (masquerade, isolation between networks, internal networks, DNAT of
  published ports, 127.0.0.1 through route_localnet).
- ``ipam``: subnets that avoid the host's routes, lowest free address, MACs.
- ``ports``: `-p` specs and whether a host port is free.
- ``files``: /etc/hosts (name resolution on user networks) and resolv.conf.

The engine (``tomato.engine.networks``) owns the records and the lifecycles.
Nothing here imports the engine, pyroute2, or anything at import time.
"""
