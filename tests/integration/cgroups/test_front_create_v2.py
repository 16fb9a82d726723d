"""create and run in C on a cgroup v2 host (front/create_cgroup2.c), and in Python, alike.

Runs where the hierarchy is pure cgroup2 (the KVM guest of tools/cgroup2-vm; the
development machine is v1 hybrid: skipped there).  The guest runs Debian's python3 on
the project's source, so the test puts the tree's tomato-runtime-front and tomato-dmz
(built by scripts/install.sh on the host) beside a launcher of its own, as install.sh
does.  Each case runs both ways -- "front" (TOMATO_RUNTIME_FRONT_ONLY=1: a hand-over
would exit 3) and "python" (TOMATO_RUNTIME_PYTHON=1) -- and compares the answers, the
state record, the v2 files written (cpu.weight, cpu.max, memory.max, memory.swap.max,
memory.low, pids.max), what the device program lets the container open, and that
nothing is left after delete or a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[3]
BUILT = PROJECT / ".venv" / "bin"
V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
pytestmark = [
    pytest.mark.skipif(not V2, reason="a pure cgroup v2 host only (tools/cgroup2-vm)"),
    pytest.mark.skipif(not (BUILT / "tomato-runtime-front").exists() or os.geteuid() != 0,
                       reason="tomato-runtime-front is not built (scripts/install.sh), or "
                              "not root"),
]
PATHS = {"front": {"TOMATO_RUNTIME_FRONT_ONLY": "1"}, "python": {"TOMATO_RUNTIME_PYTHON": "1"}}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A launcher whose interpreter is the tree's front end, Python beside it, tomato on
    its site-packages path (what install.sh makes of a venv)."""
    prefix = tmp_path_factory.mktemp("rt")
    bin_dir = prefix / "bin"
    bin_dir.mkdir()
    site = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / \
        "site-packages"
    site.mkdir(parents=True)
    (site / "tomato").symlink_to(PROJECT / "src" / "tomato")
    for name in ("tomato-runtime-front", "tomato-dmz"):
        shutil.copy2(BUILT / name, bin_dir / name)
    (bin_dir / "python3").symlink_to(sys.executable)
    launcher = (BUILT / "tomato-runtime").read_text().split("\n", 1)[1]
    (bin_dir / "tomato-runtime").write_text(f"#!{bin_dir / 'tomato-runtime-front'}\n{launcher}")
    (bin_dir / "tomato-runtime").chmod(0o755)
    return bin_dir / "tomato-runtime"


def _root_is_initramfs() -> bool:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/" and fields[fields.index("-") + 1] == "rootfs":
                return True
    return False


#: pivot_root cannot leave the initial rootfs (the guest's "/"), and the C init always
#: pivots (--no-pivot is Python's): there, each call runs chrooted into a bind of "/" in
#: a mount namespace of its own, a root pivot_root can leave (both ways alike).
WRAP = ["unshare", "--mount", "sh", "-c",
        'mount --make-rprivate / && mkdir -p /tmp/.v2root && mount --rbind / /tmp/.v2root '
        '&& cd /tmp/.v2root && exec chroot . "$@"', "sh"] if _root_is_initramfs() else []


def call(runtime: Path, root: Path, *args: str, path: str) -> tuple[int, bytes, bytes]:
    import tempfile

    # files, not pipes: a created container holds them until it execs
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([*WRAP, str(runtime), "--root", str(root), *args], stdout=out,
                              stderr=err, stdin=subprocess.DEVNULL, timeout=120,
                              env={**os.environ, **PATHS[path]})
        out.seek(0)
        err.seek(0)
        proc.stdout, proc.stderr = out.read(), err.read()
    assert b"Traceback" not in proc.stderr, proc.stderr
    if path == "front":
        assert proc.returncode != 3, (args, proc.stderr)  # answered in C
    return proc.returncode, proc.stdout, proc.stderr


def write_config(bundle: Path, fn: Any) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    fn(cfg)
    (bundle / "config.json").write_text(json.dumps(cfg))


FILES = ("cpu.weight", "cpu.max", "memory.max", "memory.swap.max", "memory.low", "pids.max")
#: mknod is allowed ("c *:* m"), opening /dev/mem (c 1:1) is not; /dev/null is
SCRIPT = ("echo x >/dev/null && echo null-ok; mknod /dev/xmem c 1 1 && echo made; "
          "cat /dev/xmem 2>&1 | head -c 60; echo")


def test_create_and_run_on_cgroup_v2(runtime: Path, runtime_root: Path, bundle: Path) -> None:
    parent = f"tomato-test-{uuid.uuid4().hex[:8]}"
    cid = "v2c"

    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["args"] = ["sh", "-c", SCRIPT]
        cfg["process"]["capabilities"] = {k: ["CAP_MKNOD", "CAP_DAC_OVERRIDE"]
                                          for k in ("bounding", "effective", "permitted")}
        cfg["linux"]["cgroupsPath"] = f"/{parent}/{cid}"
        cfg["linux"]["resources"] = {
            "devices": [{"allow": False, "access": "rwm"}],
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
            "pids": {"limit": 64}}

    write_config(bundle, fn)

    def way(path: str) -> Any:
        created = call(runtime, runtime_root, "create", "--bundle", str(bundle), cid, path=path)
        assert created[0] == 0, created
        rec = json.loads((runtime_root / cid / "state.json").read_text())
        cg = rec["cgroup"]
        values = {}
        for name in FILES:
            f = Path(cg["path"], name)
            values[name] = f.read_text() if f.exists() else None
        deleted = call(runtime, runtime_root, "delete", "--force", cid, path=path)
        ran = call(runtime, runtime_root, "run", "--bundle", str(bundle), cid, path=path)
        left = os.path.exists(cg["path"]) or os.path.exists(os.path.dirname(cg["path"]))
        return created, {k: v for k, v in cg.items() if k != "created"}, values, deleted, \
            ran, left

    ways = {p: way(p) for p in PATHS}
    assert ways["front"] == ways["python"]
    created, cg, values, deleted, ran, left = ways["front"]
    assert cg["version"] == 2 and values["pids.max"] == "64\n" and not left
    assert ran[0] == 0 and ran[1].startswith(b"null-ok\nmade\n") and \
        b"Operation not permitted" in ran[1], ran


def test_a_failure_rolls_back_on_cgroup_v2(runtime: Path, runtime_root: Path,
                                           bundle: Path) -> None:
    parent = f"tomato-test-{uuid.uuid4().hex[:8]}"

    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"]["args"] = ["/no/such/program"]
        cfg["linux"]["cgroupsPath"] = f"/{parent}/v2f"
        cfg["linux"]["resources"] = {"pids": {"limit": 10}}

    write_config(bundle, fn)
    ways = {p: call(runtime, runtime_root, "create", "--bundle", str(bundle), "v2f", path=p)
            for p in PATHS}
    assert ways["front"] == ways["python"]
    assert ways["front"][0] == 1
    assert not os.path.exists(f"/sys/fs/cgroup/{parent}")
    assert not (runtime_root / "v2f").exists()
