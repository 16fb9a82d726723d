"""/etc/hosts and /etc/resolv.conf for a container, as Docker writes them.

Name resolution on user networks is the hosts file: each container's file
lists every other container on its user networks (name, aliases) and is
rewritten in place (same inode: it is bind-mounted into the container) when
a container joins or leaves one of those networks.  No DNS server to run,
crash or leak; the cost is that a name resolves only through files, which
busybox, glibc and musl all read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

LOCALHOST = ("127.0.0.1\tlocalhost\n"
             "::1\tlocalhost ip6-localhost ip6-loopback\n"
             "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\n"
             "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
FALLBACK_DNS = ("8.8.8.8", "8.8.4.4")  # Docker's, when the host only has a local resolver


def render_hosts(hostname: str, own_ips: Iterable[str], extra: Iterable[tuple[str, str]],
                 peers: Iterable[tuple[str, Iterable[str]]]) -> str:
    """``extra``: --add-host (name, ip); ``peers``: (ip, names) of other containers."""
    lines = [LOCALHOST]
    for name, ip in extra:
        lines.append(f"{ip}\t{name}\n")
    ips = list(own_ips)
    for ip in ips:
        lines.append(f"{ip}\t{hostname}\n")
    if not ips:
        lines.append(f"127.0.1.1\t{hostname}\n")
    for ip, names in peers:
        names = list(dict.fromkeys(names))
        if names:
            lines.append(f"{ip}\t{' '.join(names)}\n")
    return "".join(lines)


def render_resolv(host_text: str, dns: Iterable[str] = (), search: Iterable[str] = (),
                  options: Iterable[str] = ()) -> str:
    """The host's resolv.conf without loopback resolvers (unreachable from a netns),
    with --dns / --dns-search / --dns-option replacing their lines."""
    nameservers, searches, opts, other = [], [], [], []
    for line in host_text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = words[1:]
        elif words[0] == "options":
            opts.extend(words[1:])
        else:
            other.append(line)
    dns, search, options = list(dns), list(search), list(options)
    if dns:
        nameservers = dns
    else:
        nameservers = [n for n in nameservers
                       if not n.startswith("127.") and n not in ("::1", "0.0.0.0")]
        nameservers = nameservers or list(FALLBACK_DNS)
    if search:
        searches = [] if search == ["."] else search
    if options:
        opts = options
    out = [f"nameserver {n}\n" for n in nameservers]
    if searches:
        out.append(f"search {' '.join(searches)}\n")
    if opts:
        out.append(f"options {' '.join(opts)}\n")
    return "".join(out)


def rewrite(path: str, text: str) -> None:
    """Replace a file's content in place (its inode is bind-mounted in a container)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        data = text.encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)
