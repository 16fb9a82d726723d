"""The build context: a directory, a tar archive (plain or compressed), or stdin
(a tar, or a Dockerfile alone), and the Dockerfile found in it.

A directory is read where it is, pinned as an fd (sources.Tree).  An archive is
hostile input: it is extracted into a scratch directory of the engine's own
(``ROOT/builder/tmp/<id>``) by the engine's extractor -- names cleaned, ``..``
refused, parents never followed through a symlink, hard links only to earlier
entries, no device node made on the host -- and that copy is the context.  A
scratch directory is flock'ed by the build using it; one nobody holds was left by
a killed build and goes with the next build.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tomato._sys.paths import open_in_root
from tomato.build.ignore import Matcher, matcher_from
from tomato.build.sources import Tree
from tomato.errors import InvalidArgument, NotFound

MAX_DOCKERFILE = 16 << 20
MAX_IGNOREFILE = 4 << 20

_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
          b"\x28\xb5\x2f\xfd": "zstd"}


def _rmtree(path: Path) -> None:
    import shutil  # (it imports bz2 and lzma: only when a scratch directory goes)

    shutil.rmtree(path, ignore_errors=True)


def scratch_root(engine_root: Path) -> Path:
    return engine_root / "builder" / "tmp"


@dataclass
class Scratch:
    """A directory of the engine's for one build (flock'ed while in use)."""

    path: Path
    lock_fd: int

    def close(self) -> None:
        _rmtree(self.path)
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


def sweep_scratch(engine_root: Path) -> None:
    """Scratch directories nobody holds (left by killed builds) go."""
    top = scratch_root(engine_root)
    try:
        names = os.listdir(top)
    except FileNotFoundError:
        return
    for name in names:
        path = top / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _rmtree(path)
        os.close(fd)


def make_scratch(engine_root: Path) -> Scratch:
    top = scratch_root(engine_root)
    top.mkdir(parents=True, exist_ok=True, mode=0o700)
    sweep_scratch(engine_root)
    path = top / os.urandom(8).hex()
    path.mkdir(mode=0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return Scratch(path, fd)


def compression_of(head: bytes) -> str:
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return ""


def is_tar(head: bytes) -> bool:
    """Whether ``head`` (at least 512 bytes of a decompressed stream) starts a tar."""
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def decompressed_head(path: str | Path, n: int = 512) -> bytes:
    """The first ``n`` bytes of a file once decompressed (gzip, bzip2 or xz, as the
    archives Docker takes for a context), b"" when it cannot be decompressed."""
    with open(path, "rb") as f:
        raw = f.read(1 << 16)
    kind = compression_of(raw)
    try:
        if kind == "gzip":
            import zlib

            return zlib.decompressobj(47).decompress(raw, n)
        if kind == "bzip2":
            import bz2

            return bz2.BZ2Decompressor().decompress(raw, n)
        if kind == "xz":
            import lzma

            return lzma.LZMADecompressor().decompress(raw, n)
    except (OSError, EOFError, ValueError, Exception):  # noqa: BLE001 — corrupt: not a tar
        return b""
    return b"" if kind else raw[:n]


@dataclass
class Context:
    """The context's tree, its .dockerignore, and the Dockerfile's bytes."""

    tree: Tree
    root_fd: int
    description: str
    dockerfile: bytes = b""
    dockerfile_name: str = "Dockerfile"
    ignore: Matcher = field(default_factory=lambda: matcher_from(""))

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1


def _read_in(root_fd: int, name: str, limit: int) -> bytes | None:
    """A regular file inside the context (resolved inside it), or None if missing."""
    try:
        pinned = open_in_root(root_fd, name, os.O_PATH | os.O_CLOEXEC)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        if err.errno == errno.ELOOP:
            raise InvalidArgument(f"{name}: a symlink loop in the build context") from None
        raise
    try:
        st = os.fstat(pinned)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidArgument(f"{name} in the build context is not a regular file")
        if st.st_size > limit:
            raise InvalidArgument(f"{name} is larger than {limit >> 20} MiB")
        fd = os.open(f"/proc/self/fd/{pinned}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    finally:
        os.close(pinned)
    with os.fdopen(fd, "rb") as f:
        return f.read(limit + 1)[:limit]


def open_directory(path: str, description: str = "") -> Context:
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f'unable to prepare context: path "{path}" not found') from None
    except NotADirectoryError:
        raise InvalidArgument(f'unable to prepare context: "{path}" is not a directory or '
                              "an archive") from None
    except PermissionError as err:
        raise InvalidArgument(f"unable to prepare context: {path}: {err.strerror}") from None
    return Context(Tree(fd), fd, description or path)


def extract_archive(stream: BinaryIO, into: Path) -> None:
    """A context archive (plain or compressed tar) extracted into the scratch ``into``
    (0700, in the engine's root: setuid bits are kept for COPY to copy, as Docker's;
    no device node is made on the host)."""
    from tomato.engine.rootfs_io import ExtractOptions, Extractor, tar_items

    into.mkdir(mode=0o755, exist_ok=True)
    fd = os.open(into, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        opts = ExtractOptions(owner=(0, 0), devices=False, keep_setid=True,
                              no_overwrite_dir_nondir=False)
        try:
            Extractor(fd, opts).extract(tar_items(stream))
        except InvalidArgument as err:
            raise InvalidArgument(f"the build context: {err}") from None
    finally:
        os.close(fd)


@contextmanager
def open_context(engine_root: Path, context: str, stdin: BinaryIO | None = None,
                 dockerfile: str = "", dockerfile_text: bytes | None = None,
                 in_context: bool = False) -> Iterator[Context]:
    """The context ``context`` names: a directory, an archive file, or "-" (``stdin``:
    a tar, or a Dockerfile alone).  ``dockerfile``: where the Dockerfile is (for a
    directory, relative to the caller's cwd as docker's CLI reads -f; in an archive,
    relative to its root, as with ``in_context``); ``dockerfile_text``: given already
    (``-f -``)."""
    scratch: Scratch | None = None
    ctx: Context | None = None
    digests: Path | None = None
    try:
        alone: bytes | None = None
        if context == "-":
            assert stdin is not None
            scratch = make_scratch(engine_root)
            spooled = scratch.path / "stdin"
            with open(spooled, "wb") as out:
                while block := stdin.read(1 << 20):
                    out.write(block)
            if is_tar(decompressed_head(spooled)):
                with open(spooled, "rb") as src:
                    extract_archive(src, scratch.path / "context")
            else:  # a Dockerfile alone: an empty context
                if os.path.getsize(spooled) > MAX_DOCKERFILE:
                    raise InvalidArgument("the Dockerfile read from stdin is larger than "
                                          f"{MAX_DOCKERFILE >> 20} MiB")
                alone = spooled.read_bytes()
                (scratch.path / "context").mkdir()
            os.unlink(spooled)
            ctx = open_directory(str(scratch.path / "context"), "stdin")
        elif os.path.isfile(context):
            head = decompressed_head(context)
            if not is_tar(head):
                raise InvalidArgument(f"unable to prepare context: {context} is neither a "
                                      "directory nor a tar archive")
            scratch = make_scratch(engine_root)
            with open(context, "rb") as src:
                extract_archive(src, scratch.path / "context")
            ctx = open_directory(str(scratch.path / "context"), context)
        else:
            ctx = open_directory(context)
            sweep_scratch(engine_root)
            digests = _digests_path(engine_root, context)
            ctx.tree.known = _load_digests(digests)
        ctx.ignore = _ignore_for(ctx, dockerfile)
        ctx.tree.ignore = ctx.ignore if ctx.ignore else None
        if dockerfile_text is not None:
            ctx.dockerfile, ctx.dockerfile_name = dockerfile_text, "Dockerfile"
        elif alone is not None:
            ctx.dockerfile, ctx.dockerfile_name = alone, "Dockerfile"
        else:
            ctx.dockerfile, ctx.dockerfile_name = _find_dockerfile(
                ctx, dockerfile, in_archive=scratch is not None or in_context)
        yield ctx
    finally:
        if ctx is not None:
            if digests is not None and ctx.tree.seen and ctx.tree.seen != ctx.tree.known:
                _save_digests(digests, ctx.tree.seen)
            ctx.close()
        if scratch is not None:
            scratch.close()


def _digests_path(engine_root: Path, context: str) -> Path:
    """Where the content hashes of a directory context's files are kept between builds
    (one file per context directory, in the engine's own root)."""
    import hashlib

    name = hashlib.sha256(os.path.realpath(context).encode("utf-8", "surrogateescape"))
    return engine_root / "builder" / "digests" / f"{name.hexdigest()}.json"


def _load_digests(path: Path) -> dict[str, list[object]]:
    import json

    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_digests(path: Path, seen: dict[str, list[object]]) -> None:
    """Best effort (a cache): written whole under a temporary name, then renamed."""
    import json

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump(seen, f, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        pass


def _ignore_for(ctx: Context, dockerfile: str) -> Matcher:
    """The Dockerfile's own ``NAME.dockerignore`` if there is one, else .dockerignore."""
    candidates = []
    if dockerfile and dockerfile != "-":
        candidates.append(os.path.basename(dockerfile) + ".dockerignore")
    candidates.append(".dockerignore")
    for name in candidates:
        data = _read_in(ctx.root_fd, name, MAX_IGNOREFILE)
        if data is not None:
            return matcher_from(data.decode("utf-8", "surrogateescape"))
    return matcher_from("")


def _find_dockerfile(ctx: Context, dockerfile: str, in_archive: bool) -> tuple[bytes, str]:
    if dockerfile and not in_archive:  # -f PATH: the caller's path (may be outside)
        try:
            with open(dockerfile, "rb") as f:
                data = f.read(MAX_DOCKERFILE + 1)
        except FileNotFoundError:
            raise NotFound(f"unable to prepare context: the Dockerfile {dockerfile} "
                           "does not exist") from None
        except IsADirectoryError:
            raise InvalidArgument(f"the Dockerfile {dockerfile} is a directory") from None
        except PermissionError as err:
            raise InvalidArgument(f"cannot read the Dockerfile {dockerfile}: "
                                  f"{err.strerror}") from None
        if len(data) > MAX_DOCKERFILE:
            raise InvalidArgument(f"the Dockerfile {dockerfile} is larger than "
                                  f"{MAX_DOCKERFILE >> 20} MiB")
        return data, os.path.basename(dockerfile)
    names = [dockerfile] if dockerfile else ["Dockerfile", "dockerfile"]
    for name in names:
        found = _read_in(ctx.root_fd, name, MAX_DOCKERFILE)
        if found is not None:
            return found, os.path.basename(name)
    raise NotFound(f"cannot locate specified Dockerfile: {names[0]}")


__all__ = ["Context", "Scratch", "open_context", "open_directory", "extract_archive",
           "make_scratch", "sweep_scratch", "is_tar", "decompressed_head", "compression_of"]
