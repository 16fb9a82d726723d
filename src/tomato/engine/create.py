"""`create`: a container's record, bundle and root filesystem -- made completely,
or not at all.

The order, and why:

1. the daemon's checks of the options, then the image (pulled if missing);
2. the network planned (``plan_network``): a bad network or a busy port fails
   before anything exists, and the caller's options are never rewritten;
3. a claim (an flock on ``containers/.ID.lock``) from before anything is made
   until the record exists: whatever names an id without a record or a live
   claim was left by a killed create, and leftovers.py sweeps it;
4. the netns first (its nft rules commit while the rest is made), the rootfs
   (the image's overlay, mounts.py), volumes, /etc files (etcfiles.py), the
   OCI spec (specgen.py), and the record last -- each undone, in reverse, if a
   later step fails.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import ExitStack

from tomato.engine import events, mounts, rootless_net, runtime_ops
from tomato.engine import images as image_service
from tomato.engine.containers import (
    Container,
    Containers,
    State,
    ensure_dir,
    new_id,
    random_name,
    validate_name,
)
from tomato.engine.options import RunOptions
from tomato.engine.state import get
from tomato.engine.status import PAUSED, RUNNING
from tomato.errors import Conflict, InvalidArgument, NotFound
from tomato.files import write_private
from tomato.records import record, replace

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from tomato.engine.config import EngineConfig
    from tomato.engine.networks import Networks


@record
class NetworkPlan:
    """What a container's network will be, decided before anything is made."""

    mode: str  #: bridge, a network's name, none, host, or container:<full id>
    publish: tuple[dict[str, Any], ...]  #: -p, with -P's exposed ports added
    publish_all: bool
    nets: Networks | None  #: the store, when the container gets a netns of ours


def create(cfg: EngineConfig, opts: RunOptions, then_start: bool = False) -> Container:
    """A container record, bundle and rootfs; ``then_start``: `start` follows at once
    (the cgroup move it will make is primed now, see cgroups.prime_migration)."""
    supervision = cfg.supervision
    if then_start:
        supervision.prime()
    try:
        return _create(cfg, opts)
    except BaseException:
        supervision.reap_primer()
        raise
    finally:
        if not then_start:
            supervision.reap_primer()


def image_for(cfg: EngineConfig, opts: RunOptions) -> Any:
    """The image a container is made of, by --pull (always: pulled again; missing: pulled
    if absent; never: only what is here) and --platform (refused when the image, or this
    host, is another platform: nothing here emulates one)."""
    plat = None
    if opts.platform:
        import platform as host

        from tomato.images.manifest import parse_platform

        plat = parse_platform(opts.platform)
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(host.machine(), host.machine())
        if (plat.os, plat.architecture) != ("linux", arch):
            raise InvalidArgument(f"platform {opts.platform} does not match this host "
                                  f"(linux/{arch}): no emulation here to run it")
    if opts.pull == "always":
        image_service.pull(cfg, opts.image, platform=plat)
    try:
        img = image_service.get_image(cfg, opts.image)
    except NotFound:
        if opts.pull == "never":
            raise NotFound(f"No such image: {opts.image}") from None
        image_service.pull(cfg, opts.image, platform=plat)
        img = image_service.get_image(cfg, opts.image)
    if plat is not None:
        have = image_service.inspect(cfg, img.id).platform
        wanted = (plat.os, plat.architecture, plat.variant or have.variant)
        if (have.os, have.architecture, have.variant) != wanted:
            actual = "/".join(p for p in (have.os, have.architecture, have.variant) if p)
            raise Conflict(f"image with reference {opts.image} was found but does not match "
                           f"the specified platform: wanted {opts.platform}, actual: {actual}")
    return img


def _create(cfg: EngineConfig, opts: RunOptions) -> Container:
    from tomato.engine.options import validate_resources

    validate_resources(opts)  # the daemon's checks (CLI and API), before a pull
    from tomato.engine.run_checks import check_run_extras

    check_run_extras(opts)
    from tomato.engine import health

    health.validate(opts.healthcheck)
    from tomato.engine import namespaces

    opts = namespaces.planned(cfg, opts)  # container:NAME -> container:<full id>
    if cfg.userns_remap is not None:  # dockerd's refusals, before anything is made
        from tomato.engine import userns_remap

        userns_remap.check(cfg.userns_remap, opts)
    joins = namespaces.join_paths(cfg, opts, strict=False)
    inherited: list[dict[str, Any]] = []
    if opts.volumes_from:  # kept as given (docker's inspect shows them so)
        inherited = volumes_from(cfg, opts.volumes_from)
    records = Containers(cfg.root)
    img = image_for(cfg, opts)
    image_config = image_service.inspect(cfg, img.id).config or {}
    cid = new_id()
    name = validate_name(opts.name) if opts.name else random_name(records.names())
    if opts.name and name in records.names():
        from tomato.errors import AlreadyExists

        raise AlreadyExists(f'Conflict. The container name "/{name}" is already in use by '
                            "another container. You have to remove (or rename) that "
                            "container to be able to reuse that name.")
    plan = plan_network(cfg, opts, image_config)  # bad network or busy port: nothing made yet
    net = plan.nets
    cdir = records.path(cid)
    with ExitStack() as undo:
        # Claimed until the record exists: what a killed create leaves has neither
        # (engine/leftovers.py removes it), what a live one is making has the claim.
        from tomato.engine.claims import claim
        from tomato.engine.leftovers import claim_path

        undo.enter_context(claim(claim_path(cfg.root, cid)))
        if net is not None:
            undo.enter_context(net.claim(cid))  # held until the record exists (see sweep)
        with ExitStack() as rollback:
            ensure_dir(cdir)
            rollback.callback(mounts.rmtree, cdir)
            if opts.ipc_mode == "shareable":
                namespaces.mount_shm(cdir, opts.shm_size)
                rollback.callback(namespaces.unmount_shm, cdir)
            netns_path = ""
            if net is not None:  # first: its nft rules commit while the rootfs is made
                net.attach(cid, plan.mode, ip=opts.ip, aliases=opts.network_aliases,
                           mac=opts.mac_address, ports=list(plan.publish), ip6=opts.ip6,
                           more=opts.extra_networks)
                rollback.callback(net.teardown, cid)
                netns_path = net.netns_path(cid)
            elif plan.mode.startswith("container:"):
                netns_path = joined_netns(cfg, plan.mode.partition(":")[2])
            elif rootless_net.is_slirp(plan.mode):  # the slirp4netns runs from start
                netns_path = rootless_net.attach(cfg.root, cid)
                rollback.callback(rootless_net.teardown, cfg.root, cdir, cid)
            rootfs_mounts = image_service.prepare_rootfs(cfg, img.id, cid)
            rollback.callback(image_service.release_rootfs, cfg, cid)
            rootfs = records.bundle(cid) / "rootfs"
            if cfg.userns_remap is not None:  # (before the mount: overlay keeps the owner)
                _give_upper(cfg, opts, rootfs_mounts)
            mounts.mount_rootfs(rootfs_mounts, rootfs)
            rollback.callback(mounts.unmount_rootfs, rootfs)
            volume_mounts, anonymous = mounts.volume_mounts(cfg, opts, image_config,
                                                            inherited)
            from tomato.engine.etcfiles import write_etc_files

            files = write_etc_files(cfg, cdir, cid, opts, plan.mode, net)
            from tomato.engine.specgen import build_spec

            planned = replace(opts, network=plan.mode, publish=list(plan.publish),
                              publish_all=plan.publish_all,
                              healthcheck=health.merge(opts.healthcheck,
                                                       image_config.get("Healthcheck")))
            spec = build_spec(planned, image_config, cid, rootfs, files, volume_mounts,
                              _cgroup_parent(), netns_path, joins,
                              namespaces.shm_mount(cfg, planned, cdir))
            if cfg.userns_remap is not None:
                _remap_container(cfg, opts, spec, files, volume_mounts)
            # Compact: with indent=, json encodes in Python (~1.5 ms for a spec)
            write_private(records.bundle(cid) / "config.json", json.dumps(spec))
            options = planned.to_dict()
            # --volumes-from's anonymous volumes too: `rm -v` of whichever of the two goes
            # last removes them (docker's removeMountPoints; the first finds them in use)
            options["anonymous_volumes"] = anonymous + _inherited_anonymous(
                cfg, opts.volumes_from, {m["source"] for m in inherited})
            if image_config.get("Shell"):  # CMD-SHELL healthchecks run in it (Docker's)
                options["shell"] = list(image_config["Shell"])
            c = Container(cid, name, opts.image, img.id, time.time(), options, spec, State())
            if net is not None:
                net.settle()
            records.add(c, pick_name=not opts.name)
            rollback.pop_all()
    if net is not None and (plan.mode != "bridge" or opts.extra_networks):
        joined = [plan.mode, *(m["name"] for m in opts.extra_networks)]
        net.refresh_hosts({net.get(ref).id for ref in joined})  # peers learn our name
    events.container(cfg.root, c, "create")
    return c


def _give_upper(cfg: EngineConfig, opts: RunOptions, rootfs_mounts: list[Any]) -> None:
    """--userns-remap: the upper directory (the merged root's owner) owned by the
    container's root, the range's start."""
    from tomato.engine import userns_remap

    uppers = [o.partition("=")[2] for m in rootfs_mounts for o in m.options
              if o.startswith("upperdir=")]
    userns_remap.give_to_root(cfg.userns_remap, opts, *uppers)


def _remap_container(cfg: EngineConfig, opts: RunOptions, spec: dict[str, Any],
                     files: dict[str, Path], volume_mounts: list[dict[str, Any]]) -> None:
    """--userns-remap: the spec's user namespace, and what root inside must write
    owned by the range's start: the etc files, and volumes of ours still root's (just
    made)."""
    from tomato.engine import userns_remap

    remap = cfg.userns_remap
    userns_remap.apply_to_spec(spec, remap, opts)
    volumes = cfg.root / "volumes"
    ours = [m["source"] for m in volume_mounts if m.get("source", "").startswith(
        f"{volumes}/") and os.stat(m["source"]).st_uid == 0]
    userns_remap.give_to_root(remap, opts, *files.values(), *ours)


def _cgroup_parent() -> str:
    """Root's containers below each hierarchy's tomato/; a user's in its delegated cgroup
    v2 subtree (engine/rootless.py), or nowhere: the runtime then makes no cgroup."""
    from tomato._sys import userns

    if userns.rootless():
        from tomato.engine import rootless

        return rootless.containers_cgroup() or runtime_ops.CGROUP_PARENT
    return runtime_ops.CGROUP_PARENT


def plan_network(cfg: EngineConfig, opts: RunOptions,
                 image_config: dict[str, Any]) -> NetworkPlan:
    """Check the network options and decide them: the mode (another container's by its
    full id), the ports to publish (-P adds the image's and --expose's), and the
    Networks store when the container gets a netns.  ``opts`` is left as it is."""
    from tomato._sys import userns
    from tomato.engine import networks

    if userns.rootless():
        return _plan_rootless(cfg, opts, image_config)
    mode = opts.network
    publish = tuple(opts.publish)
    if (opts.extra_networks or opts.links) and not networks.is_networked(mode):
        raise Conflict(f"conflicting options: {'--link' if opts.links else 'more networks'}"
                       f" and the {mode.partition(':')[0]} network mode")
    if mode.startswith("container:"):
        other = get(cfg, mode.partition(":")[2])
        if opts.publish or opts.publish_all:
            raise Conflict("conflicting options: port publishing and the container type "
                           "network mode")
        return NetworkPlan(f"container:{other.id}", (), False, None)
    if not networks.is_networked(mode):
        return NetworkPlan(mode, (), False, None)  # Docker ignores -p/-P there, with a warning
    net = networks.Networks(cfg.root, cfg.explain)
    net.sweep()
    net.get(mode)  # NotFound for an unknown network
    for extra in opts.extra_networks:
        if not networks.is_networked(extra["name"]) or extra["name"] == "bridge":
            raise InvalidArgument("conflicting options: cannot attach both user-defined and "
                                  "non-user-defined network-modes")
        net.get(extra["name"])
    for link in opts.links:
        name = link.partition(":")[0]
        try:
            get(cfg, name)
        except NotFound:
            raise NotFound(f"could not get container for {name}") from None
    if opts.publish_all:
        publish = _with_exposed(publish, opts, image_config)
    net.check_ports(list(publish))
    return NetworkPlan(mode, publish, opts.publish_all, net)


def _with_exposed(publish: tuple[dict[str, Any], ...], opts: RunOptions,
                  image_config: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """-P: the image's and --expose's ports added, each on a host port picked later."""
    from tomato.network.ports import parse_expose

    have = {(p["container_port"], p["proto"]) for p in publish}
    added = []
    for item in [*(image_config.get("ExposedPorts") or {}), *opts.expose]:
        for port, proto in parse_expose(item):  # a range: each of its ports
            if (port, proto) not in have:
                have.add((port, proto))
                added.append({"proto": proto, "host_ip": "", "host_port": 0,
                              "container_port": port})
    return (*publish, *added)


def _plan_rootless(cfg: EngineConfig, opts: RunOptions,
                   image_config: dict[str, Any]) -> NetworkPlan:
    """A rootless engine's plan (engine/rootless_net.py): the default network is
    slirp4netns, its ports checked and decided here (a privileged one refused); a user
    network is root's, its devices in the user's network namespace."""
    mode = rootless_net.plan_mode(opts.network)
    if mode.startswith("container:"):
        other = get(cfg, mode.partition(":")[2])
        if opts.publish or opts.publish_all:
            raise Conflict("conflicting options: port publishing and the container type "
                           "network mode")
        return NetworkPlan(f"container:{other.id}", (), False, None)
    if mode in ("none", "host"):
        return NetworkPlan(mode, (), False, None)
    publish = tuple(opts.publish)
    if opts.publish_all:
        publish = _with_exposed(publish, opts, image_config)
    if rootless_net.is_slirp(mode):
        return NetworkPlan(mode, tuple(rootless_net.plan_ports(list(publish))),
                           opts.publish_all, None)
    from tomato.engine import networks
    from tomato.network.usermode import refuse_privileged_ports

    refuse_privileged_ports([int(p["host_port"]) for p in publish])
    net = networks.Networks(cfg.root)
    net.sweep()
    net.get(mode)  # NotFound for an unknown network
    net.check_ports(list(publish))
    return NetworkPlan(mode, publish, opts.publish_all, net)


def joined_netns(cfg: EngineConfig, other_id: str) -> str:
    """--network container:X joins X's netns: ours if X has one, else its init's."""
    from tomato.engine import networks

    other = get(cfg, other_id)
    mode = other.options.get("network", "none")
    if mode == "host":
        raise Conflict("cannot join the network of a container that uses the host's")
    if networks.is_networked(mode):
        return networks.Networks(cfg.root).netns_path(other.id)
    if rootless_net.is_slirp(mode):
        return rootless_net.netns_path(cfg.root, other.id)
    if mode.startswith("container:"):
        return joined_netns(cfg, mode.partition(":")[2])
    if other.state.status not in (RUNNING, PAUSED) or not other.state.pid:
        raise Conflict(f"cannot join network of a non running container: {other.id}")
    return f"/proc/{other.state.pid}/ns/net"


def rename(cfg: EngineConfig, ref: str, new_name: str) -> None:
    c = get(cfg, ref)
    Containers(cfg.root).rename(c.id, new_name)
    events.container(cfg.root, c, "rename", oldName="/" + c.name, name=new_name)


#: the engine's own binds, never handed on by --volumes-from
_OWN_BINDS = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/sbin/docker-init",
              "/dev/shm")


def _inherited_anonymous(cfg: EngineConfig, specs: list[str], sources: set[str]) -> list[str]:
    """The anonymous volumes of the --volumes-from containers that this one mounts."""
    from tomato.engine.options import parse_volumes_from

    names: list[str] = []
    for spec in specs:
        other = get(cfg, parse_volumes_from(spec)[0])
        names += [name for name in other.options.get("anonymous_volumes", [])
                  if any(f"/{name}/" in f"{src}/" for src in sources) and name not in names]
    return names


def volumes_from(cfg: EngineConfig, specs: list[str]) -> list[dict[str, Any]]:
    """--volumes-from CONTAINER[:ro|:rw]: each container's volumes and bind mounts (as
    its spec mounts them), read-only if it has them so or ``:ro`` is asked (moby: a
    read-only source stays read-only)."""
    from tomato.engine.options import parse_volumes_from

    out = []
    for spec in specs:
        ref, mode = parse_volumes_from(spec)
        source = get(cfg, ref)
        for m in source.spec.get("mounts", []):
            if m.get("type") != "bind" or m["destination"] in _OWN_BINDS:
                continue
            ro = "ro" in m.get("options", []) or mode == "ro"
            out.append({"destination": m["destination"], "type": "bind",
                        "source": m["source"], "options": ["rbind", "ro" if ro else "rw"]})
    return out
