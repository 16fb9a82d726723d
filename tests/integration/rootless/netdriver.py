"""Run by the rootless network tests as an unprivileged user, inside ``unshare -U -r -m``
(the user's own user and mount namespaces, as the engine's keeper gives it), with
/usr/bin/python3 and a copy of src/ on sys.path (argv[1]).

    netdriver.py SRC WORKDIR HOST_PORT LOOPBACK_PORT ALLOW_LOOPBACK

Makes a network namespace pinned on a file, starts slirp4netns for it through
tomato.network.usermode, and prints one JSON object of what it saw:
- "gateway": what a connect from inside to 10.0.2.2:LOOPBACK_PORT (a server the test
  runs on the host's 127.0.0.1) read, or the error;
- "forwarded": what a connect to the host's 127.0.0.1:HOST_PORT read once the port is
  forwarded to a server listening on port 80 inside the namespace;
- "taken": the error of forwarding the same host port again;
- "resolv": the resolv.conf the namespace would get.
"""

import json
import os
import socket
import sys

sys.path.insert(0, sys.argv[1])

from tomato._sys import libc  # noqa: E402
from tomato.errors import TomatoError  # noqa: E402
from tomato.network import usermode  # noqa: E402

workdir, host_port, loopback_port = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
allow = sys.argv[5] == "1"
netns = os.path.join(workdir, "netns")
usermode.create_netns(netns)
ns_fd = os.open(netns, os.O_RDONLY)
out = {}
slirp = usermode.start(netns, os.path.join(workdir, "slirp.sock"),
                       os.path.join(workdir, "slirp.log"), allow_host_loopback=allow)
out["pid"] = slirp.pid


def inside(fn):
    """fn() run in a child that joined the namespace; its bytes back through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            libc.setns(ns_fd, libc.CLONE_NEWNET)
            os.write(w, fn().encode())
        finally:
            os._exit(0)
    os.close(w)
    return r, pid


def gateway():
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((usermode.GATEWAY, loopback_port))
        return s.recv(100).decode()
    except OSError as err:
        return f"error: {err.strerror or err}"


def read_all(r, pid):
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data.decode()


out["gateway"] = read_all(*inside(gateway))


def serve80():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 80))
    s.listen(1)
    os.write(ready_w, b"l")
    s.settimeout(10)
    conn, peer = s.accept()
    conn.sendall(b"hello from port 80\n")
    conn.close()
    return "served"


ready_r, ready_w = os.pipe()
r, pid = inside(serve80)
os.read(ready_r, 1)
try:
    usermode.add_hostfwd(slirp.api_socket, "tcp", "127.0.0.1", host_port, 80)
    c = socket.create_connection(("127.0.0.1", host_port), timeout=5)
    out["forwarded"] = c.recv(100).decode()
    c.close()
except (TomatoError, OSError) as err:
    out["forwarded"] = f"error: {err}"
read_all(r, pid)
try:
    usermode.add_hostfwd(slirp.api_socket, "tcp", "127.0.0.1", host_port, 80)
    out["taken"] = "forwarded twice"
except TomatoError as err:
    out["taken"] = str(err)
out["resolv"] = usermode.resolv_conf()
usermode.stop(slirp)
out["stopped"] = not os.path.exists(f"/proc/{slirp.pid}") and \
    not os.path.exists(slirp.api_socket)
print(json.dumps(out))
