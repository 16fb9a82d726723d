"""`tomato build` against an engine root with the session's busybox image, and
`buildah bud` beside it (its own --root/--runroot under the test storage, the vfs
driver, chroot isolation: the system's storage is never touched) for comparisons.

The package runs in a network namespace of its own: RUN steps default to the
bridge network, and its bridge, veths and nft table stay off the host's."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers.engine import TOMATO, Engine, engine_root_with_busybox

BUILDAH = shutil.which("buildah")
RUN_LEFTOVERS = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")


@pytest.fixture(scope="package", autouse=True)
def own_netns() -> Iterator[None]:
    from helpers.engine import own_network_namespace

    with own_network_namespace():
        yield


@pytest.fixture(scope="package")
def build_root(storage: Path, busybox_rootfs: Path, own_netns: None) -> Path:
    return engine_root_with_busybox(storage / "build-engine", busybox_rootfs)


@dataclass
class Builder(Engine):
    """`tomato` on the build tests' root, with helpers for contexts and images."""

    def build(self, context: Path | str, *args: str, check: bool = True,
              input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run("build", "--progress", "plain", *args, str(context), check=check,
                        input=input, timeout=timeout)

    def config(self, image: str) -> dict[str, Any]:
        return self.inspect(image)["Config"]  # type: ignore[no-any-return]

    def history(self, image: str) -> list[dict[str, Any]]:
        """The image config's history, oldest first (from the content store)."""
        from tomato.engine.config import EngineConfig
        from tomato.engine.stepimages import manifest_of

        doc = manifest_of(EngineConfig(root=self.root), image)
        return list(doc.get("history") or [])

    def tree(self, image: str, workdir: Path) -> dict[str, tuple[Any, ...]]:
        """The image's files, from `tomato save` (see ``archive_tree``)."""
        out = workdir / "tomato-save.tar"
        self.run("save", "-o", str(out), image)
        return archive_tree(out)

    def images(self) -> list[str]:
        return self.run("images", "-aq", "--no-trunc").stdout.split()

    def tags(self) -> list[str]:
        return [line for line in self.run("images", "--format",
                                          "{{.Repository}}:{{.Tag}}").stdout.split()
                if "<none>" not in line]


def archive_tree(path: Path) -> dict[str, tuple[Any, ...]]:
    """The files of the image in a docker-archive, its layers applied in order (whiteouts
    and opaque directories too): path -> (kind, mode, uid, gid, sha256 or link target).
    The same reader for both builders' images: nothing mounted, nothing of either's."""
    tree: dict[str, tuple[Any, ...]] = {}
    with tarfile.open(path) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer_name in manifest[0]["Layers"]:
            blob = outer.extractfile(layer_name)
            assert blob is not None
            with tarfile.open(fileobj=io.BytesIO(blob.read()), mode="r:*") as layer:
                _apply(tree, layer)
    return tree


def _gone(tree: dict[str, tuple[Any, ...]], path: str, keep_self: bool = False) -> None:
    for name in [n for n in tree if n.startswith(path + "/") or (n == path and not keep_self)]:
        del tree[name]


def _apply(tree: dict[str, tuple[Any, ...]], layer: tarfile.TarFile) -> None:
    for m in layer:
        name = "/" + m.name.removeprefix("./").strip("/")
        if name == "/":
            continue
        parent, base = name.rsplit("/", 1)
        if base == ".wh..wh..opq":
            _gone(tree, parent or "/", keep_self=True)
            continue
        if base.startswith(".wh."):
            _gone(tree, f"{parent}/{base[4:]}")
            continue
        if m.isreg():
            f = layer.extractfile(m)
            assert f is not None
            kind, what = "file", hashlib.sha256(f.read()).hexdigest()
        elif m.isdir():
            kind, what = "dir", ""
        elif m.issym():
            kind, what = "link", m.linkname
        elif m.islnk():
            target = "/" + m.linkname.removeprefix("./").strip("/")
            kind, what = "file", tree.get(target, ("", 0, 0, 0, ""))[4]
        else:
            kind, what = "other", f"{m.type!r}"
        if kind != "dir":
            _gone(tree, name)
        tree[name] = (kind, m.mode & 0o7777, m.uid, m.gid, what)


@pytest.fixture
def builder(build_root: Path) -> Iterator[Builder]:
    b = Builder(build_root)
    yield b
    for cid in b.ids():
        b.run("rm", "-f", "-v", cid, check=False)


@dataclass
class Buildah:
    base: Path

    def run(self, *args: str, check: bool = True, cwd: Path | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
        assert BUILDAH is not None
        cmd = [BUILDAH, "--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
               "--storage-driver", "vfs", *args]
        env = {**os.environ, "TMPDIR": str(self.base / "tmp"), "BUILDAH_LAYERS": "true",
               "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"buildah {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
        return proc

    def bud(self, context: Path, tag: str, *args: str) -> None:
        self.run("bud", "--layers", "--isolation", "chroot", "--format", "docker",
                 "--pull-never", "-t", tag, *args, str(context))

    def docker_config(self, image: str) -> dict[str, Any]:
        data = json.loads(self.run("inspect", "--type", "image", image).stdout)
        return data["Docker"]  # type: ignore[no-any-return]

    def tree(self, image: str, workdir: Path) -> dict[str, tuple[Any, ...]]:
        out = workdir / "buildah-push.tar"
        self.run("push", image, f"docker-archive:{out}")
        tree = archive_tree(out)
        for name in RUN_LEFTOVERS:  # what buildah's chroot RUN leaves in a layer, not Docker
            if tree.get(name, ("",))[0] == "file":
                del tree[name]
        return tree


@pytest.fixture(scope="package")
def buildah(storage: Path, build_root: Path) -> Iterator[Buildah]:
    if BUILDAH is None:
        pytest.skip("needs buildah (apt-get install buildah)")
    base = Path(tempfile.mkdtemp(prefix="buildah-", dir=storage))
    (base / "tmp").mkdir()
    archive = base / "busybox.tar"
    subprocess.run([TOMATO, "save", "-o", str(archive), "busybox"], check=True,
                   env={**os.environ, "TOMATO_ROOT": str(build_root)})
    b = Buildah(base)
    b.run("pull", f"docker-archive:{archive}")
    image = b.run("images", "-q").stdout.split()[0]
    b.run("tag", image, "docker.io/library/busybox:latest")
    try:
        yield b
    finally:
        b.run("rm", "--all", check=False)
        b.run("rmi", "--all", "--force", check=False)
        shutil.rmtree(base, ignore_errors=True)


def write_context(path: Path, files: dict[str, str | bytes]) -> Path:
    """A context directory: {relative path: content} (a str or bytes file)."""
    path.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return path
