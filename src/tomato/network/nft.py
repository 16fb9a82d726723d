"""Tomato's own nftables table: masquerading, isolation between networks, published ports.

The whole table is rendered from the engine's records and replaced in one
nft transaction (``table`` + ``delete table`` + the new table), so applying
it is atomic and idempotent: reconciling after a crash is just rendering
again.  Nothing outside the table is ever touched.

Chains:
- ``postrouting`` (nat): masquerade what leaves a non-internal network for
  another interface; masquerade 127.0.0.0/8 sources going to a bridge (the
  host reaching a published port on 127.0.0.1, with route_localnet on the
  bridge); hairpin (a container reaching its own published port).
- ``prerouting``/``output`` (nat): traffic to a local address jumps to
  ``ports``, which DNATs each published port to its container.
- ``forward`` (filter): DNATed traffic passes; otherwise traffic between two
  Tomato networks, or into/out of an internal one, is dropped.

IPv6 networks (``--ipv6``) get the same chains in a table of the ``ip6`` family
of the same name, in the same transaction: NAT66 (masquerade) out of a
non-internal network, published ports DNATed to the container's IPv6
address.  The host's ::1 cannot reach a published port that way: IPv6 has no
route_localnet, the kernel drops the replies (Docker uses its userland proxy
there), so the loopback rules are IPv4's only.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

from tomato.errors import Unavailable
from tomato.records import record, replace


@record
class Net:
    bridge: str
    subnet: str
    internal: bool = False
    subnet6: str = ""


@record
class Port:
    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int
    container_ip6: str = ""


def _set(items: Iterable[str]) -> str:
    quoted = [f'"{i}"' for i in items]
    return "{ " + ", ".join(quoted) + " }" if len(quoted) > 1 else quoted[0]


CHAINS = (("ports", ""), ("prerouting", "type nat hook prerouting priority dstnat; "),
          ("output", "type nat hook output priority -100; "),
          ("postrouting", "type nat hook postrouting priority srcnat; "),
          ("forward", "type filter hook forward priority filter; "))


def render(table: str, nets: list[Net], ports: list[Port]) -> str:
    """The nft script that makes ``table`` (and its ``ip6`` twin) hold exactly these
    rules, or deletes it.

    The chains are declared (a no-op when they exist), flushed and refilled in
    one transaction: re-registering netfilter hooks costs an RCU grace period
    (~10 ms), refilling a chain does not."""
    six = [n for n in nets if n.subnet6]
    v4 = _render_family("ip", table, nets, [p for p in ports if ":" not in p.host_ip])
    v6 = _render_family("ip6", table, [replace(n, subnet=n.subnet6) for n in six],
                        [replace(p, container_ip=p.container_ip6) for p in ports
                         if p.container_ip6 and "." not in p.host_ip]) if six else \
        f"table ip6 {table} {{}}\ndelete table ip6 {table}\n"
    return v4 + v6


def _render_family(family: str, table: str, nets: list[Net], ports: list[Port]) -> str:
    if not nets and not ports:
        return f"table {family} {table} {{}}\ndelete table {family} {table}\n"
    ip = family
    rules: dict[str, list[str]] = {
        "ports": [], "prerouting": ["fib daddr type local jump ports"],
        "output": ["fib daddr type local jump ports"], "postrouting": [],
        "forward": ["ct status dnat accept"]}
    post, fwd = rules["postrouting"], rules["forward"]
    bridges = [n.bridge for n in nets]
    for n in nets:  # an internal network is closed even to published ports: first
        if n.internal:
            fwd.insert(0, f'oifname "{n.bridge}" iifname != "{n.bridge}" drop')
            fwd.insert(0, f'iifname "{n.bridge}" oifname != "{n.bridge}" drop')
    for n in nets:
        others = [b for b in bridges if b != n.bridge]
        if n.internal:
            pass
        else:
            post.append(f'{ip} saddr {n.subnet} oifname != "{n.bridge}" masquerade')
            if others:
                fwd.append(f'iifname "{n.bridge}" oifname {_set(others)} drop')
        if family == "ip":
            post.append(f'oifname "{n.bridge}" ip saddr 127.0.0.0/8 masquerade')
    for p in ports:
        match = f"{ip} daddr {p.host_ip} " if p.host_ip not in ("", "0.0.0.0", "::") else ""
        to = f"[{p.container_ip}]" if family == "ip6" else p.container_ip
        rules["ports"].append(f"{match}{p.proto} dport {p.host_port} dnat to "
                              f"{to}:{p.container_port}")
        post.append(f"{ip} saddr {p.container_ip} {ip} daddr {p.container_ip} {p.proto} "
                    f"dport {p.container_port} masquerade")
    declare = "".join(f"  chain {name} {{ {head}{'policy accept; ' if head else ''}}}\n"
                      for name, head in CHAINS)
    flush = "".join(f"flush chain {family} {table} {name}\n" for name, _ in CHAINS)
    fill = "".join(f"  chain {name} {{\n" + "".join(f"    {r}\n" for r in rules[name])
                   + "  }\n" for name, _ in CHAINS if rules[name])
    return (f"table {family} {table} {{\n{declare}}}\n{flush}"
            f"table {family} {table} {{\n{fill}}}\n")


def apply(script: str) -> None:
    finish(start(script))


def start(script: str, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[str]:
    """Run ``nft -f -`` without waiting: the kernel's commit sleeps for RCU grace
    periods (10-20 ms here) while the caller goes on.  ``pass_fds``: a lock the
    child holds until it is done, so rule changes never overtake each other."""
    try:
        proc = subprocess.Popen(["nft", "-f", "-"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                pass_fds=pass_fds)
    except FileNotFoundError as err:
        raise Unavailable("nft not found: published ports and NAT need nftables "
                          "(apt-get install nftables)") from err
    assert proc.stdin is not None
    proc.stdin.write(script)
    proc.stdin.close()
    return proc


def finish(proc: subprocess.Popen[str]) -> None:
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    if proc.returncode != 0:
        detail = err.strip().splitlines()
        raise Unavailable(f"nft failed: {detail[0] if detail else proc.returncode}")


def table_exists(table: str) -> bool:
    proc = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True,
                          text=True, timeout=30)
    return proc.returncode == 0
