"""`tomato events` / `tomato system events`: the engine's event log (engine/events.py),
replayed from --since and followed until --until (or until interrupted), with docker's
filters and docker's line (``TIME TYPE ACTION ID (k=v, ...)``) or a --format template
over docker's events.Message (``{{.Type}}``, ``{{.Actor.Attributes.name}}``...)."""

from __future__ import annotations

import argparse
import sys
import time

from tomato.cli.govalues import GoStruct, StrictFields
from tomato.errors import TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig


class Message(StrictFields):
    """docker's events.Message: Go's field names for templates, its JSON for {{json .}}."""

    type_name = "events.Message"

    def __init__(self, event: dict[str, Any]) -> None:
        actor = event.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        super().__init__({
            "Status": event.get("status", ""), "ID": event.get("id", ""),
            "From": event.get("from", ""), "Type": event.get("Type", ""),
            "Action": event.get("Action", ""),
            "Actor": GoStruct(ID=actor.get("ID", ""), Attributes=attrs),
            "Scope": event.get("scope", "local"), "Time": event.get("time", 0),
            "TimeNano": event.get("timeNano", 0)})
        # its JSON in the struct's order, the pre-1.22 fields only when present
        self.json_doc: dict[str, Any] = {
            **{k: event[k] for k in ("status", "id", "from") if event.get(k)},  # omitempty
            "Type": event.get("Type", ""), "Action": event.get("Action", ""),
            "Actor": {"ID": actor.get("ID", ""),
                      "Attributes": {k: attrs[k] for k in sorted(attrs)}},
            "scope": event.get("scope", "local"), "time": event.get("time", 0),
            "timeNano": event.get("timeNano", 0)}


def line(event: dict[str, Any]) -> str:
    """docker's default: RFC 3339 time with nanoseconds, type, action, id, attributes."""
    nano = int(event.get("timeNano") or event.get("time", 0) * 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(nano // 10**9))
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    text = f"{stamp}.{nano % 10**9:09d}Z {event.get('Type', '')} {event.get('Action', '')} " \
           f"{actor.get('ID', '')}"
    if attrs:
        text += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return text


def cmd_events(args: argparse.Namespace, cfg: EngineConfig) -> int:
    from tomato.cli.gotemplate import Template, TemplateError
    from tomato.cli.render import _docker_escapes
    from tomato.engine import events, listfilters, timestamps

    try:
        filters = listfilters.parse(args.filter)
        events.check_filters(filters)
        now = time.time()
        since = timestamps.parse(args.since, now) if args.since else None
        until = timestamps.parse(args.until, now) if args.until else None
    except TomatoError as err:  # docker: 1, as for what its daemon refuses
        print(f"tomato: {err}", file=sys.stderr)
        return 1
    template = None
    if args.format:
        fmt = "{{json .}}" if args.format.strip() == "json" else args.format
        try:
            template = Template(_docker_escapes(fmt))
        except TemplateError as err:
            print(f"tomato: failed to parse template: {err}", file=sys.stderr)
            return 1
    if since is None and until is not None:
        since = now  # docker: --until alone waits for what comes until then
    try:
        for event in events.follow(cfg.root, since, until, lambda: False):
            if event is None or not events.matches(event, filters):
                continue
            if template is None:
                text = line(event)
            else:
                text = template.execute(Message(event))
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
    except TemplateError as err:
        print(f"tomato: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `tomato events | head -1`: the reader is gone, so are we
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


def add_flags(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=cmd_events)
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    p.add_argument("--since")
    p.add_argument("--until")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    add_flags(sub.add_parser("events", help="get real time events from the engine",
                             parents=[common]))
