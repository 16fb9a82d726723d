"""Exec endpoints: create, start (hijacked, or detached), inspect, resize.

An exec instance lives in the server's memory (as in Docker, it does not
outlive the daemon).  Its process is started by a zygote child (exec joins the
container's pid namespace: never from a threaded process) that gets the
hijacked client socket by SCM_RIGHTS and copies the streams itself.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tomato.api.http import Request
from tomato.api.streams import stream_type
from tomato.api.zygote import rebuild_error
from tomato.engine import frames, service
from tomato.errors import Conflict, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.api.server import Api


def _get(api: Api, exec_id: str) -> dict[str, Any]:
    info: dict[str, Any] | None = api.execs.get(exec_id)
    if info is None:
        raise NotFound(f"No such exec instance: {exec_id}")
    return info


def create(api: Api, req: Request, id: str) -> None:  # noqa: A002 — Docker's name
    body = req.fields()
    cmd = body.texts("Cmd", lone=True)
    env, user, workdir = body.texts("Env"), body.text("User"), body.text("WorkingDir")
    tty, privileged = body.boolean("Tty"), body.boolean("Privileged")
    stdin, stdout, stderr = (body.boolean("AttachStdin"), body.boolean("AttachStdout"),
                             body.boolean("AttachStderr"))
    console_size = body.integers("ConsoleSize") or None
    c = service.get(api.cfg, id)
    if c.state.status == "paused":
        raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
    if c.state.status != "running":
        raise Conflict(f"Container {c.id} is not running")
    if not cmd:
        raise InvalidArgument("No exec command specified")
    exec_id = os.urandom(32).hex()
    api.execs[exec_id] = {
        "ID": exec_id, "Running": False, "ExitCode": None, "Pid": 0, "ContainerID": c.id,
        "OpenStdin": stdin, "OpenStdout": stdout, "OpenStderr": stderr, "CanRemove": False,
        "DetachKeys": "",
        "ProcessConfig": {"tty": tty, "entrypoint": cmd[0], "arguments": cmd[1:],
                          "privileged": privileged, "user": user},
        "_args": {"id": c.id, "cmd": cmd, "tty": tty, "env": env, "user": user,
                  "workdir": workdir, "stdin": stdin, "stdout": stdout, "stderr": stderr,
                  "console_size": console_size},
    }
    api.events.record("container", f"exec_create: {' '.join(cmd)}", c.id,
                      {"name": c.name, "image": c.image, "execID": exec_id})
    req.json_response({"Id": exec_id}, 201)


def failure_code(message: str) -> int:
    """The exit code of an exec that could not start, as dockerd gives it
    (translateContainerdStartErr): 127 when the command is not there, else 126."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    return 126


def start(api: Api, req: Request, id: str) -> None:  # noqa: A002
    info = _get(api, id)
    body = req.fields()
    detach, console_size = body.boolean("Detach"), body.integers("ConsoleSize")
    with api.lock:
        if info["Running"] or info["ExitCode"] is not None or info.get("_started"):
            raise Conflict(f"Error: Exec command {id} is already running")
        info["_started"] = True
    args = dict(info["_args"])
    if console_size:
        args["console_size"] = console_size
    cid = args["id"]
    tty = bool(args["tty"])
    api.events.record("container", f"exec_start: {' '.join(args['cmd'])}", cid,
                      {"execID": id})
    if detach:
        api.zygote.call("exec", args)
        info["Running"] = True
        req.no_content()
        return
    sock = req.hijack(stream_type(tty))
    conn = api.zygote.open("exec", args, fd=sock.fileno())
    info["_conn"] = conn
    code: int | None = None
    try:
        reader = conn.makefile("rb")
        for line in reader:
            msg = json.loads(line)
            if "pid" in msg:
                info["Pid"], info["Running"] = msg["pid"], True
            elif "exit" in msg:
                info["ExitCode"], info["Running"] = int(msg["exit"]), False
                code = info["ExitCode"]
                conn.sendall(b'{"ack": true}\n')
            elif "ok" in msg:
                break
            elif "error" in msg:
                # The stream is hijacked already: as dockerd, the message goes on it (on
                # stdout, framed unless a tty), and the exit code says what failed.
                err = rebuild_error(msg["error"])
                text = f"{err}\r\n".encode()
                try:
                    sock.sendall(text if tty else frames.frame(frames.STDOUT, text))
                except OSError:
                    pass
                code = failure_code(str(err))
                break
    finally:
        info["Running"] = False
        info["ExitCode"] = 126 if code is None else code
        info.pop("_conn", None)
        conn.close()
        api.events.record("container", "exec_die", cid,
                          {"execID": id, "exitCode": str(info["ExitCode"])})


def inspect(api: Api, req: Request, id: str) -> None:  # noqa: A002
    info = _get(api, id)
    req.json_response({k: v for k, v in info.items() if not k.startswith("_")})


def resize(api: Api, req: Request, id: str) -> None:  # noqa: A002
    info = _get(api, id)
    h, w = req.int_arg("h", 0) or 0, req.int_arg("w", 0) or 0
    conn = info.get("_conn")
    if conn is not None and h > 0 and w > 0:
        try:
            conn.sendall((json.dumps({"resize": [h, w]}) + "\n").encode())
        except OSError:
            pass
    req.send(200, b"", "text/plain")


ROUTES = [
    ("POST", "/containers/{id}/exec", create),
    ("POST", "/exec/{id}/start", start),
    ("GET", "/exec/{id}/json", inspect),
    ("POST", "/exec/{id}/resize", resize),
]
