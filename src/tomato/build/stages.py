"""The stage graph: which stages a build target needs, and the ARGs each may see.

A Dockerfile is a list of stages, each opened by ``FROM``.  A stage depends on
another when it starts ``FROM`` it or copies ``--from`` it (by name or index);
only the target (``--target``, else the last stage) and what it depends on are
built, in Dockerfile order, as Docker's builders do.

ARG scoping, as Docker's: ARGs before the first FROM are *global*: FROM lines may
use them, and a stage sees one only after declaring it again (``ARG NAME``).
``--build-arg`` overrides a declared default; the proxy variables and the
platform ARGs need no declaration.
"""

from __future__ import annotations

import platform as _platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tomato.build import expand
from tomato.build.dockerfile import Dockerfile, DockerfileError
from tomato.build.instructions import Arg, Copy, From, Instruction, parse_all

#: usable in RUN without an ARG line; kept out of history and the cache key
PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                        "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})


def platform_args() -> dict[str, str]:
    """BuildKit's automatic platform ARGs (the build and target platform are this host's)."""
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(
        _platform.machine(), _platform.machine())
    out = {}
    for prefix in ("BUILD", "TARGET"):
        out.update({f"{prefix}PLATFORM": f"linux/{arch}", f"{prefix}OS": "linux",
                    f"{prefix}ARCH": arch, f"{prefix}VARIANT": ""})
    return out


@dataclass
class Stage:
    index: int
    name: str  # the AS name, lower case ("" when it has none)
    start: From
    base: str  # the FROM image text, global ARGs expanded
    instructions: list[Instruction] = field(default_factory=list)
    base_stage: int | None = None  # FROM an earlier stage
    copies_from: set[int] = field(default_factory=set)

    @property
    def label(self) -> str:
        return self.name or str(self.index)


@dataclass
class Plan:
    stages: list[Stage]
    target: int
    needed: list[int]  # stage indexes to build, in order
    global_args: dict[str, str | None]  # declared before the first FROM (after overrides)
    build_args: dict[str, str]
    dockerfile: Dockerfile

    def unused_build_args(self) -> list[str]:
        """--build-arg names no ARG of a built stage (nor a global one) declares."""
        declared = set(self.global_args)
        for i in self.needed:
            for ins in self.stages[i].instructions:
                if isinstance(ins, Arg):
                    declared.update(name for name, _ in ins.pairs)
        return sorted(k for k in self.build_args
                      if k not in declared and k not in PROXY_ARGS)


def _find_stage(stages: list[Stage], ref: str, before: int) -> int | None:
    """The index of an earlier stage named (or numbered) ``ref``, else None (an image)."""
    low = ref.lower()
    for s in stages[:before]:
        if s.name and s.name == low:
            return s.index
    if re.match(r"^\d+$", ref):
        n = int(ref)
        return n if n < before else -1
    return None


def plan(dockerfile: Dockerfile, build_args: Mapping[str, str] | None = None,
         target: str = "") -> Plan:
    """Cut the Dockerfile into stages and find the ones ``target`` needs."""
    build_args = dict(build_args or {})
    instructions = parse_all(dockerfile)
    name = dockerfile.name
    global_args: dict[str, str | None] = {}
    env = {**platform_args()}
    i = 0
    while isinstance(instructions[i], Arg):
        arg = instructions[i]
        assert isinstance(arg, Arg)
        for key, default in arg.pairs:
            value = build_args.get(key)
            if value is None and default is not None:
                value = _expand(default, env, dockerfile, arg)
            global_args[key] = value
            if value is not None:
                env[key] = value
        i += 1
    stages: list[Stage] = []
    for ins in instructions[i:]:
        if isinstance(ins, From):
            base = _expand(ins.image, env, dockerfile, ins)
            if not base:
                raise DockerfileError(f"{name}:{ins.line.lineno}: base name ({ins.image}) "
                                      "should not be blank")
            stage = Stage(len(stages), ins.alias, ins, base)
            if ins.alias and any(s.name == ins.alias for s in stages):
                raise DockerfileError(f"{name}:{ins.line.lineno}: duplicate name "
                                      f"{ins.alias!r} for a build stage")
            found = _find_stage(stages, base, stage.index)
            if found is not None and found >= 0:
                stage.base_stage = found
            stages.append(stage)
            continue
        stage = stages[-1]
        stage.instructions.append(ins)
        if isinstance(ins, Copy) and ins.from_:
            ref = _expand(ins.from_, env, dockerfile, ins)
            found = _find_stage(stages, ref, stage.index)
            if found == -1 or (found is None and ref.lower() == stage.name and stage.name):
                raise DockerfileError(f"{name}:{ins.line.lineno}: {ins.keyword} --from={ref}: "
                                      "a stage can only copy from an earlier stage")
            if found is not None:
                stage.copies_from.add(found)
    if target:
        matches = [s.index for s in stages if s.name == target.lower()]
        if not matches:
            raise DockerfileError(f"target stage {target!r} could not be found in {name}")
        target_index = matches[0]
    else:
        target_index = len(stages) - 1
    needed: set[int] = set()
    todo = [target_index]
    while todo:
        n = todo.pop()
        if n in needed:
            continue
        needed.add(n)
        s = stages[n]
        if s.base_stage is not None:
            todo.append(s.base_stage)
        todo.extend(s.copies_from)
    return Plan(stages, target_index, sorted(needed), global_args, build_args, dockerfile)


def _expand(text: str, env: Mapping[str, str], dockerfile: Dockerfile,
            ins: Instruction) -> str:
    try:
        return expand.word(text, env, dockerfile.escape)
    except expand.ExpansionError as err:
        raise DockerfileError(f"{dockerfile.name}:{ins.line.lineno}: {err}") from None


__all__ = ["Plan", "Stage", "plan", "PROXY_ARGS", "platform_args"]
