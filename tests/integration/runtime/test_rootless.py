"""`spec --rootless` + `run` as an unprivileged user: a user namespace maps the
user to root inside; cgroups are skipped with a warning."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "tomato-rootless"
SYSTEM_PYTHON = "/usr/bin/python3"
SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture
def rootless_user() -> Iterator[pwd.struct_passwd]:
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip(f"the unprivileged user needs an interpreter it can run: {SYSTEM_PYTHON}")
    made = False
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", USER],
                       check=True)
        made = True
    try:
        yield pwd.getpwnam(USER)
    finally:
        if made:
            subprocess.run(["userdel", USER], check=False)


def _as_user(user: pwd.struct_passwd, src: Path, *args: str,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    code = (f"import sys; sys.path.insert(0, {str(src)!r}); "
            "from tomato.cli.runtime import main; sys.exit(main())")
    argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            "--reset-env", SYSTEM_PYTHON, "-I", "-c", code, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(src.parent)})
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}): {proc.stderr}")
    return proc


def test_rootless_run_as_unprivileged_user(rootless_user: pwd.struct_passwd, workdir: Path,
                                           busybox_rootfs: Path) -> None:
    # Everything the user touches is the user's own and readable: a copy of the
    # sources (the checkout may live under a private home) and the bundle.
    src = workdir / "src"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    bundle = workdir / "bundle"
    bundle.mkdir()
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(bundle / "rootfs")], check=True)
    subprocess.run(["chown", "-R", f"{rootless_user.pw_uid}:{rootless_user.pw_gid}",
                    str(workdir)], check=True)
    os.chmod(workdir, 0o755)
    _as_user(rootless_user, src, "spec", "--rootless", "--bundle", str(bundle))
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": rootless_user.pw_uid,
                                            "size": 1}]
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; echo $$; "
                              "touch /tmp/made-inside"]
    cfg["root"]["readonly"] = False
    (bundle / "config.json").write_text(json.dumps(cfg))
    proc = _as_user(rootless_user, src, "--root", str(workdir / "state"), "run", "--bundle",
                    str(bundle), "rl1")
    lines = proc.stdout.split("\n")
    assert lines[0] == "0"  # root inside
    assert lines[1].split() == ["0", str(rootless_user.pw_uid), "1"]
    assert lines[2] == "1"
    assert "cgroups are not set up" in proc.stderr
    # Root inside is the unprivileged user outside.
    made = bundle / "rootfs" / "tmp" / "made-inside"
    assert made.stat().st_uid == rootless_user.pw_uid
    assert not (workdir / "state" / "rl1").exists()


def test_rootless_mapping_beyond_subuid_is_refused(rootless_user: pwd.struct_passwd,
                                                   workdir: Path, busybox_rootfs: Path) -> None:
    src = workdir / "src"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    bundle = workdir / "bundle"
    bundle.mkdir()
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(bundle / "rootfs")], check=True)
    subprocess.run(["chown", "-R", f"{rootless_user.pw_uid}:{rootless_user.pw_gid}",
                    str(workdir)], check=True)
    _as_user(rootless_user, src, "spec", "--rootless", "--bundle", str(bundle))
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    (bundle / "config.json").write_text(json.dumps(cfg))
    proc = _as_user(rootless_user, src, "--root", str(workdir / "state"), "run", "--bundle",
                    str(bundle), "rl2", check=False)
    assert proc.returncode == 1
    # (run from a copy of the sources, nothing installed: the runtime also warns that
    # tomato-dmz is missing, and rightly so)
    said = [line for line in proc.stderr.strip().splitlines() if "tomato-dmz" not in line]
    assert "/etc/subuid" in proc.stderr and len(said) <= 2, proc.stderr
    assert not (workdir / "state" / "rl2").exists()


def test_rootless_overlay_inside_the_user_namespace(rootless_user: pwd.struct_passwd,
                                                    workdir: Path, busybox_rootfs: Path) -> None:
    """overlayfs mounted by root of a user namespace (kernels >= 5.11 allow it)."""
    src = workdir / "src"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    bundle = workdir / "bundle"
    bundle.mkdir()
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(bundle / "rootfs")], check=True)
    layers = workdir / "layers"
    for d in ("lower", "upper", "work"):
        (layers / d).mkdir(parents=True)
    (layers / "lower" / "a.txt").write_text("from the lower layer\n")
    subprocess.run(["chown", "-R", f"{rootless_user.pw_uid}:{rootless_user.pw_gid}",
                    str(workdir)], check=True)
    _as_user(rootless_user, src, "spec", "--rootless", "--bundle", str(bundle))
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["root"]["readonly"] = False
    cfg["mounts"].append({"destination": "/merged", "type": "overlay", "source": "overlay",
                          "options": [f"lowerdir={layers / 'lower'}",
                                      f"upperdir={layers / 'upper'}",
                                      f"workdir={layers / 'work'}"]})
    cfg["process"]["args"] = ["sh", "-c", "cat /merged/a.txt; echo new > /merged/b.txt"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    proc = _as_user(rootless_user, src, "--root", str(workdir / "state"), "run", "--bundle",
                    str(bundle), "rl3", check=False)
    if proc.returncode != 0 and "overlay" in proc.stderr and "not permitted" in proc.stderr:
        pytest.skip(f"this kernel refuses overlayfs in a user namespace: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "from the lower layer\n"
    assert (layers / "upper" / "b.txt").read_text() == "new\n"  # copy-on-write upward
    assert not (layers / "lower" / "b.txt").exists()
