"""User-mode networking for an ordinary user's containers: slirp4netns.

An unprivileged user cannot make a veth into the host's network namespace, add a
route or an nft rule there, or bind a port below net.ipv4.ip_unprivileged_port_start.
What it can do is own a network namespace (made inside its user namespace) and run
slirp4netns, an unprivileged process that

- puts a tap device (tap0, 10.0.2.100/24, default route via 10.0.2.2, DNS at
  10.0.2.3) into that namespace (``--configure``), and
- turns the namespace's packets into ordinary sockets of the host's namespace (a TCP/IP
  stack in user space, libslirp): outbound connections are the user's own connects;
- forwards host ports to the namespace on request (``add_hostfwd`` on its API
  socket): the listening socket is the user's own bind on the host.

    host netns (the user's sockets)          the container's netns (owned by the user)
      0.0.0.0:8080 <- slirp4netns ---- tap fd ----> tap0 10.0.2.100 ---> :80
      connect(example:443)  <------------------------- default via 10.0.2.2

10.0.2.2 is the host's loopback only without ``--disable-host-loopback``, which we
pass unless a container asks (``--network slirp4netns:allow_host_loopback=true``, as
podman's): by default a container cannot reach the host's 127.0.0.1 services.
slirp4netns is chosen over pasta (both are installed here) because its API socket
adds forwards to a running process one at a time, and Debian 12's passt has no
stable release number to check.

A slirp4netns process lives as long as the namespace it serves (the engine starts it
with the namespace and stops it with it); it is recorded by pid and start time.
Nothing here imports the engine.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import subprocess

from tomato.errors import Conflict, PermissionDenied, Unavailable
from tomato.records import record

SLIRP4NETNS = "slirp4netns"
TAP = "tap0"
MTU = 65520                 # slirp4netns's maximum: fewer, larger packets through user space
GUEST_ADDR = "10.0.2.100"   # the namespace's address on tap0
GATEWAY = "10.0.2.2"        # slirp's router (and the host's loopback when allowed)
DNS = "10.0.2.3"            # slirp's resolver: the host's resolv.conf's servers
PORT_START = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
READY_TIMEOUT = 10.0        # seconds: slirp4netns configures the tap in a few ms


@record
class SlirpProcess:
    pid: int
    start_time: str     # /proc/PID/stat field 22: a pid reused later is not ours
    api_socket: str


def unprivileged_port_start(path: str = PORT_START) -> int:
    """The lowest port an unprivileged process may bind (read, never written)."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024  # the kernel's default


def refuse_privileged_ports(host_ports: list[int], path: str = PORT_START) -> None:
    """Refuse to publish a host port below the unprivileged start, as the kernel would
    refuse the bind; said before anything is made."""
    start = unprivileged_port_start(path)
    for port in host_ports:
        if 0 < port < start:
            raise PermissionDenied(f"cannot publish port {port}: ports below {start} need "
                                   f"root (net.ipv4.ip_unprivileged_port_start={start})")


def create_netns(path: str) -> None:
    """A network namespace pinned at ``path``, owned by the caller's user namespace.

    Made by a child (unshare, bind mount, exit): root's engine moves a thread into the
    new namespace and back (network/netns.py), but a process inside a user namespace
    cannot setns back into the host's network namespace, which it does not own.  The
    child's work is three syscalls; a failure is its errno, nothing left behind."""
    from tomato._sys import libc

    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(err_r)
            libc.unshare(libc.CLONE_NEWNET)
            libc.mount("/proc/self/ns/net", path, None, libc.MS_BIND)
        except OSError as err:
            os.write(err_w, str(err.errno or 1).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(err_w)
    try:
        failed = os.read(err_r, 16)
    finally:
        os.close(err_r)
        os.waitpid(pid, 0)
    if failed:
        os.unlink(path)
        num = int(failed)
        raise OSError(num, os.strerror(num), path)


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def slirp_argv(netns_path: str, api_socket: str, ready_fd: int, *,
               allow_host_loopback: bool = False) -> list[str]:
    """slirp4netns's command line for a namespace pinned at ``netns_path``."""
    argv = [SLIRP4NETNS, "--configure", f"--mtu={MTU}", f"--ready-fd={ready_fd}",
            f"--api-socket={api_socket}", "--enable-sandbox", "--enable-seccomp"]
    if not allow_host_loopback:
        argv.append("--disable-host-loopback")
    return [*argv, "--netns-type=path", netns_path, TAP]


def start(netns_path: str, api_socket: str, log_path: str, *,
          allow_host_loopback: bool = False) -> SlirpProcess:
    """slirp4netns serving the namespace at ``netns_path`` (of the caller's user
    namespace), detached in a session of its own; returns once tap0 is configured.
    The caller records the result and gives it to ``stop``."""
    ready_r, ready_w = os.pipe()
    try:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except BaseException:
        os.close(ready_r)
        os.close(ready_w)
        raise
    try:
        argv = slirp_argv(netns_path, api_socket, ready_w,
                          allow_host_loopback=allow_host_loopback)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    pass_fds=(ready_w,), start_new_session=True)
        except FileNotFoundError as err:
            # (not "not found": the CLI would read that as the container's command's, 127)
            raise Unavailable("slirp4netns is missing from PATH: a rootless container's "
                              "network needs it (apt-get install slirp4netns), or use "
                              "--network none") from err
        os.close(ready_w)
        ready_w = -1
        started = _wait_ready(ready_r, proc)
        if not started:
            _kill(proc.pid)
            raise Unavailable(f"slirp4netns did not configure the network namespace: "
                              f"{_last_line(log_path) or 'no reason given'}")
    finally:
        os.close(ready_r)
        os.close(log)
        if ready_w >= 0:
            os.close(ready_w)
    # Popen would reap it when collected; the engine's processes that started it exit
    # long before it does, leaving it to the nearest subreaper.
    proc.returncode = 0
    return SlirpProcess(proc.pid, _start_time(proc.pid) or "", api_socket)


def _wait_ready(ready_r: int, proc: subprocess.Popen[bytes]) -> bool:
    """True once slirp4netns writes its "1"; False if it exits first (EOF) or is late."""
    ready, _, _ = select.select([ready_r], [], [], READY_TIMEOUT)
    if not ready:
        return False
    try:
        return os.read(ready_r, 1) == b"1"
    except OSError:
        return False


def _last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f.read()[-4096:].splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # not our child (a later command stops it): its subreaper reaps it


def stop(slirp: SlirpProcess) -> None:
    """Stop a recorded slirp4netns if it is still that process (pid and start time)."""
    if slirp.pid > 1 and _start_time(slirp.pid) == slirp.start_time:
        _kill(slirp.pid)
    try:
        os.unlink(slirp.api_socket)
    except FileNotFoundError:
        pass


def _request(api_socket: str, request: dict[str, object]) -> dict[str, object]:
    """One request on slirp4netns's API socket (it answers one a connection)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.settimeout(READY_TIMEOUT)
        s.connect(api_socket)
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while len(answer) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    except OSError as err:
        raise Unavailable(f"slirp4netns's API socket {api_socket}: "
                          f"{err.strerror or err}") from err
    finally:
        s.close()
    try:
        reply = json.loads(answer)
    except ValueError as err:
        raise Unavailable(f"slirp4netns answered {answer[:80]!r}") from err
    if not isinstance(reply, dict):
        raise Unavailable(f"slirp4netns answered {answer[:80]!r}")
    return reply


def add_hostfwd(api_socket: str, proto: str, host_ip: str, host_port: int,
                guest_port: int) -> None:
    """Forward the host's ``host_ip:host_port`` to the namespace's ``guest_port``.
    A port the host already uses is Docker's "port is already allocated"."""
    reply = _request(api_socket, {"execute": "add_hostfwd", "arguments": {
        "proto": proto, "host_addr": host_ip or "0.0.0.0", "host_port": host_port,
        "guest_addr": GUEST_ADDR, "guest_port": guest_port}})
    if "error" in reply:
        _refused_why(proto, host_ip, host_port)
        raise Unavailable(f"cannot publish {host_ip or '0.0.0.0'}:{host_port}: slirp4netns: "
                          f"{reply['error']}")


def list_hostfwd(api_socket: str) -> list[dict[str, object]]:
    """The forwards slirp4netns holds: id, proto, host_addr, host_port, guest_..."""
    reply = _request(api_socket, {"execute": "list_hostfwd"})
    found = reply.get("entries")  # at the top, not under "return" (slirp4netns 1.2)
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def remove_hostfwd(api_socket: str, forward_id: int) -> None:
    reply = _request(api_socket, {"execute": "remove_hostfwd", "arguments": {"id": forward_id}})
    if "error" in reply:
        raise Unavailable(f"slirp4netns could not remove forward {forward_id}: "
                          f"{reply['error']}")


def _refused_why(proto: str, host_ip: str, port: int) -> None:
    """slirp4netns says only "slirp_add_hostfwd failed": bind the port ourselves to
    learn why, and raise Docker's message when it is taken."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp"
                      else socket.SOCK_DGRAM)
    try:
        s.bind((host_ip or "0.0.0.0", port))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise Conflict(f"Bind for {host_ip or '0.0.0.0'}:{port} failed: port is already "
                           "allocated") from err
        raise PermissionDenied(f"cannot publish {host_ip or '0.0.0.0'}:{port}: "
                               f"{err.strerror}") from err
    finally:
        s.close()


def resolv_conf() -> str:
    """A container behind slirp4netns asks slirp's resolver (the host's servers)."""
    return f"nameserver {DNS}\n"


__all__ = ["DNS", "GATEWAY", "GUEST_ADDR", "SlirpProcess", "add_hostfwd", "create_netns",
           "list_hostfwd", "refuse_privileged_ports", "remove_hostfwd", "resolv_conf",
           "slirp_argv", "start", "stop",
           "unprivileged_port_start"]
