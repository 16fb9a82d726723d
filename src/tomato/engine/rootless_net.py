"""The rootless engine's container networks: slirp4netns, one a container.

An ordinary user's engine (engine/rootless.py) runs inside the user's own user
namespace: it cannot make root's bridge, veths into the host's namespace, nft rules
or binds below ip_unprivileged_port_start.  So a container on the default network
gets what podman gives a rootless container by default: a network namespace of its
own (owned by the user's namespace, pinned at ROOT/netns/<id> as root's are) served
by a slirp4netns process (network/usermode.py) for its outbound traffic, and its
`-p` ports forwarded by that process's API socket.

    mode                                         what the container gets
    bridge (the default), slirp4netns             tap0 10.0.2.100, via 10.0.2.2, DNS 10.0.2.3
    slirp4netns:allow_host_loopback=true          and 10.0.2.2 is the host's 127.0.0.1
    none, host, container:X                       as root's engine (no slirp4netns)
    a user network (`network create`)             root's bridge networks, in the user's
                                                  network namespace (below)

User networks: one network namespace per user (ROOT/usernet/netns, podman's
"rootless netns") holds what root's engine puts in the host's: the networks' bridges,
the host ends of the containers' veths, Tomato's nft table (masquerade, isolation,
DNAT of published ports), ip_forward; one slirp4netns serves it (its tap0 is that
namespace's way out).  engine/networks.py runs its device operations there, in a child
that joined it (``inside_user_netns``: a process in a user namespace can enter a
network namespace it owns but never return to the host's), so names resolve between
containers through the same hosts files as root's networks.  A published port is
forwarded twice: slirp4netns from the host's HOST_IP:PORT to 10.0.2.100:PORT, then the
namespace's DNAT rule (as root's) to the container.

    host :8080 -- slirp4netns -- tap0 10.0.2.100 [user netns: DNAT, bridge] -- veth -- eth0 :80

Lifecycle: ``attach`` at create (the namespace), ``ensure_running`` at every start
(slirp4netns and the forwards, again if the recorded process is gone: a reboot, the
keeper's namespace gone with its mounts, a kill), ``teardown`` at rm.  The process is
recorded in the container's directory (slirp.json: pid, start time, API socket).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tomato.errors import InvalidArgument, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

    from tomato.network.usermode import SlirpProcess

SLIRP = "slirp4netns"
RECORD = "slirp.json"
OPTIONS = {"allow_host_loopback": ("true", "false")}


def is_slirp(mode: str) -> bool:
    return mode == SLIRP or mode.startswith(SLIRP + ":")


def slirp_options(mode: str) -> dict[str, str]:
    """``slirp4netns:k=v,k=v`` (podman's spelling); unknown options are refused."""
    _, _, text = mode.partition(":")
    options: dict[str, str] = {}
    for item in filter(None, text.split(",")):
        key, eq, value = item.partition("=")
        if key not in OPTIONS:
            raise InvalidArgument(f"unknown option for slirp4netns: {key} (known: "
                                  f"{', '.join(OPTIONS)})")
        if not eq or value not in OPTIONS[key]:
            raise InvalidArgument(f"invalid value for slirp4netns option {key}: "
                                  f"{value!r} (one of {', '.join(OPTIONS[key])})")
        options[key] = value
    return options


def plan_mode(mode: str) -> str:
    """A rootless container's network mode: the default bridge is slirp4netns; anything
    else as root's (a user network's name among them)."""
    if mode in ("bridge", "default"):
        return SLIRP
    if is_slirp(mode):
        slirp_options(mode)
    return mode


def plan_ports(publish: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ports to forward, each host port decided (0: one the kernel calls free) and
    checked: below ip_unprivileged_port_start is refused, as the bind would be, and a
    port the host already uses is Docker's "port is already allocated"."""
    from tomato.network import ports, usermode

    usermode.refuse_privileged_ports([int(p["host_port"]) for p in publish])
    decided: list[dict[str, Any]] = []
    taken: set[tuple[str, int]] = set()
    for p in publish:
        port = int(p["host_port"])
        if port == 0:
            port = ports.free_port(p["proto"], p["host_ip"], {n for _, n in taken})
        elif (p["proto"], port) in taken:
            raise InvalidArgument(f"Bind for {p['host_ip'] or '0.0.0.0'}:{port} failed: "
                                  "port is already allocated")
        else:
            ports.check_free(p["proto"], p["host_ip"], port)
        taken.add((p["proto"], port))
        decided.append({**p, "host_port": port})
    return decided


def netns_path(root: Path, cid: str) -> str:
    return str(root / "netns" / cid)


def attach(root: Path, cid: str) -> str:
    """The container's network namespace, made and pinned; its path."""
    from tomato.network import usermode

    (root / "netns").mkdir(mode=0o700, exist_ok=True)
    path = netns_path(root, cid)
    usermode.create_netns(path)
    return path


def _run_dir() -> str:
    """Where the API sockets go: $XDG_RUNTIME_DIR/tomato (short: a socket's path must
    fit 108 bytes, the engine's root may not)."""
    from tomato.engine import rootless

    path = os.path.join(rootless.run_dir(), "slirp")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _recorded(cdir: Path) -> SlirpProcess | None:
    from tomato.network.usermode import SlirpProcess

    try:
        data = json.loads((cdir / RECORD).read_text())
        return SlirpProcess(int(data["pid"]), str(data["start_time"]), str(data["api_socket"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(slirp: SlirpProcess) -> bool:
    try:
        with open(f"/proc/{slirp.pid}/stat", "rb") as f:
            stat = f.read().decode()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0] not in ("Z", "X") and fields[19] == slirp.start_time


def ensure_running(root: Path, cdir: Path, cid: str, mode: str,
                   publish: list[dict[str, Any]]) -> None:
    """slirp4netns serving the container's namespace, with its ports forwarded: the
    recorded one if it still runs, else a new one (and the namespace again if the
    pin is gone: the user namespace's mounts go with its keeper)."""
    from tomato.network import netns, usermode

    recorded = _recorded(cdir)
    if recorded is not None and _alive(recorded):
        return
    if recorded is not None:
        usermode.stop(recorded)
    path = netns_path(root, cid)
    if not netns.is_mounted(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        attach(root, cid)
    allow = slirp_options(mode).get("allow_host_loopback") == "true"
    api = os.path.join(_run_dir(), cid[:12] + ".sock")
    try:
        os.unlink(api)  # left by a process killed before it was recorded
    except FileNotFoundError:
        pass
    slirp = usermode.start(path, api, str(cdir / "slirp.log"), allow_host_loopback=allow)
    try:
        # Recorded first: a command killed from here on leaves a process rm can stop.
        tmp = cdir / (RECORD + ".new")
        tmp.write_text(json.dumps({"pid": slirp.pid, "start_time": slirp.start_time,
                                   "api_socket": slirp.api_socket}))
        os.replace(tmp, cdir / RECORD)
        for p in publish:
            usermode.add_hostfwd(api, p["proto"], p["host_ip"], int(p["host_port"]),
                                 int(p["container_port"]))
    except BaseException:
        usermode.stop(slirp)
        raise


def teardown(root: Path, cdir: Path, cid: str) -> None:
    """slirp4netns stopped (its forwards go with it), the namespace unpinned."""
    from tomato._sys import libc
    from tomato.network import netns, usermode

    recorded = _recorded(cdir)
    if recorded is not None:
        usermode.stop(recorded)
    path = netns_path(root, cid)
    if netns.is_mounted(path):
        try:
            libc.umount2(path, libc.MNT_DETACH)
        except OSError as err:
            raise Unavailable(f"cannot unpin the network namespace {path}: "
                              f"{err.strerror}") from err
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- the user's network namespace (user networks) ------------------------------------------
USERNET = "usernet"


def user_netns_path(root: Path) -> str:
    return str(root / USERNET / "netns")


def ensure_user_netns(root: Path, ports: Callable[[], list[dict[str, Any]]]) -> str:
    """The user's network namespace, with its slirp4netns: made (again, after the
    keeper's mount namespace went with its pin, or a slirp4netns that died) and every
    recorded port forwarded again.  ``ports`` lists the records' published ports."""
    from tomato.network import netns, usermode

    base = root / USERNET
    path = user_netns_path(root)
    recorded = _recorded(base)
    if recorded is not None and _alive(recorded) and netns.is_mounted(path):
        return path
    base.mkdir(mode=0o700, exist_ok=True)
    lock = os.open(base / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)
        recorded = _recorded(base)  # another command may have made it meanwhile
        if recorded is not None and _alive(recorded) and netns.is_mounted(path):
            return path
        if recorded is not None:
            usermode.stop(recorded)
        if not netns.is_mounted(path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            usermode.create_netns(path)
        api = os.path.join(_run_dir(), "usernet.sock")
        try:
            os.unlink(api)
        except FileNotFoundError:
            pass
        slirp = usermode.start(path, api, str(base / "slirp.log"))
        try:
            for p in ports():
                forward(api, p)
            tmp = base / (RECORD + ".new")
            tmp.write_text(json.dumps({"pid": slirp.pid, "start_time": slirp.start_time,
                                       "api_socket": slirp.api_socket}))
            os.replace(tmp, base / RECORD)
        except BaseException:
            usermode.stop(slirp)
            raise
    finally:
        os.close(lock)
    return path


def forward(api: str, port: dict[str, Any]) -> None:
    """A user network's published port: the host's HOST_IP:PORT to 10.0.2.100:PORT,
    where the namespace's DNAT rule takes it on."""
    from tomato.network import usermode

    usermode.add_hostfwd(api, port["proto"], port["host_ip"], int(port["host_port"]),
                         int(port["host_port"]))


def forward_ports(root: Path, ports: list[dict[str, Any]]) -> None:
    recorded = _recorded(root / USERNET)
    if recorded is None:
        raise Unavailable("the user's network namespace has no slirp4netns")
    for p in ports:
        forward(recorded.api_socket, p)


def unforward_ports(root: Path, ports: list[dict[str, Any]],
                    kept: list[dict[str, Any]]) -> None:
    """Drop the forwards of ``ports`` (slirp4netns's list, matched by host port) but
    those ``kept`` still publish (compose's recreate makes the new container before it
    removes the old one, on the same port)."""
    from tomato.network import usermode

    recorded = _recorded(root / USERNET)
    if recorded is None or not _alive(recorded) or not ports:
        return
    wanted = {(p["proto"], int(p["host_port"])) for p in ports} - \
        {(p["proto"], int(p["host_port"])) for p in kept}
    for entry in usermode.list_hostfwd(recorded.api_socket):
        if (entry.get("proto"), entry.get("host_port")) in wanted:
            usermode.remove_hostfwd(recorded.api_socket, int(str(entry["id"])))


def inside_user_netns(root: Path, published: Callable[[], list[dict[str, Any]]],
                      fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` run in the user's network namespace: in a child that
    joined it (its result or exception pickled back), or here if already inside."""
    import pickle

    from tomato._sys import libc
    from tomato.engine.store import forget_connections

    path = ensure_user_netns(root, published)
    if os.stat("/proc/self/ns/net").st_ino == os.stat(path).st_ino:
        return fn(*args, **kwargs)
    forget_connections()  # sqlite's locks do not survive a fork
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(r)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            libc.setns(fd, libc.CLONE_NEWNET, path)
            os.close(fd)
            result: tuple[str, Any] = ("ok", fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - handed to the parent
            result, code = ("err", err), 1
        try:
            data = pickle.dumps(result)
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            data = pickle.dumps(("err", Unavailable(str(result[1]))))
        try:
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    try:
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    if not chunks:
        raise Unavailable("the user's network namespace: its helper died")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "err":
        raise value
    return value  # type: ignore[no-any-return]


def settings(root: Path, cid: str, mode: str,
             publish: list[dict[str, Any]]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Docker's NetworkSettings parts for a slirp4netns container: the sandbox, the
    endpoint (the tap's address), the published ports."""
    from tomato.network.usermode import GATEWAY, GUEST_ADDR

    ports: dict[str, Any] = {}
    for p in publish:
        ports.setdefault(f"{p['container_port']}/{p['proto']}", []).append(
            {"HostIp": p["host_ip"] or "0.0.0.0", "HostPort": str(p["host_port"])})
    nets = {SLIRP: {"NetworkID": "", "IPAddress": GUEST_ADDR, "Gateway": GATEWAY,
                    "MacAddress": "", "IPPrefixLen": 24}}
    return netns_path(root, cid), nets, ports


__all__ = ["attach", "ensure_running", "ensure_user_netns", "forward_ports",
           "inside_user_netns", "is_slirp", "plan_mode", "plan_ports", "settings",
           "slirp_options", "teardown", "unforward_ports", "user_netns_path"]
