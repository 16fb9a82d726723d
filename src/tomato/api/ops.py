"""The operations the zygote runs in a fresh single-threaded child (see zygote.py):
everything that forks or enters a namespace.  Each calls one engine use case."""

from __future__ import annotations

import json
import os
import select
import socket
from typing import Any

from tomato.api.zygote import Job, Op
from tomato.engine import frames
from tomato.errors import Conflict, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.engine.config import EngineConfig
    from tomato.engine.containers import Container
    from tomato.engine.networks import Networks


def make_ops(cfg: EngineConfig) -> dict[str, Op]:
    # imported now, in the server, so each forked child has them for free
    from tomato.engine.preload import preload

    preload()
    from tomato.engine import networks, service
    from tomato.engine.options import RunOptions

    def create(args: dict[str, Any], job: Job) -> Any:
        c = service.create(cfg, RunOptions.from_dict(args["options"]))
        return {"Id": c.id, "Name": c.name}

    def start(args: dict[str, Any], job: Job) -> Any:
        return service.start(cfg, args["id"], attach_wait=bool(args.get("attach_wait"))).id

    def restart(args: dict[str, Any], job: Job) -> Any:
        return service.restart(cfg, args["id"], args.get("timeout")).id

    def remove(args: dict[str, Any], job: Job) -> Any:
        return service.remove(cfg, args["id"], force=bool(args.get("force")),
                              volumes=bool(args.get("volumes")))

    def prune(args: dict[str, Any], job: Job) -> Any:
        from tomato.engine.removal import prune_reclaiming

        ids, reclaimed = prune_reclaiming(cfg, args.get("filters") or {})
        return {"ids": ids, "reclaimed": reclaimed}

    def net_create(args: dict[str, Any], job: Job) -> Any:
        store = _networks(cfg)
        n = store.create(args["name"], args.get("subnet", ""), args.get("gateway", ""),
                         bool(args.get("internal")), args.get("labels") or {},
                         args.get("driver") or "bridge", bool(args.get("ipv6")),
                         args.get("subnet6", ""), args.get("gateway6", ""))
        return n.id

    def net_remove(args: dict[str, Any], job: Job) -> Any:
        return _networks(cfg).remove(args["id"]).id

    def net_prune(args: dict[str, Any], job: Job) -> Any:
        return _networks(cfg).prune(args.get("filters") or {})

    def net_connect(args: dict[str, Any], job: Job) -> Any:
        c = service.get(cfg, args["container"])
        _networks(cfg).connect(c.id, args["network"], ip=args.get("ip", ""),
                               aliases=args.get("aliases") or [], ip6=args.get("ip6", ""))
        return c.id

    def net_disconnect(args: dict[str, Any], job: Job) -> Any:
        c = service.get(cfg, args["container"])
        _networks(cfg).disconnect(c.id, args["network"])
        return c.id

    def exec_op(args: dict[str, Any], job: Job) -> Any:
        return run_exec(cfg, args, job)

    _ = networks
    from tomato.api.build import ops as build_ops

    return {"create": create, "start": start, "restart": restart, "remove": remove,
            "prune": prune, "net_create": net_create, "net_remove": net_remove,
            "net_prune": net_prune, "net_connect": net_connect,
            "net_disconnect": net_disconnect, "exec": exec_op, **build_ops(cfg)}


def _networks(cfg: EngineConfig) -> Networks:
    from tomato.engine.networks import Networks, sweep

    sweep(cfg.root)
    return Networks(cfg.root)


def _process(cfg: EngineConfig, c: Container, args: dict[str, Any]) -> dict[str, Any]:
    """The exec'd process: the container's own, with the exec's command, env, user,
    cwd and terminal (what service.exec_in builds)."""
    proc: dict[str, Any] = json.loads(json.dumps(c.spec["process"]))
    proc["args"] = list(args["cmd"])
    proc["terminal"] = bool(args.get("tty"))
    env = {e.partition("=")[0]: e for e in proc.get("env", [])}
    for e in args.get("env") or []:
        env[e.partition("=")[0]] = e
    proc["env"] = list(env.values())
    if args.get("workdir"):
        proc["cwd"] = args["workdir"]
    if args.get("user"):
        from tomato.engine.containers import Containers
        from tomato.engine.specgen import lookup_user

        uid, gid, extra = lookup_user(Containers(cfg.root).bundle(c.id) / "rootfs",
                                      args["user"])
        proc["user"] = {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})}
    proc.pop("consoleSize", None)
    return proc


def run_exec(cfg: EngineConfig, args: dict[str, Any], job: Job) -> Any:
    """Run an exec'd process; stream it over the passed client socket (hijacked)."""
    from tomato.engine import service
    from tomato.runtime.exec import ExecOptions, exec_process
    from tomato.runtime.log import RuntimeLog
    from tomato.runtime.statedir import StateDir
    from tomato.runtime.waiting import exit_code

    c = service.get(cfg, args["id"])
    if c.state.status != "running":
        raise Conflict(f"Container {c.id} is not running")
    if not args.get("cmd"):
        raise InvalidArgument("No exec command specified")
    tty = bool(args.get("tty"))
    detach = job.fd is None
    client = socket.socket(fileno=job.fd) if job.fd is not None else None
    proc = _process(cfg, c, args)
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    outputs: dict[int, int] = {}
    stdin_w: int | None = None
    try:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        if not tty and not detach:
            if args.get("stdin"):
                r, w = os.pipe()
                os.dup2(r, 0)
                os.close(r)
                stdin_w = w
                os.set_inheritable(w, False)
            for fd, stream in ((1, frames.STDOUT), (2, frames.STDERR)):
                r, w = os.pipe2(os.O_CLOEXEC)
                os.dup2(w, fd)
                os.close(w)
                outputs[r] = stream
        result = exec_process(StateDir(str(service.runtime_root(cfg))), c.id,
                              ExecOptions(process=proc, detach=detach), RuntimeLog(),
                              keep_master=tty and not detach)
    finally:
        for fd, copy in zip((0, 1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
    job.send(pid=result.pid)
    if detach:
        return {"detached": True}
    master = result.console_master
    if master is not None:
        outputs[master] = frames.STDOUT
        size = args.get("console_size")
        if size:
            from tomato.runtime.console import set_size

            set_size(master, int(size[0]), int(size[1]))
    assert client is not None
    want = {frames.STDOUT: bool(args.get("stdout", True)),
            frames.STDERR: bool(args.get("stderr", True))}
    reader = frames.FrameReader()
    control = b""
    status = None
    client_open = True
    while status is None:
        watch: list[Any] = list(outputs) + [job.conn]
        if client_open:
            watch.append(client)
        try:
            ready, _, _ = select.select(watch, [], [], 0.2)
        except InterruptedError:
            ready = []
        for fd in ready:
            if fd is client:
                try:
                    data = client.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    client_open = False
                    if stdin_w is not None:
                        os.close(stdin_w)
                        stdin_w = None
                    continue
                target = master if master is not None else stdin_w
                if target is not None:
                    try:
                        os.write(target, data)
                    except OSError:
                        pass
            elif fd is job.conn:
                data = job.conn.recv(4096)
                if not data:
                    continue
                control += data
                *lines, control = control.split(b"\n")
                for line in lines:
                    msg = json.loads(line)
                    if "resize" in msg and master is not None:
                        from tomato.runtime.console import set_size

                        set_size(master, int(msg["resize"][0]), int(msg["resize"][1]))
            else:
                if not _pump(fd, outputs, client, tty, want):
                    del outputs[fd]
        done, st = os.waitpid(result.pid, os.WNOHANG)
        if done == result.pid:
            status = st
    for fd in list(outputs):
        while select.select([fd], [], [], 0)[0] and _pump(fd, outputs, client, tty, want):
            pass
        os.close(fd)
    _ = reader
    code = exit_code(status)
    # The server records the exit code before the client sees EOF (docker's CLI asks
    # for it right after): tell it, wait for its ack, then hang up.
    job.send(exit=code)
    job.conn.settimeout(5.0)
    try:
        while b"ack" not in control:
            data = job.conn.recv(4096)
            if not data:
                break
            control += data
    except OSError:
        pass
    try:
        client.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    client.close()
    return {"exit": code}


def _pump(fd: int, outputs: dict[int, int], client: socket.socket, tty: bool,
          want: dict[int, bool]) -> bool:
    try:
        data = os.read(fd, 65536)
    except OSError:
        data = b""
    if not data:
        return False
    stream = outputs[fd]
    if want.get(stream):
        try:
            client.sendall(data if tty else frames.frame(stream, data))
        except OSError:
            pass
    return True
