"""The layer cache: an unchanged step is not run again ("CACHED"), a changed file
reruns its COPY and what follows only, --no-cache bypasses it, .dockerignore'd
files never bust it, and `builder prune` / `system df` show and free it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .conftest import Builder, write_context

DOCKERFILE = """\
FROM busybox AS base
ENV APP=/app
COPY first/ /app/first/
RUN ls /app/first > /app/listing
COPY second/ /app/second/
RUN cat /app/second/* > /app/joined
FROM busybox
COPY --from=base /app/joined /joined
CMD ["cat", "/joined"]
"""


def _steps(output: str) -> dict[str, str]:
    """Plain progress: each step's text -> "CACHED" or "RAN"."""
    steps: dict[str, str] = {}
    current = ""
    for line in output.splitlines():
        m = re.match(r"^#(\d+) \[[^\]]+\] (.*)$", line)
        if m:
            current = m.group(2)
            steps[current] = "RAN"
        elif current and line.endswith(" CACHED"):
            steps[current] = "CACHED"
    return steps


def _context(workdir: Path) -> Path:
    return write_context(workdir / "ctx", {"Dockerfile": DOCKERFILE, "first/a": "a\n",
                                           "first/b": "b\n", "second/c": "c\n",
                                           "second/d": "d\n", "second/junk.tmp": "junk\n",
                                           ".dockerignore": "**/*.tmp\n"})


def test_hits_misses_and_no_cache(builder: Builder, workdir: Path) -> None:
    ctx = _context(workdir)
    first = builder.build(ctx, "-t", "cached", "--network", "none")
    image = builder.inspect("cached")["Id"]
    assert "CACHED" not in first.stderr
    again = _steps(builder.build(ctx, "-t", "cached", "--network", "none").stderr)
    assert [v for k, v in again.items() if not k.startswith("FROM")] == ["CACHED"] * 7
    assert builder.inspect("cached")["Id"] == image  # the very same image
    # a file's contents change: its COPY and every step after it run again
    (ctx / "second" / "c").write_text("c changed\n")
    changed = _steps(builder.build(ctx, "-t", "cached", "--network", "none").stderr)
    assert changed == {"FROM busybox AS base": "RAN", "ENV APP=/app": "CACHED",
                       "COPY first/ /app/first/": "CACHED",
                       "RUN ls /app/first > /app/listing": "CACHED",
                       "COPY second/ /app/second/": "RAN",
                       "RUN cat /app/second/* > /app/joined": "RAN", "FROM busybox": "RAN",
                       "COPY --from=base /app/joined /joined": "RAN",
                       'CMD ["cat", "/joined"]': "RAN"}
    assert builder.run("run", "--rm", "--network", "none", "cached").stdout == \
        "c changed\nd\n"
    # times alone (touch) do not bust the cache, as Docker's; nor an ignored file
    os.utime(ctx / "first" / "a", (1, 1))
    (ctx / "second" / "junk.tmp").write_text("other junk\n")
    touched = _steps(builder.build(ctx, "-t", "cached", "--network", "none").stderr)
    assert list(touched.values()).count("RAN") == 2  # the two FROMs
    # --no-cache runs everything again
    fresh = _steps(builder.build(ctx, "--no-cache", "--network", "none").stderr)
    assert "CACHED" not in fresh.values()


def test_build_args_and_moved_lines(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": "FROM busybox\nARG V=1\n"
                                                       "RUN echo $V > /v\n"})
    builder.build(ctx, "--network", "none")
    hit = _steps(builder.build(ctx, "--network", "none", "--build-arg", "V=1").stderr)
    assert hit["RUN echo $V > /v"] == "CACHED"
    miss = _steps(builder.build(ctx, "--network", "none", "--build-arg", "V=2").stderr)
    assert miss["RUN echo $V > /v"] == "RAN"
    (ctx / "Dockerfile").write_text("# a comment moves every line\n\nFROM busybox\nARG V=1\n"
                                    "RUN echo $V > /v\n")
    moved = _steps(builder.build(ctx, "--network", "none").stderr)
    assert moved["RUN echo $V > /v"] == "CACHED"


def test_dockerignore_keeps_files_out(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
        ".dockerignore": "# comment\n*.md\n!KEEP.md\nsecrets/\n**/cache\nDockerfile\n",
        "README.md": "r", "KEEP.md": "k", "secrets/key": "s", "src/a.py": "a",
        "src/deep/cache/x": "x", "src/deep/other": "o"})
    builder.build(ctx, "-t", "ignoring", "--network", "none")
    found = builder.run("run", "--rm", "--network", "none", "ignoring", "find", "/ctx").stdout
    assert sorted(found.split()) == ["/ctx", "/ctx/.dockerignore", "/ctx/KEEP.md", "/ctx/src",
                                     "/ctx/src/a.py", "/ctx/src/deep", "/ctx/src/deep/other"]


def test_builder_prune_and_system_df(builder: Builder, workdir: Path) -> None:
    ctx = write_context(workdir / "ctx", {"Dockerfile": "FROM busybox\n"
                                                       "RUN head -c 300000 /dev/zero > /z\n"
                                                       "RUN echo two > /two\n"})
    builder.build(ctx, "-t", "prunable", "--network", "none")
    df = builder.run("system", "df", "--format", "json").stdout
    assert "Build Cache" in [json.loads(line)["Type"] for line in df.splitlines()]
    listed = builder.run("images", "--format", "{{.ID}}").stdout.split()
    every = builder.run("images", "-a", "--format", "{{.ID}}").stdout.split()
    assert len(every) > len(listed)  # the steps' images are listed with -a only
    untagged = builder.run("build", "-q", "--network", "none", "-", input="FROM busybox\n"
                           "ENV UNTAGGED=1\n").stdout.strip()
    assert untagged[7:19] in builder.run("images", "--format", "{{.ID}}").stdout  # <none>
    builder.run("rmi", "prunable")
    out = builder.run("builder", "prune", "-f").stdout
    assert "Total reclaimed space:" in out and "Deleted build cache objects:" in out
    again = _steps(builder.build(ctx, "--network", "none").stderr)
    assert "CACHED" not in again.values()


def test_dockerignore_exception_below_an_excluded_directory(builder: Builder,
                                                            workdir: Path) -> None:
    """Docker's rule: `logs` excludes the directory, `!logs/keep.txt` brings one file of
    it back (the walk must look inside what it excluded); without an exception an
    excluded directory is never walked, and nothing of it is copied."""
    ctx = write_context(workdir / "ign", {
        "Dockerfile": "FROM busybox\nCOPY . /ctx/\nCMD [\"find\", \"/ctx\"]\n",
        "logs/keep.txt": "keep\n", "logs/drop.txt": "drop\n", "logs/deep/x.txt": "x\n",
        "cache/a": "a\n", "src/main.txt": "main\n",
        ".dockerignore": "logs\ncache\n!logs/keep.txt\n"})
    builder.build(ctx, "-t", "ignored", "--network", "none")
    found = set(builder.run("run", "--rm", "--network", "none", "ignored").stdout.split())
    assert {"/ctx/logs/keep.txt", "/ctx/src/main.txt"} <= found
    assert not found & {"/ctx/logs/drop.txt", "/ctx/logs/deep", "/ctx/logs/deep/x.txt",
                        "/ctx/cache", "/ctx/cache/a"}
    builder.run("rmi", "ignored")
