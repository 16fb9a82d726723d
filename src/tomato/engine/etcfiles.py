"""A container's /etc/hosts, /etc/hostname and /etc/resolv.conf, written into its
directory and bind-mounted by the runtime (as Docker does): the engine rewrites
hosts when peers on a user network come and go (networks.refresh_hosts)."""

from __future__ import annotations

from pathlib import Path

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from tomato.engine.config import EngineConfig
    from tomato.engine.networks import Networks
    from tomato.engine.options import RunOptions


def write_etc_files(cfg: EngineConfig, cdir: Path, cid: str, opts: RunOptions,
                    network: str, net: Networks | None) -> dict[str, Path]:
    """The three files for container ``cid`` in ``cdir``; ``network`` is its resolved
    network mode (``container:<full id>``, not the name the user gave)."""
    hostname = opts.hostname or cid[:12]
    files = {"hosts": cdir / "hosts", "hostname": cdir / "hostname",
             "resolv.conf": cdir / "resolv.conf"}
    if network.startswith("container:"):
        # The joined container's files: same addresses, same resolvers.
        import shutil

        from tomato.engine.containers import Containers

        other = Containers(cfg.root).path(network.partition(":")[2])
        for name in ("hosts", "resolv.conf"):
            try:
                shutil.copyfile(other / name, files[name])
            except OSError:
                files[name].write_text("")
        files["hostname"].write_text(hostname + "\n")
        return files
    from tomato.network import files as netfiles

    if net is not None:
        hosts = net.hosts_text(cid, hostname, opts.add_hosts, opts.links)
    else:
        extra = [(h.partition(":")[0], h.partition(":")[2]) for h in opts.add_hosts
                 if not h.endswith(":host-gateway")]
        hosts = netfiles.render_hosts(hostname, [], extra, [])
        if network == "host":
            hosts = hosts.replace(f"127.0.1.1\t{hostname}\n", "")
    files["hosts"].write_text(hosts)
    files["hostname"].write_text(hostname + "\n")
    try:
        with open("/etc/resolv.conf") as f:
            host_resolv = f.read()
    except OSError:
        host_resolv = ""
    if network.startswith("slirp4netns") or (net is not None and net.rootless):
        from tomato.network.usermode import resolv_conf

        host_resolv = resolv_conf()  # the host's resolvers, through slirp4netns's
    if network == "host" and not (opts.dns or opts.dns_search or opts.dns_options):
        resolv = host_resolv
    else:
        resolv = netfiles.render_resolv(host_resolv, opts.dns, opts.dns_search,
                                        opts.dns_options)
    files["resolv.conf"].write_text(resolv)
    return files
