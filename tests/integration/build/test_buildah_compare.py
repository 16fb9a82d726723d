"""The same Dockerfile and context built by `tomato build` and by `buildah bud`: the
image configs (Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels,
StopSignal, Healthcheck, OnBuild, Shell), the history (one entry per instruction,
which ones are empty layers, RUN lines word for word) and the file trees (paths,
kinds, modes, owners, contents) must agree."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from .conftest import Buildah, Builder, write_context

CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
                 "Labels", "StopSignal", "Healthcheck", "OnBuild", "Shell")


def _tgz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o640, 7, 8
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


CASES: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "metadata": ("""\
ARG GREETING=hello
FROM busybox
ARG GREETING
ARG OVERRIDDEN=default
ENV A=1 B="two words" C=${GREETING}
ENV LEGACY a value with spaces
LABEL org.example.one="first label" two=${A}
WORKDIR /srv
WORKDIR app
USER daemon:daemon
EXPOSE 80 53/udp 8000-8002
VOLUME /data
VOLUME ["/logs", "/cache"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD wget -q http://localhost/ || exit 1
ONBUILD RUN echo from a child
ENTRYPOINT ["/bin/sh", "-c"]
CMD echo $OVERRIDDEN
""", {}, ("--build-arg", "OVERRIDDEN=given")),
    "run": ("""\
FROM busybox
ARG FLAVOUR=plain
RUN mkdir -p /data/x && echo $FLAVOUR > /data/x/f && chmod 700 /data
RUN rm /etc/group && rm -rf /home && ln -s /data /lnk
USER daemon
RUN echo mine > /tmp/owned-by-daemon
USER root
RUN echo as root again > /root-again
""", {}, ()),
    "copy": ("""\
FROM busybox
WORKDIR /app
COPY dir/ ./
COPY dir /copied-dir/
COPY one.txt two.txt /both/
COPY *.md /docs/
COPY one.txt /renamed.txt
COPY one.txt /etc
COPY link-to-one /via-link
COPY --chown=1:1 one.txt /owned/
COPY --chown=daemon:daemon dir /owned-dir/
COPY --chmod=0600 two.txt /private.txt
COPY . /whole/
""", {"dir/a.txt": "a\n", "dir/sub/b.txt": "b\n", "one.txt": "one\n", "two.txt": "two\n",
      "README.md": "readme\n", "NOTES.md": "notes\n", "ignored.log": "no\n",
      ".dockerignore": "*.log\n"}, ()),
    "add": ("""\
FROM busybox
ADD archive.tar.gz /unpacked/
ADD plain.txt /added/
ADD archive.tar.gz /etc/more/
""", {"archive.tar.gz": _tgz({"top.txt": "top\n", "inner/deep.txt": "deep\n"}),
      "plain.txt": "plain\n"}, ()),
    "multistage": ("""\
FROM busybox AS builder
RUN mkdir /out && echo built > /out/artifact && echo other > /out/other
FROM builder AS unused
RUN echo never > /never
FROM builder AS derived
RUN echo derived >> /out/artifact
FROM busybox
COPY --from=derived /out/artifact /artifact
COPY --from=0 /out /all-out/
CMD ["cat", "/artifact"]
""", {}, ()),
}


def _config(cfg: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in CONFIG_FIELDS:
        value = cfg.get(key)
        if key == "Labels" and value:
            value = {k: v for k, v in value.items() if not k.startswith("io.buildah.")}
        if key == "ExposedPorts" and value:  # Docker (and tomato) expand a range; buildah not
            value = {p: {} for spec in value for p in _ports(spec)}
        out[key] = value or None
    return out


def _ports(spec: str) -> list[str]:
    ports, _, proto = spec.partition("/")
    low, _, high = ports.partition("-")
    return [f"{p}/{proto}" for p in range(int(low), int(high or low) + 1)]


def _history(history: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """(what the entry says, whether it is an empty layer): the instruction word for a
    config step or a copy (their hashes differ between builders), the whole line (words
    normalised) for a RUN.

Where buildah 1.28 is not Docker, the cases keep clear of it: it keeps an EXPOSE range
as one key (Docker expands it: normalised below), it ignores SHELL (Docker's RUN,
CMD and ENTRYPOINT use it), it keeps a RUN that changed nothing as a layer (Docker
marks it an empty layer), and it writes an exec form RUN's history as a shell form
of its JSON: those are tested in test_instructions."""
    out = []
    for h in history:
        text = " ".join(h.get("created_by", "").split())
        if "#(nop)" in text:
            text = text.split("#(nop)", 1)[1].split()[0]
        out.append((text, bool(h.get("empty_layer"))))
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_same_as_buildah(name: str, builder: Builder, buildah: Buildah, workdir: Path) -> None:
    dockerfile, files, args = CASES[name]
    ctx = write_context(workdir / "ctx", {"Dockerfile": dockerfile, **files})
    if name == "copy":
        (ctx / "link-to-one").symlink_to("one.txt")
    tag = f"cmp-{name}"
    builder.build(ctx, "-t", tag, *args)
    buildah.bud(ctx, tag, *args)
    theirs = buildah.docker_config(tag)
    assert _config(builder.config(tag)) == _config(theirs["config"])
    assert _history(builder.history(tag)) == _history(theirs["history"])
    assert builder.tree(tag, workdir) == buildah.tree(tag, workdir)
