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
from tomato.engine import service
from tomato.errors import Conflict, InvalidArgument, NotFound


def _get(api: Any, exec_id: str) -> dict[str, Any]:
    info: dict[str, Any] | None = api.execs.get(exec_id)
    if info is None:
        raise NotFound(f"No such exec instance: {exec_id}")
    return info


def create(api: Any, req: Request, id: str) -> None:  # noqa: A002 — Docker's name
    body = req.json(None)
    if not isinstance(body, dict):
        raise InvalidArgument("exec config must be a JSON object")
    c = service.get(api.cfg, id)
    if c.state.status == "paused":
        raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
    if c.state.status != "running":
        raise Conflict(f"Container {c.id} is not running")
    cmd = body.get("Cmd") or []
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd:
        raise InvalidArgument("No exec command specified")
    exec_id = os.urandom(32).hex()
    api.execs[exec_id] = {
        "ID": exec_id, "Running": False, "ExitCode": None, "Pid": 0, "ContainerID": c.id,
        "OpenStdin": bool(body.get("AttachStdin")), "OpenStdout": bool(body.get("AttachStdout")),
        "OpenStderr": bool(body.get("AttachStderr")), "CanRemove": False, "DetachKeys": "",
        "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": cmd[0],
                          "arguments": cmd[1:], "privileged": bool(body.get("Privileged")),
                          "user": body.get("User") or ""},
        "_args": {"id": c.id, "cmd": [str(a) for a in cmd], "tty": bool(body.get("Tty")),
                  "env": body.get("Env") or [], "user": body.get("User") or "",
                  "workdir": body.get("WorkingDir") or "", "stdin": bool(body.get("AttachStdin")),
                  "stdout": bool(body.get("AttachStdout")),
                  "stderr": bool(body.get("AttachStderr")),
                  "console_size": body.get("ConsoleSize")},
    }
    api.events.record("container", f"exec_create: {' '.join(cmd)}", c.id,
                      {"name": c.name, "image": c.image, "execID": exec_id})
    req.json_response({"Id": exec_id}, 201)


def start(api: Any, req: Request, id: str) -> None:  # noqa: A002
    info = _get(api, id)
    body = req.json({}) or {}
    with api.lock:
        if info["Running"] or info["ExitCode"] is not None or info.get("_started"):
            raise Conflict(f"Error: Exec command {id} is already running")
        info["_started"] = True
    args = dict(info["_args"])
    if body.get("ConsoleSize"):
        args["console_size"] = body["ConsoleSize"]
    cid = args["id"]
    api.events.record("container", f"exec_start: {' '.join(args['cmd'])}", cid,
                      {"execID": id})
    if body.get("Detach"):
        api.zygote.call("exec", args)
        info["Running"] = True
        req.no_content()
        return
    sock = req.hijack(stream_type(bool(args["tty"])))
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
                err = rebuild_error(msg["error"])
                try:  # the stream is already hijacked: the client reads the message there
                    sock.sendall(f"{err}\r\n".encode())
                except OSError:
                    pass
                code = 126
                break
    finally:
        info["Running"] = False
        info["ExitCode"] = 126 if code is None else code
        info.pop("_conn", None)
        conn.close()
        api.events.record("container", "exec_die", cid,
                          {"execID": id, "exitCode": str(info["ExitCode"])})


def inspect(api: Any, req: Request, id: str) -> None:  # noqa: A002
    info = _get(api, id)
    req.json_response({k: v for k, v in info.items() if not k.startswith("_")})


def resize(api: Any, req: Request, id: str) -> None:  # noqa: A002
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
