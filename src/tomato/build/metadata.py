"""What a config-only instruction does: ARG, ENV, LABEL, CMD, ENTRYPOINT, SHELL,
WORKDIR, USER, STOPSIGNAL, MAINTAINER, EXPOSE, VOLUME, HEALTHCHECK, ONBUILD.

``config_step`` expands the instruction's words (Docker expands in all of these but
CMD, ENTRYPOINT, SHELL, MAINTAINER and ONBUILD), applies it to a copy of the stage's
config, and gives the history comment Docker's classic builder writes for it; the
executor then makes (or finds in the cache) the config-only child image.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

from tomato.build import imageconfig
from tomato.build.instructions import (
    Arg,
    Command,
    Healthcheck,
    Instruction,
    KeyValues,
    Onbuild,
    Shell,
    Single,
    Words,
)

if TYPE_CHECKING:
    from tomato.build.executor import Executor, StageState


def config_step(ex: Executor, state: StageState,
                ins: Instruction) -> tuple[dict[str, Any], str, object]:
    """The new config, the history comment, and what else the cache key needs."""
    env = ex.env_of(state)
    config = dict(state.config)
    kw = ins.keyword
    extra: object = None
    if isinstance(ins, Arg):
        parts = []
        for key, default in ins.pairs:
            value = default if default is None else ex.word(ins, default, env)
            parts.append(key if value is None else f"{key}={value}")
            if key in ex.plan.build_args:
                state.args[key] = ex.plan.build_args[key]
            elif value is not None:
                state.args[key] = value
            else:
                state.args[key] = ex.plan.global_args.get(key)
            if state.args[key] is not None:
                env[key] = state.args[key]  # type: ignore[assignment]
        comment = "ARG " + " ".join(parts)
    elif isinstance(ins, KeyValues):
        pairs = [(ex.word(ins, k, env), ex.word(ins, v, env)) for k, v in ins.pairs]
        if kw == "ENV":
            for k, v in pairs:
                imageconfig.set_env(config, k, v)
        else:
            config["Labels"] = {**(config.get("Labels") or {}), **dict(pairs)}
        comment = kw + "".join(f" {k}={v}" for k, v in pairs)
    elif isinstance(ins, Command):  # CMD, ENTRYPOINT
        args = list(ins.args) if ins.exec_form else \
            [*imageconfig.shell_of(config), *ins.args] if ins.args else []
        if kw == "CMD":
            config["Cmd"] = args
            state.cmd_set = True
        else:
            config["Entrypoint"] = args
            if not state.cmd_set:
                config.pop("Cmd", None)
            extra = state.cmd_set
        comment = f"{kw} {imageconfig.go_quote(args)}"
    elif isinstance(ins, Shell):
        config["Shell"] = list(ins.args)
        comment = f"SHELL {imageconfig.go_list(list(ins.args))}"
    elif isinstance(ins, Single):
        value = ins.value if kw == "MAINTAINER" else ex.word(ins, ins.value, env)
        comment = f"{kw} {value}"
        if kw == "WORKDIR":
            if not value:
                raise ex.error(ins, "WORKDIR needs a path")
            if not value.startswith("/"):  # Go's filepath.Join: cleaned
                value = posixpath.normpath(posixpath.join(
                    "/", config.get("WorkingDir") or "/", value))
            config["WorkingDir"] = value
            comment = f"WORKDIR {value}"
        elif kw == "USER":
            if not value:
                raise ex.error(ins, "USER needs a user")
            config["User"] = value
        elif kw == "STOPSIGNAL":
            try:
                config["StopSignal"] = imageconfig.check_signal(value)
            except ValueError as err:
                raise ex.error(ins, f"STOPSIGNAL: {err}") from None
        else:
            state.author = value
    elif isinstance(ins, Words):
        if kw == "EXPOSE":
            words = [w for word in ins.words for w in ex.words(ins, word, env)]
            try:
                ports = imageconfig.parse_ports(words)
            except ValueError as err:
                raise ex.error(ins, f"EXPOSE: {err}") from None
            config["ExposedPorts"] = {**(config.get("ExposedPorts") or {}),
                                      **{p: {} for p in ports}}
            comment = "EXPOSE " + " ".join(words)
        else:
            paths = [ex.word(ins, w, env) for w in ins.words]
            if any(not p.strip() for p in paths):
                raise ex.error(ins, "VOLUME specified can not be an empty string")
            config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}
            comment = f"VOLUME {imageconfig.go_list(paths)}"
    elif isinstance(ins, Healthcheck):
        config["Healthcheck"] = imageconfig.healthcheck(ins.test, dict(ins.options))
        comment = ins.text
    elif isinstance(ins, Onbuild):
        config["OnBuild"] = [*(config.get("OnBuild") or []), ins.trigger]
        comment = f"ONBUILD {ins.trigger}"
    else:  # pragma: no cover — parse_instruction knows every keyword
        raise ex.error(ins, f"unknown instruction: {kw}")
    return config, comment, extra


__all__ = ["config_step"]
