"""`--explain`, the grouped summary: about a screen for a plain run, every group with its
shell equivalent, short ids, each step printed once whichever process took it; and
`--explain=full`, the every-call trace, still there."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tomato.explain import parse_steps

RUNTIME = str(Path(sys.executable).parent / "tomato-runtime")
HEX64 = re.compile(r"[0-9a-f]{64}")
GROUP = re.compile(r"^\[(\w+)\]\s")


@pytest.fixture
def image(tomato, workdir):
    """A busybox image (static busybox, so the rootfs is one file)."""
    tomato("rootfs", "from-host", "/bin/busybox", "--into", str(workdir / "bb"), "--image",
           "sum-bb")
    yield "sum-bb"
    tomato("rmi", "sum-bb", check=False)


def _groups(text: str) -> list[str]:
    return [m.group(1) for line in text.splitlines() if (m := GROUP.match(line))]


def test_a_plain_run_is_explained_in_a_screen(tomato, image):
    r = tomato("run", "--rm", "--explain", image, "/bin/busybox", "ls", "/", timeout=120)
    out = r.stdout.splitlines()
    assert out == ["bin", "dev", "etc", "proc", "sys", "tmp"]
    lines = r.stderr.splitlines()
    assert len(lines) + len(out) <= 45, r.stderr
    assert _groups(r.stderr) == ["net", "rootfs", "cgroup", "ns", "mounts", "mask", "security",
                                 "exec"]
    assert not HEX64.search(r.stderr), "ids are cut to 12"
    # every group but the program itself says what the shell would do
    starts = [i for i, line in enumerate(lines) if GROUP.match(line)] + [len(lines)]
    for a, b in zip(starts, starts[1:], strict=False):
        name = GROUP.match(lines[a]).group(1)  # type: ignore[union-attr]
        shells = [line for line in lines[a:b] if line.startswith(" " * 11 + "$ ")]
        assert shells or name == "exec", f"[{name}] has no shell line"
    assert lines[-1] == "[exec]     /bin/busybox ls /"
    # what it says is what was made: a veth pair into the pinned netns, the overlay, the
    # caps and seccomp of the container's config
    text = r.stderr
    assert re.search(r"veth pair \S+ ⇄ eth0 \(in NETNS\): [\d.]+/\d+, route default via", text)
    assert "overlay: 1 lowerdir + upperdir on ROOTFS, pivot_root into it" in text
    assert re.search(r"\[security\] caps: 14, seccomp: \d+ rules \(default errno\)", text)
    assert re.search(r"\[ns\]\s+new: mnt uts ipc pid cgroup; joined: net \(NETNS\)", text)


def test_full_is_every_call(tomato, image):
    r = tomato("run", "--rm", "--explain=full", "--network", "none", image, "/bin/busybox",
               "true", timeout=120)
    steps = parse_steps(r.stderr)
    assert len(steps) > 50 and all(shell for _call, shell in steps)
    assert HEX64.search(r.stderr)  # full paths, as the kernel was given them
    assert any(call.startswith("execve(") for call, _shell in steps)
    bad = tomato("run", "--rm", "--explain=most", image, "/bin/busybox", "true", check=False)
    assert bad.returncode == 125 and "Traceback" not in bad.stderr


def test_the_summary_tells_the_limits_in_the_files_they_are(tomato, image):
    r = tomato("run", "-d", "--name", "sum-lim", "--explain", "-m", "32m", "--cpus", "0.5",
               "--network", "none", image, "/bin/busybox", "sleep", "100", timeout=120)
    try:
        cid = r.stdout.strip()
        cgroup = r.stderr.split("[cgroup]", 1)[1].split("\n[", 1)[0]
        assert f"tomato/{cid[:12]} in " in cgroup
        assert "cpu.cfs_quota_us=50000" in cgroup and f"memory.limit_in_bytes={32 << 20}" in \
            cgroup
        # the same files, read by the lab: cgroup get --explain names them
        g = tomato("cgroup", "get", "--explain", "--container", "sum-lim", "-r",
                   "cpu.cfs_quota_us", "-r", "memory.limit_in_bytes")
        assert g.stdout == f"sum-lim:\ncpu.cfs_quota_us: 50000\nmemory.limit_in_bytes: " \
                           f"{32 << 20}\n"
        shells = [line.split("$ cat ", 1)[1] for line in g.stderr.splitlines() if "$ cat " in line]
        assert len(shells) == 2 and all(os.path.isfile(f) for f in shells)
        assert shells[0].endswith(f"/tomato/{cid}/cpu.cfs_quota_us")
        s = tomato("cgroup", "stats", "--explain", "--container", "sum-lim")
        read = [line.split("$ cat ", 1)[1] for line in s.stderr.splitlines() if "$ cat " in line]
        assert any(f.endswith("/memory.limit_in_bytes") for f in read)
        assert all(f"/tomato/{cid}/" in f for f in read)
        # exec: the container's namespaces joined, by one nsenter
        e = tomato("exec", "--explain", "sum-lim", "/bin/busybox", "true")
        assert _groups(e.stderr) == ["ns", "security", "exec"]
        assert re.search(r"\$ nsenter -t \d+ -p -i -u -n -C -m\n", e.stderr)
    finally:
        tomato("rm", "-f", "sum-lim", check=False)


def test_runtime_create_then_start_prints_each_group_once(workdir, image, tomato):
    """create prints what it did (cgroups, the clone) at its exit; the init, which
    inherited those steps, prints only its own at its execve, during start."""
    bundle = workdir / "bundle"
    (bundle).mkdir()
    os.symlink(workdir / "bb", bundle / "rootfs")
    spec = subprocess.run([RUNTIME, "spec", "--bundle", str(bundle)], capture_output=True,
                          text=True)
    assert spec.returncode == 0, spec.stderr
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["args"] = ["/bin/busybox", "echo", "started"]
    cfg["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(cfg))
    root = str(workdir / "state")
    run = [RUNTIME, "--root", root]
    # the init keeps create's stderr until its execve: a file, not a pipe to wait on
    err = workdir / "create.err"
    with open(err, "w") as f:
        created = subprocess.run([*run, "--explain", "create", "--bundle", str(bundle), "sum1"],
                                 stdout=subprocess.DEVNULL, stderr=f, timeout=60,
                                 stdin=subprocess.DEVNULL)
    try:
        assert created.returncode == 0, err.read_text()
        first = err.read_text()
        assert _groups(first) == ["cgroup", "ns"]  # what create itself did
        assert "the init is pid 1 there" in first
        started = subprocess.run([*run, "start", "sum1"], capture_output=True, text=True,
                                 timeout=60)
        assert started.returncode == 0, started.stderr
        for _ in range(200):  # the init writes its groups right before its execve
            if "[exec]" in err.read_text():
                break
            time.sleep(0.02)
        second = err.read_text()[len(first):]
        assert _groups(second) == ["rootfs", "ns", "mounts", "mask", "security", "exec"]
        assert second.endswith("[exec]     /bin/busybox echo started\n")
        assert "[cgroup]" not in second  # create's part, not printed twice
        assert "cloned" not in second and "new: cgroup" in second
    finally:
        subprocess.run([*run, "delete", "--force", "sum1"], capture_output=True, timeout=60)


def test_runtime_run_summary_and_no_explain_no_lines(workdir, image):
    bundle = workdir / "bundle"
    bundle.mkdir()
    os.symlink(workdir / "bb", bundle / "rootfs")
    subprocess.run([RUNTIME, "spec", "--bundle", str(bundle)], check=True)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["args"] = ["/bin/busybox", "echo", "ran"]
    cfg["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(cfg))
    run = [RUNTIME, "--root", str(workdir / "state")]
    r = subprocess.run([*run, "--explain", "run", "--bundle", str(bundle), "sum2"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout == "ran\n", r.stderr
    assert _groups(r.stderr) == ["rootfs", "cgroup", "ns", "mounts", "mask", "security",
                                 "exec"]
    for name in ("rootfs", "cgroup", "ns", "mounts", "mask"):  # each once
        assert r.stderr.count(f"[{name}]") == 1
    quiet = subprocess.run([*run, "run", "--bundle", str(bundle), "sum3"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "ran\n", "")
    bad = subprocess.run([*run, "--explain=all", "run", "--bundle", str(bundle), "sum4"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode == 1 and bad.stderr.startswith("tomato-runtime: --explain=all: ")


def test_lab_commands_explain_in_groups(tomato, lab_group):
    r = tomato("unshare", "--explain", "-p", "-m", "-f", "--mount-proc", "sh", "-c", "echo $$")
    assert r.stdout == "1\n"
    assert r.stderr.splitlines() == [
        "[ns]       new: mnt pid; forked: the child is pid 1 of the new pid namespace",
        "           $ unshare --mount --pid --fork",
        "[mounts]   / rprivate; proc on /proc",
        "           $ mount --make-rprivate / && mount -t proc -o nosuid,nodev,noexec proc /proc",
        "[exec]     sh -c 'echo $$'"]
    g = f"{lab_group}/x"
    r = tomato("cgroup", "create", "--explain", "-g", f"cpu,pids:{g}")
    assert r.stderr.splitlines()[0] == f"[cgroup]   made {lab_group}, {g} in cpu, pids"
    made = [line.split("$ mkdir ", 1)[1] for line in r.stderr.splitlines() if "$ mkdir" in line]
    assert len(made) == 4 and all(os.path.isdir(d) for d in made)
    r = tomato("cgroup", "get", "--explain", "-r", "pids.max", g)
    assert r.stderr.splitlines() == [
        "[cgroup]   pids.max is max",
        f"           $ cat {[d for d in made if d.endswith(g) and '/pids/' in d][0]}/pids.max"]
