"""What `list` and `ps` print, as runc 1.1 prints them (the front end's verbs.c
renders `list` the same way, byte for byte)."""

from __future__ import annotations

import os

from tomato import fastjson as json
from tomato.cli.flags import BOOL, VALUE, Flag, parse
from tomato.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tomato.runtime.statedir import StateDir


def list_containers(states: StateDir, argv: list[str]) -> int:
    """runc's list: a tabwriter table (columns at least 12 wide, 3 spaces apart), or
    a compact JSON array of runc's fields (``null`` when there is none), or ids."""
    p = parse(argv, (Flag("format", VALUE, aliases=("f",), default="table"),
                     Flag("quiet", BOOL, aliases=("q",))))
    from tomato.runtime.lifecycle import list_all

    fmt = p.str("format", "table")
    if fmt not in ("table", "json") and not p.bool("quiet"):
        raise InvalidArgument(f"invalid --format {fmt!r}: use table or json")
    items = list_all(states)
    if p.bool("quiet"):
        for s in items:
            print(s["id"])
        return 0
    import pwd

    def owner(cid: str) -> str:
        try:
            uid = os.stat(states.path(cid)).st_uid
        except OSError:
            return ""
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return f"#{uid}"

    if fmt == "json":
        import json as stdjson

        keys = ("ociVersion", "id", "pid", "status", "bundle", "rootfs", "created")
        out = []
        for s in items:
            item = {k: s[k] for k in keys}
            if s.get("annotations"):
                item["annotations"] = s["annotations"]
            item["owner"] = owner(s["id"])
            out.append(item)
        print(stdjson.dumps(out or None, separators=(",", ":"), ensure_ascii=False))
        return 0
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    for s in items:
        rows.append([s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"],
                     owner(s["id"])])
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + r[-1])
    return 0


def ps(states: StateDir, argv: list[str]) -> int:
    p = parse(argv, (Flag("format", VALUE, aliases=("f",), default="table"),))
    if not p.args:
        raise InvalidArgument('"ps" requires a container id')
    cid = p.args[0]
    from tomato.runtime.lifecycle import pids

    found = pids(states, cid)
    if p.str("format") == "json":
        print(json.dumps(found))
        return 0
    import subprocess

    ps_args = p.args[1:] or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    try:
        col = header.index("PID")
    except ValueError:
        raise InvalidArgument("ps output has no PID column") from None
    print(lines[0])
    wanted = set(found)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0
