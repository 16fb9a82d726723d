"""Bad and hostile input to `tomato build`: one clear line naming the Dockerfile's
line, exit 1 (125 for a bad flag), and nothing left behind -- no container, no mount
or cgroup (the suite's leak check), no scratch directory or half-made layer, no file
outside the engine's root, no image tagged."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest
from helpers.engine import TOMATO, until

from .conftest import Builder, write_context


def _fails(builder: Builder, ctx: Path | str, *args: str, code: int = 1,
           input: str | None = None) -> str:
    before = set(builder.tags())
    proc = builder.build(ctx, "-t", "must-not-exist", *args, check=False, input=input)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tomato: "), proc.stderr
    assert set(builder.tags()) == before  # nothing tagged
    assert builder.ids() == []  # no container left
    _nothing_in_scratch(builder)
    return last


def _nothing_in_scratch(builder: Builder) -> None:
    tmp = builder.root / "builder" / "tmp"
    assert not tmp.exists() or os.listdir(tmp) == []
    from tomato.images.snapshots import Snapshotter

    assert [o for o in Snapshotter(builder.root / "snapshots").orphans()] == []


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


def test_missing_and_unreadable_dockerfiles(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"f": "x"})
    assert "cannot locate specified Dockerfile: Dockerfile" in _fails(builder, ctx)
    assert 'path "/nonexistent/ctx" not found' in _fails(builder, "/nonexistent/ctx")
    (workdir / "dir.Dockerfile").mkdir()
    assert "is a directory" in _fails(builder, ctx, "-f", str(workdir / "dir.Dockerfile"))
    (ctx / "Dockerfile").write_bytes(b"FROM busybox\nRUN \xff\n")
    assert "not UTF-8" in _fails(builder, ctx)
    (ctx / "Dockerfile").write_text("\n# nothing\n")
    assert "has no instructions" in _fails(builder, ctx)


@pytest.mark.parametrize("dockerfile, message", [
    ("FROM busybox\nENV A=1\n\nRUNN echo\n", "tomato: Dockerfile:4: unknown instruction: RUNN"),
    ("FROM busybox\nCOPY --frm=x a b\n", "tomato: Dockerfile:2: unknown flag: frm"),
    ("ENV X=1\nFROM busybox\n", "tomato: Dockerfile:1: no build stage in current context"),
    ("FROM busybox\nCOPY ../outside /x\n", "tomato: Dockerfile:2: COPY failed: forbidden "
                                           "path outside the build context: ../outside"),
    ("FROM busybox\nCOPY --from=127.0.0.1:9/nowhere /x /y\n",
     "tomato: Dockerfile:2: COPY --from=127.0.0.1:9/nowhere: cannot reach registry"),
    ("FROM busybox\nCOPY missing.txt /x\n", "tomato: Dockerfile:2: COPY failed: missing.txt:"
                                            " not found in the build context"),
    ("FROM busybox\nCOPY a b /x\n", "the destination must be a directory and end with a /"),
    ("FROM busybox\nSTOPSIGNAL SIGNOPE\n", "tomato: Dockerfile:2: STOPSIGNAL: invalid signal"),
    ("FROM busybox\nENV A=${B:?required}\n", "tomato: Dockerfile:2: B: required"),
    ("FROM busybox\nEXPOSE http\n", "tomato: Dockerfile:2: EXPOSE: invalid containerPort"),
    ("FROM scratch\nRUN true\n", "tomato: Dockerfile:2: RUN true: the image has no files"),
    ("FROM busybox AS a\nFROM busybox AS a\n", "duplicate name 'a'"),
])
def test_bad_dockerfiles_name_their_line(builder: Builder, workdir: Path, dockerfile: str,
                                         message: str) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": dockerfile, "a": "a", "b": "b"})
    assert message in _fails(builder, ctx, "--network", "none")


def test_bad_flags_and_targets(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": "FROM busybox AS one\n"})
    proc = builder.run("build", "--bogus", str(ctx), check=False)
    assert proc.returncode == 125 and "unknown flag: --bogus" in proc.stderr
    assert "target stage 'nope' could not be found" in _fails(builder, ctx, "--target", "nope")
    proc = builder.run("build", "-t", "Bad:Name!", str(ctx), check=False)
    assert proc.returncode == 1 and "invalid reference format" in proc.stderr
    assert "can't use stdin for both" in _fails(builder, "-", "-f", "-", input="FROM x\n")


def test_symlinks_out_of_the_context(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": "FROM busybox\nCOPY abs /x\n",
                                          "etc/hostname": "the context's own\n"})
    (ctx / "abs").symlink_to("/etc/hostname")  # absolute: resolved inside the context
    (ctx / "up").symlink_to("../../../../../../etc/passwd")
    (ctx / "loop1").symlink_to("loop2")
    (ctx / "loop2").symlink_to("loop1")
    builder.build(ctx, "-t", "in-scope", "--network", "none")
    out = builder.run("run", "--rm", "--network", "none", "in-scope", "cat", "/x").stdout
    assert out == "the context's own\n"  # never the host's /etc/hostname
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY up /x\n")
    assert "up: not found in the build context" in _fails(builder, ctx, "--network", "none")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY loop1 /x\n")
    assert "symlink loop" in _fails(builder, ctx, "--network", "none")


def test_contexts_that_are_not_tars(builder: Builder, workdir: Path) -> None:
    junk = workdir / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    assert "neither a directory nor a tar archive" in _fails(builder, junk)
    cut = workdir / "cut.tar"
    cut.write_bytes(_tar([(_entry("Dockerfile"), b"FROM busybox\n"),
                          (_entry("big"), b"x" * 100000)])[:30000])
    assert "the build context: invalid tar archive" in _fails(builder, cut)
    evil = workdir / "evil.tar"
    evil.write_bytes(_tar([(_entry("Dockerfile"), b"FROM busybox\n"),
                           (_entry("../../escaped"), b"out")]))
    assert "is outside of the destination" in _fails(builder, evil)
    assert not (workdir.parent / "escaped").exists()


def test_hostile_add_archives(builder: Builder, workdir: Path) -> None:
    canary = workdir / "canary"
    cases = {
        "traversal.tar": [(_entry("../../../../../../" + str(canary).lstrip("/")), b"out")],
        "link-out.tar": [(_entry("evil", tarfile.SYMTYPE, str(workdir)), b""),
                         (_entry("evil/canary"), b"through the link")],
        "hardlink.tar": [(_entry("hl", tarfile.LNKTYPE, "/etc/shadow"), b"")],
    }
    files: dict[str, str | bytes] = {name: _tar(members) for name, members in cases.items()}
    for name in cases:
        ctx = write_context(workdir / name.removesuffix(".tar"),
                            {**files, "Dockerfile": f"FROM busybox\nADD {name} /unpacked/\n"})
        line = _fails(builder, ctx, "--network", "none")
        assert line.startswith("tomato: Dockerfile:2: ADD failed: ADD " + name), line
        assert not canary.exists()


def test_failing_run_shows_its_code_and_output(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": "FROM busybox\nRUN echo ok > /ok\n"
                                                       "RUN for i in 1 2 3; do echo line $i; "
                                                       "done; exit 42\n"})
    proc = builder.build(ctx, "--network", "none", check=False)
    assert proc.returncode == 1
    assert "line 3" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "tomato: Dockerfile:3: the command '/bin/sh -c for i in 1 2 3; do echo line $i; "
        "done; exit 42' returned a non-zero code: 42")
    quiet = builder.run("build", "-q", "--network", "none", str(ctx), check=False)
    assert "  line 3" in quiet.stderr and quiet.returncode == 1  # -q: the tail, then why
    assert builder.ids() == []


def test_interrupted_build_leaves_nothing(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": "FROM busybox\nCOPY big /big\n"
                                                       "RUN sleep 60\n",
                                          "big": "x" * 100000})
    env = {**builder.env(), "TOMATO_NO_FORKSERVER": "1"}
    proc = subprocess.Popen([TOMATO, "build", "-t", "interrupted", "--network", "none",
                             "--progress", "plain", str(ctx)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert until(lambda: builder.run("ps", "-q").stdout.strip() != "", 30)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "interrupted:latest" not in builder.tags()
    assert builder.ids() == []
    _nothing_in_scratch(builder)  # (the leak check after the test: no mount, cgroup...)
