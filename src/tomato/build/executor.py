"""The instruction executor: each stage the target needs, step by step.

A stage begins at its base (an image, pulled if missing or with --pull; an earlier
stage's result; or nothing, FROM scratch) and every instruction makes a child image
(engine/stepimages.py): a config-only child for ENV, LABEL, CMD... (an empty layer
in the history), a child with a layer for RUN (a container of the engine whose
upper directory becomes the layer) and COPY/ADD (files written into a container's
merged root, or into a fresh layer directory on an image with no layers yet).

Before running a step the build cache is asked (cachekeys.py): the same parent,
the same instruction as read (variables expanded, build args in effect) and, for
COPY/ADD, the same file contents give the image made last time ("Using cache"),
unless --no-cache.  A step's non-image effects (ARG values, whether CMD was set in
this stage) happen either way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tomato.build import expand, imageconfig
from tomato.build.cachekeys import step_key
from tomato.build.copying import CopyJob, CopySpec, resolve_owner
from tomato.build.dockerfile import DockerfileError
from tomato.build.instructions import (
    Command,
    Copy,
    Instruction,
    check_trigger,
)
from tomato.build.progress import Reporter
from tomato.build.running import HIDDEN, run_attached, step_container
from tomato.build.sources import Tree
from tomato.build.stages import PROXY_ARGS, Plan, Stage, platform_args
from tomato.engine.buildcache import BuildCache
from tomato.engine.config import EngineConfig
from tomato.errors import InvalidArgument, NotFound, TomatoError


class StepFailed(TomatoError):
    """A step failed; the message names the Dockerfile line.  ``code``: a RUN's exit
    code; ``tail``: its last output lines."""

    def __init__(self, message: str, code: int = 1, tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.tail = tail or []


@dataclass
class Options:
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network: str = "bridge"
    explain: bool = False


@dataclass
class StageState:
    image: str | None = None  # the image the next step runs on (None: scratch, nothing yet)
    layers: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    args: dict[str, str | None] = field(default_factory=dict)  # ARGs this stage declared
    cmd_set: bool = False
    author: str = ""


class Executor:
    def __init__(self, cfg: EngineConfig, plan: Plan, context: Tree | None, options: Options,
                 reporter: Reporter, scratch: Path) -> None:
        self.cfg = cfg
        self.plan = plan
        self.context = context
        self.opts = options
        self.out = reporter
        self.scratch = scratch
        self.cache = BuildCache(cfg.root)
        self.results: dict[int, str | None] = {}
        self.name = plan.dockerfile.name
        self.escape = plan.dockerfile.escape
        self.n = 0

    # -- the whole build ----------------------------------------------------------------
    def total_steps(self) -> int:
        total = sum(1 + len(self.plan.stages[i].instructions) for i in self.plan.needed)
        return total + (1 if self.opts.labels else 0)

    def run(self) -> str:
        """Build every needed stage; the target's image id."""
        self.out.begin(self.total_steps())
        try:
            for index in self.plan.needed:
                self.results[index] = self._stage(self.plan.stages[index])
        finally:
            self.cache.close()
        final = self.results[self.plan.target]
        if final is None:
            raise StepFailed("No image was generated. Is your Dockerfile empty?")
        return final

    def _stage(self, stage: Stage) -> str | None:
        count = 1 + len(stage.instructions)
        is_target = stage.index == self.plan.target
        # BuildKit's labels: "2/5", or "builder 2/5" when the Dockerfile has stages
        prefix = f"{stage.name or f'stage-{stage.index}'} " if len(self.plan.stages) > 1 \
            else ""
        state = self._from(stage, f"{prefix}1/{count}")
        for i, ins in enumerate(stage.instructions, start=2):
            self._step(state, ins, f"{prefix}{i}/{count}")
        if is_target and self.opts.labels:
            self.n += 1
            text = "LABEL " + " ".join(f"{k}={v}" for k, v in sorted(self.opts.labels.items()))
            self.out.step(self.n, "labels", text)
            config = dict(state.config)
            config["Labels"] = {**(config.get("Labels") or {}), **self.opts.labels}
            self._commit_config(state, config, text, None)
        return state.image

    # -- variables ------------------------------------------------------------------------
    def env_of(self, state: StageState) -> dict[str, str]:
        """What $VAR means here: the stage's ARGs, then its ENV on top (ENV wins)."""
        env = {k: v for k, v in state.args.items() if v is not None}
        env.update(imageconfig.env_map(state.config))
        return env

    def word(self, ins: Instruction, text: str, env: Mapping[str, str]) -> str:
        try:
            return expand.word(text, env, self.escape)
        except expand.ExpansionError as err:
            raise self.error(ins, str(err)) from None

    def words(self, ins: Instruction, text: str, env: Mapping[str, str]) -> list[str]:
        try:
            return expand.words(text, env, self.escape)
        except expand.ExpansionError as err:
            raise self.error(ins, str(err)) from None

    def error(self, ins: Instruction, message: str) -> DockerfileError:
        return DockerfileError(f"{self.name}:{ins.line.lineno}: {message}")

    def _run_args(self, state: StageState) -> list[tuple[str, str]]:
        """The build args a RUN sees (declared, with a value, not shadowed by ENV; the
        proxy variables when given)."""
        env = imageconfig.env_map(state.config)
        out = [(k, v) for k, v in state.args.items() if v is not None and k not in env]
        out += [(k, v) for k, v in self.plan.build_args.items()
                if k in PROXY_ARGS and k not in state.args and k not in env]
        return out

    # -- FROM -------------------------------------------------------------------------------
    def _from(self, stage: Stage, label: str) -> StageState:
        self.n += 1
        ins = stage.start
        self.out.step(self.n, label, ins.text)
        state = StageState()
        if stage.base_stage is not None:
            state.image = self.results[stage.base_stage]
        elif stage.base.lower() != "scratch":
            state.image = self._image(ins, stage.base, pull=self.opts.pull)
        if state.image is not None:
            from tomato.engine import images

            summary = images.get_image(self.cfg, state.image)
            state.layers = len(summary.chain_ids)
            state.config = dict(images.inspect(self.cfg, state.image).config or {})
        triggers = list(state.config.get("OnBuild") or [])
        state.config.pop("OnBuild", None)
        imageconfig.with_default_path(state.config)
        self.out.done(state.image or "scratch")
        if triggers:
            self.out.note(f"executing {len(triggers)} build trigger(s) of {stage.base}")
        for trigger in triggers:
            try:
                parsed = check_trigger(trigger, ins.line, self.name, self.escape)
            except DockerfileError as err:
                raise self.error(ins, f"bad ONBUILD trigger of {stage.base}: {err}") \
                    from None
            self.n += 1
            self._step(state, parsed, "onbuild", count=False)
        return state

    def _image(self, ins: Instruction, name: str, pull: bool, what: str = "") -> str:
        """The id of image ``name``, pulled if missing (or always, with --pull)."""
        from tomato.engine import images

        if not pull:
            try:
                return images.get_image(self.cfg, name).id
            except NotFound:
                pass
            except InvalidArgument as err:
                raise self.error(ins, f"invalid image name {name!r}: {err}") from None
        try:
            return images.pull(self.cfg, name).id
        except TomatoError as err:
            raise self.error(ins, f"{ins.keyword} {what or name}: {err}") from None

    # -- one step ---------------------------------------------------------------------------
    def _step(self, state: StageState, ins: Instruction, label: str, count: bool = True) -> None:
        if count:
            self.n += 1
        self.out.step(self.n, label, ins.text)
        try:
            if isinstance(ins, Command) and ins.keyword == "RUN":
                self._run(state, ins)
            elif isinstance(ins, Copy):
                self._copy(state, ins)
            else:
                self._metadata(state, ins)
        except (StepFailed, DockerfileError):
            raise
        except TomatoError as err:
            raise StepFailed(f"{self.name}:{ins.line.lineno}: {ins.keyword}: {err}") from err

    def _cached(self, state: StageState, key: str) -> bool:
        """On a hit, ``state`` moves to the cached image."""
        if self.opts.no_cache:
            return False
        hit = self.cache.hit(key)
        if hit is None:
            return False
        self.out.cached()
        state.image, state.layers = hit
        self.out.done(state.image)
        return True

    def _remember(self, state: StageState, key: str, parent: str | None, text: str,
                  image: Any) -> None:
        self.cache.record(key, image.id, parent or "", text)
        state.image, state.layers = image.id, len(image.chain_ids)

    def _history(self, state: StageState, created_by: str) -> list[dict[str, Any]]:
        from tomato.images.commit import now

        return [{"created": now(), "created_by": created_by}]

    def _platform(self) -> dict[str, str]:
        p = platform_args()
        return {"architecture": p["TARGETARCH"], "os": "linux"}

    def _commit_config(self, state: StageState, config: dict[str, Any], comment: str,
                       extra: object) -> None:
        """A step that changes only the config (or nothing): an empty-layer child."""
        from tomato.engine.stepimages import child_image

        # (Docker writes the line with the shell as it is after the step: a SHELL's own)
        created_by = imageconfig.nop(imageconfig.shell_of(config), comment)
        key = step_key(state.image, "config", created_by, [extra, state.author])
        state.config = config
        if self._cached(state, key):
            return
        history = self._history(state, created_by)
        history[-1]["empty_layer"] = True
        parent = state.image
        image = child_image(self.cfg, parent, imageconfig.clean_config(config), history,
                            author=state.author, platform=self._platform())
        self._remember(state, key, parent, created_by, image)
        self.out.done(image.id)

    # -- config-only instructions (metadata.py) --------------------------------------------
    def _metadata(self, state: StageState, ins: Instruction) -> None:
        from tomato.build.metadata import config_step

        config, comment, extra = config_step(self, state, ins)
        self._commit_config(state, config, comment, extra)

    # -- RUN -------------------------------------------------------------------------------
    def _command(self, state: StageState, ins: Command) -> list[str]:
        if ins.exec_form:
            return list(ins.args)
        text = ins.args[0] if ins.args else ""
        shell = imageconfig.shell_of(state.config)
        if ins.heredocs:
            only = text.strip()
            first = ins.heredocs[0]
            if len(ins.heredocs) == 1 and only.lstrip("<-").strip("'\"") == first.name:
                return [*shell, first.content]  # RUN <<EOF: the heredoc is the script
            for doc in ins.heredocs:  # the shell reads its own heredocs
                text += "\n" + doc.content + doc.name
        return [*shell, text]

    def _run(self, state: StageState, ins: Command) -> None:
        from tomato.engine.stepimages import child_image

        argv = self._command(state, ins)
        run_args = self._run_args(state)
        created_by = imageconfig.run_history(argv, run_args)
        key = step_key(state.image, "run", created_by, state.author)
        if self._cached(state, key):
            return
        if state.image is None or state.layers == 0:
            raise StepFailed(f"{self.name}:{ins.line.lineno}: RUN {ins.text[4:]}: the image "
                             "has no files yet (FROM scratch): there is no shell to run it")
        network = {"default": self.opts.network, "": self.opts.network}.get(ins.network,
                                                                            ins.network)
        parent = state.image
        env = [f"{k}={v}" for k, v in run_args]
        with step_container(self.cfg, parent, argv, env=env, network=network,
                            then_start=True) as box:
            self.out.running(box.id)
            if self.opts.explain:
                from tomato.build import explain

                self.out.explain(explain.container(box, parent, network, argv))
            code = run_attached(self.cfg, box, self.out.output)
            if code != 0:
                shown = " ".join(argv)
                raise StepFailed(f"{self.name}:{ins.line.lineno}: the command '{shown}' "
                                 f"returned a non-zero code: {code}", code, box.tail)
            if self.opts.explain:
                from tomato.build import explain

                self.out.explain(explain.diff(box.upper, box.lowers))
            image = child_image(self.cfg, parent, imageconfig.clean_config(state.config),
                                self._history(state, created_by), upper=box.upper,
                                lowers=box.lowers, hidden=HIDDEN, author=state.author)
            self._remember(state, key, parent, created_by, image)
            removed = box.id
        if self.opts.explain:
            from tomato.build import explain

            self.out.explain(explain.layer(self.cfg, image.id))
        self.out.done(image.id, removed)

    # -- COPY / ADD -----------------------------------------------------------------------
    def _copy(self, state: StageState, ins: Copy) -> None:
        env = self.env_of(state)
        heredocs = {d.name: (self.word(ins, d.content, env) if d.expand else d.content)
                    for d in ins.heredocs}
        sources = [s if s.lstrip("<-").strip("'\"") not in heredocs else
                   s.lstrip("<-").strip("'\"") for s in ins.sources]
        sources = [s if s in heredocs else self.word(ins, s, env) for s in sources]
        chmod = int(ins.chmod, 8) if ins.chmod else None
        spec = CopySpec(sources, self.word(ins, ins.dest, env),
                        state.config.get("WorkingDir") or "/",
                        chown=self.word(ins, ins.chown, env) if ins.chown else "",
                        chmod=chmod, is_add=ins.is_add, heredocs=heredocs,
                        checksum=self.word(ins, ins.checksum, env) if ins.checksum else "")
        if ins.from_:
            ref = self.word(ins, ins.from_, {**platform_args(), **{
                k: v for k, v in self.plan.global_args.items() if v is not None}})
            stage = next((s.index for s in self.plan.stages[:self._stage_of(ins)]
                          if s.name == ref.lower() or str(s.index) == ref), None)
            source_image = self.results.get(stage) if stage is not None else \
                self._image(ins, ref, pull=False, what=f"--from={ref}")
            if source_image is None:  # an earlier stage FROM scratch with nothing in it
                raise self.error(ins, f"{ins.keyword} --from={ref}: that stage has no files")
            # An image never changes: its id stands for its files, so the cache is asked
            # before any container is made to read them.
            key = step_key(state.image, "copy-from", ins.keyword, [
                source_image, spec.sources, spec.dest, spec.target, spec.chown, ins.chmod,
                state.author])
            if self._cached(state, key):
                return
            with step_container(self.cfg, source_image, ["true"], env=[], network="none",
                                then_start=False) as src:
                root = os.open(src.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    self._copy_from(state, ins, spec, Tree(root, what=f"stage {ref}"),
                                    source_image, key)
                finally:
                    os.close(root)
        else:
            self._copy_from(state, ins, spec, self.context, None)

    def _write_layer(self, state: StageState, job: CopyJob, spec: CopySpec, view: str | None,
                     config: dict[str, Any], created_by: str, from_image: bool) -> Any:
        """The copied files as a new layer's directory, committed as the child image."""
        from tomato.engine.stepimages import child_image, new_layer

        with new_layer(self.cfg) as staged:
            fd = os.open(staged.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                job.apply(fd, view, resolve_owner(spec.chown, view),
                          keep_owners=from_image and not spec.chown)
            finally:
                os.close(fd)
            if self.cfg.userns_remap is not None:  # the host's owners of a remapped engine
                from tomato.engine.userns_remap import shift_tree

                shift_tree(staged.path, self.cfg.userns_remap)
            if self.opts.explain:
                from tomato.build import explain

                self.out.explain(explain.staged(str(staged.path)))
            return child_image(self.cfg, state.image, config, self._history(state, created_by),
                               staged=staged, author=state.author,
                               platform=self._platform() if state.image is None else None)

    def _stage_of(self, ins: Instruction) -> int:
        for s in self.plan.stages:
            if ins in s.instructions:
                return s.index
        return len(self.plan.stages)

    def _copy_from(self, state: StageState, ins: Copy, spec: CopySpec, tree: Tree | None,
                   source_image: str | None, key: str = "") -> None:
        try:
            job = CopyJob(spec, tree, self.scratch)
        except (InvalidArgument, NotFound) as err:
            raise StepFailed(f"{self.name}:{ins.line.lineno}: {ins.keyword} failed: {err}") \
                from None
        try:
            flags = "".join(f"--{k}={v} " for k, v in (("chown", spec.chown),
                                                       ("chmod", ins.chmod)) if v)
            created_by = imageconfig.nop(imageconfig.shell_of(state.config),
                                         f"{ins.keyword} {flags}{job.describe()} in "
                                         f"{spec.dest} ")
            if not key:  # the context's files: the key has their contents' hash
                key = step_key(state.image, "copy", created_by, [spec.target, state.author])
                if self._cached(state, key):
                    return
            parent = state.image
            config = imageconfig.clean_config(state.config)
            try:
                if parent is None or state.layers == 0:
                    image = self._write_layer(state, job, spec, None, config, created_by,
                                              source_image is not None)
                else:  # the image's files are read through a container never started
                    with step_container(self.cfg, parent, ["true"], env=[], network="none",
                                        then_start=False) as view:
                        if self.opts.explain:
                            from tomato.build import explain

                            self.out.explain(explain.container(view, parent, "", []))
                        image = self._write_layer(state, job, spec, str(view.rootfs), config,
                                                  created_by, source_image is not None)
            except (InvalidArgument, NotFound) as err:
                raise StepFailed(f"{self.name}:{ins.line.lineno}: {ins.keyword} failed: "
                                 f"{err}") from None
            self._remember(state, key, parent, created_by, image)
            if self.opts.explain:
                from tomato.build import explain

                self.out.explain(explain.layer(self.cfg, image.id))
            self.out.done(image.id)
        finally:
            job.close()


__all__ = ["Executor", "Options", "StepFailed"]
