"""What the metadata instructions do to an image's config, and the history line
each step leaves -- as Docker's classic builder writes them.

The config is Docker's container config (``Env`` as ``KEY=value`` strings,
``Cmd``, ``Entrypoint``, ``WorkingDir``, ``User``, ``ExposedPorts``, ``Volumes``,
``Labels``, ``StopSignal``, ``Healthcheck``, ``OnBuild``, ``Shell``).  A history
line is ``/bin/sh -c #(nop)  ENV A=1`` for a step that changes only the config
(Docker's two spaces after ``#(nop)``), the command itself for a RUN
(``|1 FOO=bar /bin/sh -c make`` when build args are in effect).
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from typing import Any

DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def env_map(config: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def set_env(config: dict[str, Any], key: str, value: str) -> None:
    """Replace ``key`` where it is in Env, else append it (Docker keeps the order)."""
    env = list(config.get("Env") or [])
    for i, item in enumerate(env):
        if item.partition("=")[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    config["Env"] = env


def with_default_path(config: dict[str, Any]) -> dict[str, Any]:
    """A stage's config begins with a PATH, as Docker's and BuildKit's do."""
    if "PATH" not in env_map(config):
        config["Env"] = [*(config.get("Env") or []), f"PATH={DEFAULT_PATH}"]
    return config


def shell_of(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def nop(shell: list[str], comment: str) -> str:
    """The history line of a step that changes only the config."""
    return " ".join([*shell, "#(nop) ", comment])


def go_quote(items: list[str]) -> str:
    """Go's %q of a []string: ``["/bin/sh" "-c" "echo hi"]``."""
    import json

    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def go_list(items: list[str]) -> str:
    """Go's %v of a []string: ``[/data /logs]``."""
    return "[" + " ".join(items) + "]"


_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.I)


def parse_ports(specs: list[str]) -> list[str]:
    """EXPOSE's words as ExposedPorts keys (``80/tcp``); ranges expanded.
    ValueError names a bad one."""
    out: list[str] = []
    for spec in specs:
        spec = spec.rsplit(":", 1)[-1]  # an ip:host:container form exposes the container's
        m = _PORT.match(spec)
        if not m:
            raise ValueError(f"invalid containerPort: {spec}")
        low = int(m.group(1))
        high = int(m.group(2) or low)
        proto = (m.group(3) or "tcp").lower()
        if not 0 < low <= high <= 65535:
            raise ValueError(f"invalid containerPort: {spec}")
        out.extend(f"{p}/{proto}" for p in range(low, high + 1))
    return out


def check_signal(text: str) -> str:
    """STOPSIGNAL's value, checked as Docker's signal.ParseSignal does."""
    if text.isdigit():
        if not 0 < int(text) < 65:
            raise ValueError(f"invalid signal: {text}")
        return text
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if not hasattr(signal.Signals, name) and not re.match(r"^SIGRTM(IN|AX)([+-]\d+)?$", name):
        raise ValueError(f"invalid signal: {text}")
    return text


def healthcheck(test: tuple[str, ...], options: Mapping[str, str]) -> dict[str, Any]:
    """HEALTHCHECK's config (durations in nanoseconds, zero ones left out)."""
    from tomato.build.instructions import parse_duration

    if test == ("NONE",):
        return {"Test": ["NONE"]}
    out: dict[str, Any] = {"Test": list(test)}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        if flag in options:
            value = parse_duration(options[flag])
            if value:
                out[key] = value
    if options.get("retries"):
        out["Retries"] = int(options["retries"])
    return out


def run_history(args: list[str], build_args: list[tuple[str, str]]) -> str:
    """A RUN's history line: ``|N K=V ... cmd`` with the build args in effect."""
    if not build_args:
        return " ".join(args)
    pairs = sorted(f"{k}={v}" for k, v in build_args)
    return " ".join([f"|{len(pairs)}", *pairs, *args])


def clean_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as it is stored: empty fields left out, as Docker's omitempty."""
    return {k: v for k, v in config.items() if v not in (None, [], {}, "")}


__all__ = ["DEFAULT_SHELL", "env_map", "set_env", "with_default_path", "shell_of", "nop",
           "go_quote", "go_list", "parse_ports", "check_signal", "healthcheck", "run_history",
           "clean_config"]
