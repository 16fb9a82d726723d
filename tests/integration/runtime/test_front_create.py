"""`create` and `run` in the front end: which ones are ordinary (front/create_check.c).

The ordinary ones (the bench's, runc's `spec`, containerd's `ctr run` default, and one
for each thing the front end mirrors) are answered in C (front/create.c; under
TOMATO_RUNTIME_FRONT_ONLY=1 a hand-over would exit 3), but for the few create.c still
leaves to Python, which the hand-over names; the ones that are not ordinary are handed
over naming the member; and hostile config.json files are handed over, never a crash,
and answered as Python answers them.  test_front_create_run.py compares the answers
of C and Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .rt import RUNTIME
from .rt_extra import ConsoleListener, cid

FRONT = Path(RUNTIME).parent / "tomato-runtime-front"
pytestmark = pytest.mark.skipif(not FRONT.exists(),
                                reason="tomato-runtime-front is not installed (no C compiler?)")

C = cid("fc")


def call(root: Path, *args: str, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[bytes]:
    # files, not pipes: a container Python creates inherits them
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([RUNTIME, "--root", str(root), *args], stdout=out, stderr=err,
                              stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                              timeout=60)
        out.seek(0)
        err.seek(0)
        proc.stdout, proc.stderr = out.read(), err.read()
    return proc


def front_only(root: Path, *args: str) -> bytes:
    """The hand-over's words (FRONT_ONLY: exit 3, nothing made)."""
    proc = call(root, *args, env={"TOMATO_RUNTIME_FRONT_ONLY": "1"})
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith(b"tomato-runtime-front: handed over to Python"), proc.stderr
    assert proc.stderr.count(b"\n") == 1, proc.stderr
    assert not any(root.iterdir()), list(root.iterdir())  # nothing was made
    return proc.stderr


def _runc_spec(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    subprocess.run(["runc", "spec"], cwd=tmp, check=True)
    out: dict[str, Any] = json.loads((tmp / "config.json").read_text())
    out["process"]["terminal"] = False
    return out


def _ctr_default(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    if shutil.which("ctr") is None:
        pytest.skip("ctr is not installed")
    out: dict[str, Any] = json.loads(subprocess.run(["ctr", "oci", "spec"], check=True,
                                                    capture_output=True).stdout)
    out["process"]["args"] = ["/bin/true"]  # what `ctr run IMAGE ID /bin/true` adds
    return out


def _set(path: str, value: Any) -> Callable[[dict[str, Any], Path], dict[str, Any]]:
    """A change of the bench's config: PATH (dotted) set to VALUE."""
    def change(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
        return spec
    return change


def _add_mount(mount: dict[str, Any]) -> Callable[[dict[str, Any], Path], dict[str, Any]]:
    def change(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
        spec["mounts"].append(mount)
        return spec
    return change


def _joined(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """CRI's app container: the sandbox's net, ipc and uts joined by path (the holder
    test_ordinary_configs_are_pythons_too made, else pid 1's: only looked at)."""
    holder = tmp / "holder.pid"
    pid = holder.read_text() if holder.exists() else "1"
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] in ("network", "ipc", "uts"):
            ns["path"] = f"/proc/{pid}/ns/{'net' if ns['type'] == 'network' else ns['type']}"
    return spec


def _without_mount_ns(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"]
                                   if n["type"] != "mount"]
    return spec


def _same(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    return spec


#: name -> (change of the bench's config, extra create flags)
ORDINARY_CASES: dict[str, tuple[Callable[[dict[str, Any], Path], dict[str, Any]],
                                tuple[str, ...]]] = {
    "the bench's (tomato's default_spec)": (_same, ()),
    "runc spec": (_runc_spec, ()),
    "ctr run's default": (_ctr_default, ()),
    "bind ro": (_add_mount({"destination": "/mnt", "type": "bind", "source": "/etc",
                            "options": ["rbind", "ro", "nosuid"]}), ()),
    "bind rw, no type": (_add_mount({"destination": "/mnt", "source": "/tmp",
                                     "options": ["bind", "rw", "rprivate"]}), ()),
    "tmpfs with options": (_add_mount({"destination": "/scratch", "type": "tmpfs",
                                       "source": "tmpfs",
                                       "options": ["nosuid", "nodev", "mode=1777",
                                                   "size=65536k"]}), ()),
    "devices": (_set("linux.devices", [{"path": "/dev/fuse", "type": "c", "major": 10,
                                        "minor": 229, "fileMode": 438, "uid": 0,
                                        "gid": 0}]), ()),
    "readonly root": (_set("root.readonly", True), ()),
    "rlimits": (_set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 512,
                                          "hard": 1024}]), ()),
    "caps": (_set("process.capabilities", {"bounding": ["CAP_KILL"],
                                           "effective": ["CAP_KILL"],
                                           "permitted": ["CAP_KILL"]}), ()),
    "uid, gid, groups, umask": (_set("process.user", {"uid": 1000, "gid": 1000, "umask": 18,
                                                   "additionalGids": [5, 6]}), ()),
    "hostname": (_set("hostname", "box"), ()),
    "sysctl": (_set("linux.sysctl", {"net.ipv4.ip_forward": "1"}), ()),
    "masked and readonly paths": (_set("linux.maskedPaths", ["/proc/kcore"]), ()),
    "resources": (_set("linux.resources", {
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
        "memory": {"limit": 67108864}, "cpu": {"shares": 512, "quota": 50000,
                                               "period": 100000, "cpus": "0"},
        "pids": {"limit": 64}}), ()),
    "joined namespaces": (_joined, ()),
    "console socket": (_set("process.terminal", True), ("--console-socket", "{dir}/c.sock")),
    "--pid-file --no-pivot --preserve-fds": (_same, ("--pid-file", "{dir}/pid", "--no-pivot",
                                                     "--preserve-fds", "2")),
    "oomScoreAdj, noNewPrivileges, cwd, env": (_set("process.oomScoreAdj", 100), ()),
    "empty hooks": (_set("hooks", {"prestart": [], "poststop": None}), ()),
}

#: name -> (change, flags, the member the hand-over names)
PYTHONS_CASES: dict[str, tuple[Callable[[dict[str, Any], Path], dict[str, Any]],
                               tuple[str, ...], str]] = {
    "seccomp not compiled yet": (_set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW"}),
                                 (), "linux.seccomp (not compiled yet)"),
    "seccomp not an object": (_set("linux.seccomp", ["SCMP_ACT_ALLOW"]), (), "linux.seccomp"),
    "user namespace": (_set("linux.namespaces", [{"type": "mount"}, {"type": "user"}]), (),
                       "linux.namespaces[].type"),
    "time namespace": (_set("linux.namespaces", [{"type": "mount"}, {"type": "time"}]), (),
                       "linux.namespaces[].type"),
    "no mount namespace": (_without_mount_ns, (), "linux.namespaces (no mount namespace)"),
    "a hook": (_set("hooks", {"prestart": [{"path": "/bin/true"}]}), (), "hooks"),
    "an unknown hook kind": (_set("hooks", {"later": []}), (), "hooks"),
    "unknown member": (_set("evil", 1), (), "evil"),
    "apparmor": (_set("process.apparmorProfile", "x"), (), "process"),
    "scheduler": (_set("process.scheduler", {"policy": "SCHED_OTHER"}), (), "process"),
    "timeOffsets": (_set("linux.timeOffsets", {}), (), "linux.timeOffsets"),
    "mountLabel": (_set("linux.mountLabel", "x"), (), "linux.mountLabel"),
    "idmapped mount": (_add_mount({"destination": "/mnt", "type": "bind", "source": "/tmp",
                                   "options": ["rbind", "idmap"]}), (), "mounts[].options"),
    "overlay mount": (_add_mount({"destination": "/mnt", "type": "overlay",
                                  "source": "overlay"}), (), "mounts[].type"),
    "blockIO": (_set("linux.resources", {"blockIO": {"weight": 100}}), (), "linux.resources"),
    "intelRdt": (_set("linux.intelRdt", {"closID": "x"}), (), "linux.intelRdt"),
    "memory swappiness": (_set("linux.resources", {"memory": {"swappiness": 10}}), (),
                          "linux.resources.memory.swappiness"),
    "systemd's cgroupsPath": (_set("linux.cgroupsPath", "system.slice:t:x"), (),
                              "linux.cgroupsPath"),
    "terminal, no socket": (_set("process.terminal", True), (),
                            "process.terminal without --console-socket"),
    "unknown flag": (_same, ("--bogus",), "flags"),
    "args not a list": (_set("process.args", "true"), (), "process"),
}


def _write(bundle: Path, change: Callable[[dict[str, Any], Path], dict[str, Any]],
           tmp: Path) -> None:
    from tomato.oci.defaults import default_spec

    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    (bundle / "config.json").write_text(json.dumps(change(spec, tmp)))


def _flags(flags: tuple[str, ...], workdir: Path) -> list[str]:
    return [f.replace("{dir}", str(workdir)) for f in flags]


#: ordinary configs create.c still leaves to Python (before anything is made), and why
LEFT_TO_PYTHON = {
    "--pid-file --no-pivot --preserve-fds": "--no-pivot, or a caller in a user namespace",
}


class _Holder:
    """Namespaces of our own to join (never the host's: the configs set a hostname), and
    a console socket's listener when the flags name one."""

    def __init__(self, tmp: Path, workdir: Path, flags: tuple[str, ...]) -> None:
        self.proc = subprocess.Popen(["unshare", "--net", "--ipc", "--uts", "sleep", "600"])
        self.listener = ConsoleListener(workdir / "c.sock") if "--console-socket" in flags \
            else None
        for _ in range(500):  # until sleep runs in them (bounded)
            if os.readlink(f"/proc/{self.proc.pid}/ns/uts") != os.readlink("/proc/self/ns/uts"):
                break
            time.sleep(0.01)
        (tmp / "holder.pid").write_text(str(self.proc.pid))

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        self.proc.kill()
        self.proc.wait()


@pytest.mark.parametrize("name", ORDINARY_CASES)
def test_ordinary_creates(root: Path, bundle: Path, workdir: Path, name: str) -> None:
    """Answered in C (FRONT_ONLY: a hand-over would exit 3), or, for the few create.c
    leaves to Python, handed over before anything is made, saying why."""
    change, flags = ORDINARY_CASES[name]
    tmp = workdir / "spec"
    tmp.mkdir()
    holder = _Holder(tmp, workdir, flags)
    try:
        _write(bundle, change, tmp)
        for verb in (["create"], ["run", "-d"], ["run", "--keep"]):
            args = [*verb, "--bundle", str(bundle), *_flags(flags, workdir), C]
            if name in LEFT_TO_PYTHON:
                said = front_only(root, *args)
                assert said.endswith(f": {LEFT_TO_PYTHON[name]}\n".encode()), (verb, said)
                continue
            proc = call(root, *args, env={"TOMATO_RUNTIME_FRONT_ONLY": "1"})
            assert (proc.returncode, proc.stderr) == (0, b""), (verb, proc.stderr)
            assert (root / C / "state.json").exists()
            assert call(root, "delete", "--force", C).returncode == 0
    finally:
        call(root, "delete", "--force", C)
        holder.close()


@pytest.mark.parametrize("name", ORDINARY_CASES)
def test_ordinary_configs_are_pythons_too(root: Path, bundle: Path, workdir: Path,
                                          name: str) -> None:
    """What the front end calls ordinary Python creates (so create.c, mirroring it, has
    no refusal of Python's to word for these)."""
    change, flags = ORDINARY_CASES[name]
    tmp = workdir / "spec"
    tmp.mkdir()
    holder = _Holder(tmp, workdir, flags)
    try:
        _write(bundle, change, tmp)
        proc = call(root, "create", "--bundle", str(bundle), *_flags(flags, workdir), C,
                    env={"TOMATO_RUNTIME_PYTHON": "1"})
        assert proc.returncode == 0, proc.stderr
    finally:
        call(root, "delete", "--force", C)
        holder.close()


@pytest.mark.parametrize("name", PYTHONS_CASES)
def test_what_create_hands_to_python(root: Path, bundle: Path, workdir: Path,
                                     name: str) -> None:
    change, flags, member = PYTHONS_CASES[name]
    tmp = workdir / "spec"
    tmp.mkdir()
    _write(bundle, change, tmp)
    said = front_only(root, "create", "--bundle", str(bundle), *flags, C)
    assert said.endswith(b": " + member.encode() + b"\n"), said


def test_an_existing_container_is_pythons(root: Path, bundle: Path, workdir: Path) -> None:
    _write(bundle, _same, workdir)
    (root / C).mkdir()
    proc = call(root, "create", "--bundle", str(bundle), C,
                env={"TOMATO_RUNTIME_FRONT_ONLY": "1"})
    assert proc.returncode == 3 and proc.stderr.endswith(b": the container exists\n")
    (root / C).rmdir()


#: config.json files Python refuses: handed over, never a crash, Python's answer.
HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "truncated": b'{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"ar',
    "not an object": b"[1, 2]",
    "null": b"null",
    "deep": b"[" * 100000 + b"]" * 100000,
    "deep object": b'{"a":' * 50000 + b"1" + b"}" * 50000,
    "non-UTF-8": b'{"ociVersion": "1.0.2", "root": {"path": "\xff\xfe"}}',
    "lone surrogate": b'{"ociVersion": "1.0.2", "root": {"path": "\\ud800"}}',
    "NaN": b'{"ociVersion": NaN}',
    "wrong types": json.dumps({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                               "process": {"args": ["true"]}, "mounts": {"a": 1}}).encode(),
    "ociVersion 2": json.dumps({"ociVersion": "2.0", "root": {"path": "rootfs"}}).encode(),
    "huge": json.dumps({"ociVersion": "1.0.2", "root": {"path": 1},
                        "annotations": {f"k{i}": "v" * 100 for i in range(60000)}}).encode(),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_configs(root: Path, bundle: Path, name: str) -> None:
    (bundle / "config.json").write_bytes(HOSTILE[name])
    front_only(root, "create", "--bundle", str(bundle), C)
    as_installed = call(root, "create", "--bundle", str(bundle), C)
    python = call(root, "create", "--bundle", str(bundle), C,
                  env={"TOMATO_RUNTIME_PYTHON": "1"})
    assert (as_installed.returncode, as_installed.stdout, as_installed.stderr) == \
        (python.returncode, python.stdout, python.stderr)
    assert python.returncode == 1, python.stderr
    assert b"Traceback" not in python.stderr and python.stderr.count(b"\n") == 1
    assert not any(root.iterdir())
