"""The containers a build makes: one per RUN (and one to copy into, per COPY/ADD).

Each is an ordinary container of the engine (``engine.service.create/start/remove``):
the same runtime, cgroups, security defaults and network modes as `tomato run`,
on the image of the step before.  A RUN's output comes over the container's
attach socket (Docker's frames; the monitor waits for us before it starts the
process, so nothing is lost) and its exit code with the last frame.  Whatever
happens -- a failing command, Ctrl-C, a broken pipe -- the container and its
mounts, cgroup and network go (``service.remove(force=True)``) before the build
goes on or ends.
"""

from __future__ import annotations

import select
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tomato.engine.config import EngineConfig
from tomato.errors import TomatoError

#: mount points the runtime makes in a root that lacks them: never part of a layer
HIDDEN = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/proc", "/sys",
                    "/dev"})
TAIL_LINES = 10


@dataclass
class StepContainer:
    id: str
    rootfs: Path  # the container's merged root, mounted
    upper: str  # its overlay upper directory ("" when it has no overlay)
    lowers: list[str]
    workdir: str  # overlayfs' workdir, for --explain
    tail: list[str] = field(default_factory=list)  # a RUN's last output lines


@contextmanager
def step_container(cfg: EngineConfig, image: str, command: list[str], *, env: list[str],
                   network: str, then_start: bool) -> Iterator[StepContainer]:
    """A container on ``image`` that is removed (killed if it runs) on the way out."""
    from tomato.engine import service
    from tomato.engine.containers import Containers
    from tomato.engine.images import rootfs_mounts
    from tomato.engine.options import RunOptions

    opts = RunOptions(image=image, command=list(command), entrypoint=[], env=list(env),
                      network=network, labels={"io.tomato.build": "step"})
    c = service.create(cfg, opts, then_start=then_start)
    try:
        mounts = rootfs_mounts(cfg, c.id)
        upper, lowers, work = "", [], ""
        if mounts and mounts[0].type == "overlay":
            upper = mounts[0].option("upperdir") or ""
            work = mounts[0].option("workdir") or ""
            lowers = mounts[0].lowerdirs
        yield StepContainer(c.id, Containers(cfg.root).bundle(c.id) / "rootfs", upper, lowers,
                            work)
    finally:
        try:
            service.remove(cfg, c.id, force=True, volumes=True)
        finally:
            service.settle(cfg)  # the step's monitor, done by now, is reaped


def run_attached(cfg: EngineConfig, box: StepContainer,
                 output: Callable[[int, bytes], None]) -> int:
    """Start the container and stream its stdout (1) and stderr (2) to ``output``
    until it exits; its exit code (125 if the engine lost it)."""
    from tomato.engine import attach, frames, service
    from tomato.engine.containers import Containers

    try:
        service.start(cfg, box.id, attach_wait=True)
    except TomatoError as err:
        msg = str(err)
        box.tail = [msg]
        return 127 if "not found" in msg or "no such file" in msg else \
            126 if "permission denied" in msg else 125
    sock = attach.connect(Containers(cfg.root).path(box.id) / "attach.sock")
    reader = frames.FrameReader()
    pending = b""
    code: int | None = None
    try:
        while code is None:
            ready, _, _ = select.select([sock], [], [], 1.0)
            if not ready:
                continue
            data = sock.recv(65536)
            if not data:
                break
            for kind, payload in reader.feed(data):
                if kind in (frames.STDOUT, frames.STDERR):
                    output(kind, payload)
                    pending = _remember(box.tail, pending + payload)
                elif kind == frames.CONTROL:
                    control = frames.decode_control(payload)
                    if "exit" in control:
                        code = int(control["exit"])
    finally:
        sock.close()
    if pending:
        box.tail.append(pending.decode("utf-8", "replace"))
        del box.tail[:-TAIL_LINES]
    if code is None:  # the monitor went away: the record (reconciled) knows
        try:
            code = service.wait_exit(cfg, box.id, 10).state.exit_code
        except TomatoError:
            code = 125
    return code


def _remember(tail: list[str], data: bytes) -> bytes:
    """Keep the last lines of a RUN's output for its error; returns the unfinished line."""
    *lines, rest = data.split(b"\n")
    for line in lines:
        tail.append(line.decode("utf-8", "replace"))
    del tail[:-TAIL_LINES]
    return rest[-4096:]


__all__ = ["HIDDEN", "StepContainer", "step_container", "run_attached"]
