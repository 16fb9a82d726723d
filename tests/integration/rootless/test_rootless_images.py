"""Images as an ordinary user: layers unpacked inside the user's namespace, so their
owners land mapped (uid N in a layer is sub_start + N - 1 on disk), device nodes
skipped (podman's rootless way), whiteouts and opaque directories kept; pull from
a local registry, save/load, build."""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.registry import Entry, Registry, make_tar, need, raw_push
from helpers.rootless import RootlessUser


@pytest.fixture
def registry(workdir: Path) -> Iterator[Registry]:
    need("docker-registry")
    with Registry(Path(tempfile.mkdtemp(prefix="registry-", dir=workdir))) as reg:
        yield reg


def _mapped_files(u: RootlessUser, name: str) -> list[Path]:
    return list((u.data_root / "snapshots").glob(f"**/fs/{name}"))


def test_pulled_layers_land_mapped(user: RootlessUser, busybox_tar: Path,
                                   registry: Registry) -> None:
    base = busybox_tar.read_bytes()
    top = make_tar([
        Entry("srv/", tarfile.DIRTYPE, mode=0o755, uid=33, gid=33),
        Entry("srv/www", data=b"web\n", uid=33, gid=33),
        Entry("srv/nobody", data=b"n\n", uid=65534, gid=65534),
        Entry("dev/", tarfile.DIRTYPE, mode=0o755),
        Entry("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        Entry("etc/.wh.hostname"),  # a whiteout
        Entry("opt/", tarfile.DIRTYPE, mode=0o755),
        Entry("opt/.wh..wh..opq"),  # an opaque directory
        Entry("opt/only", data=b"o\n"),
    ])
    lower = make_tar([Entry("opt/", tarfile.DIRTYPE, mode=0o755),
                      Entry("opt/hidden", data=b"h\n"),
                      Entry("etc/", tarfile.DIRTYPE, mode=0o755),
                      Entry("etc/hostname", data=b"x\n")])
    raw_push(registry, "mapped", "latest", [base, lower, top])
    u = user
    ref = f"{registry.addr}/mapped:latest"
    u.tomato("--insecure-registry", registry.addr, "pull", ref)
    www = _mapped_files(u, "srv/www")
    assert len(www) == 1
    assert (www[0].stat().st_uid, www[0].stat().st_gid) == (u.sub_start + 32,) * 2
    nobody = _mapped_files(u, "srv/nobody")[0]
    assert nobody.stat().st_uid == u.sub_start + 65533
    assert not _mapped_files(u, "dev/null")  # skipped: a user may not mknod
    out = u.tomato("run", "--rm", "--network", "none", ref, "sh", "-c",
                   "stat -c '%u %g' /srv/www /srv/nobody; ls /opt").stdout
    assert out.splitlines() == ["33 33", "65534 65534", "only"]
    images = u.tomato("images").stdout
    assert f"{registry.addr}/mapped" in images


def test_save_load_build(busybox_user: RootlessUser, workdir: Path) -> None:
    u = busybox_user
    context = u.home / "ctx"
    u.sh(f"mkdir {context} && printf 'FROM busybox\\nRUN mkdir /d && touch /d/a /gone && "
         f"chown 33 /d/a\\nRUN rm /gone && rm -rf /d && mkdir /d && touch /d/b\\n"
         f"CMD ls /d\\n' > {context}/Dockerfile")
    built = u.tomato("build", "--network", "none", "-t", "built:1", str(context))
    assert "naming to built:1" in built.stdout + built.stderr
    assert u.tomato("run", "--rm", "--network", "none", "built:1").stdout == "b\n"
    archive = u.home / "built.tar"
    u.tomato("save", "-o", str(archive), "built:1")
    u.tomato("rmi", "built:1")
    u.tomato("builder", "prune", "-f")
    assert u.tomato("load", "-i", str(archive)).stdout == "Loaded image: built:1\n"
    out = u.tomato("run", "--rm", "--network", "none", "built:1", "sh", "-c",
                   "ls /d; test -e /gone || echo gone").stdout
    assert out == "b\ngone\n"
