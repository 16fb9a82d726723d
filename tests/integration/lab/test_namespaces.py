"""`tomato unshare` and `tomato nsenter` agree with util-linux's on the same cases."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

TOMATO = os.path.join(os.path.dirname(sys.executable), "tomato")

pytestmark = pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("nsenter") is None,
                                reason="util-linux's unshare/nsenter are needed to compare")

CASES = [
    ["-p", "-f", "--mount-proc", "sh", "-c", "echo $$; ps -o pid,comm"],
    ["-p", "-m", "-i", "-f", "--mount-proc", "sh", "-c", "echo $$"],
    ["-p", "sh", "-c", 'echo $$ >/dev/null; sh -c "echo \\$\\$"'],
    ["-u", "sh", "-c", "hostname tomato-lab; hostname"],
    ["-r", "sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/setgroups"],
    ["--map-user=1000", "--map-group=1000", "sh", "-c", "id -u; id -g"],
    ["-U", "sh", "-c", "id -u"],
    ["-n", "sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1"],
    ["-C", "sh", "-c", "cat /proc/self/cgroup"],
    ["-i", "-f", "sh", "-c", "exit 3"],
    ["-f", "sh", "-c", "kill -TERM $$"],
    ["-m", "sh", "-c", "grep -c ' / / ' /proc/self/mountinfo"],
    ["-T", "-f", "sh", "-c", "echo time"],
]


@pytest.mark.parametrize("case", CASES, ids=[" ".join(c[:-1])[:40] for c in CASES])
def test_unshare_agrees_with_util_linux(tomato, case):
    real = subprocess.run(["unshare", *case], capture_output=True, text=True, timeout=30)
    ours = tomato("unshare", *case, check=False)
    assert (ours.returncode, ours.stdout) == (real.returncode, real.stdout), ours.stderr


def _readlinks(prefix: list[str], pid: int, names: list[str]) -> list[str]:
    script = "; ".join(f"readlink /proc/self/ns/{n}" for n in names) + "; hostname"
    return [prefix, pid, script]  # type: ignore[list-item]


@pytest.fixture
def target():
    """A process in new uts/net/ipc/mount/pid namespaces (made by util-linux), and its pid."""
    p = subprocess.Popen(["unshare", "-u", "-n", "-i", "-m", "-p", "-f", "--kill-child",
                          "--mount-proc", "sh",
                          "-c", "hostname lab-target; exec sleep 60"])
    inner = None
    try:
        deadline = time.monotonic() + 10
        while inner is None and time.monotonic() < deadline:
            try:
                kids = open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()
            except OSError:
                kids = []
            if kids and os.readlink(f"/proc/{kids[0]}/exe").endswith("sleep"):
                inner = int(kids[0])
            else:
                time.sleep(0.02)
        assert inner is not None, "target did not start"
        yield inner
    finally:
        p.kill()
        p.wait()
        # --kill-child SIGKILLs the sleeper; it is reparented to pytest (the subreaper):
        # reap it here so no container process outlives the test.
        deadline = time.monotonic() + 10
        while inner is not None and os.path.exists(f"/proc/{inner}") and \
                time.monotonic() < deadline:
            try:
                os.waitpid(inner, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.02)


@pytest.mark.parametrize("flags", [["-a"], ["-u", "-n"], ["-m", "-p"], ["-i"], ["-a", "-r"]])
def test_nsenter_agrees_with_util_linux(tomato, target, flags):
    cmd = ["sh", "-c", "for n in uts net ipc mnt pid_for_children; do readlink "
           "/proc/self/ns/$n; done; hostname; echo $$ >/dev/null"]
    real = subprocess.run(["nsenter", "-t", str(target), *flags, *cmd], capture_output=True,
                          text=True, timeout=30)
    ours = tomato("nsenter", "-t", str(target), *flags, *cmd, check=False)
    assert real.returncode == 0, real.stderr
    assert (ours.returncode, ours.stdout) == (real.returncode, real.stdout), ours.stderr


def test_nsenter_pid_namespace_sees_the_target_as_pid_1(tomato, target):
    # pids after 1 depend on how many processes the namespace saw before: compare pid 1.
    r = tomato("nsenter", "-t", str(target), "-a", "sh", "-c", "ps -o pid,comm | head -n 2")
    real = subprocess.run(["nsenter", "-t", str(target), "-a", "sh", "-c",
                           "ps -o pid,comm | head -n 2"], capture_output=True, text=True)
    assert r.stdout.split() == real.stdout.split() == ["PID", "COMMAND", "1", "sleep"]


def test_nsenter_explain_lists_the_setns_calls(tomato, target):
    r = tomato("nsenter", "--explain=full", "-t", str(target), "-u", "-n", "true")
    assert r.stderr.splitlines() == [
        f'+ setns(open("/proc/{target}/ns/uts"), CLONE_NEWUTS) — nsenter -t {target} -u',
        f'+ setns(open("/proc/{target}/ns/net"), CLONE_NEWNET) — nsenter -t {target} -n',
        "+ execve('true', ['true']) — true"]


def test_nsenter_bad_targets(tomato):
    r = tomato("nsenter", "-t", "999999999", "-a", "true", check=False)
    assert r.returncode == 1 and r.stderr == "tomato: no such process: 999999999\n"
    r = tomato("nsenter", "-t", "no-such-container", "-a", "true", check=False)
    assert r.returncode == 1 and "no-such-container" in r.stderr and "Traceback" not in r.stderr
    r = tomato("nsenter", "-t", str(os.getpid()), "true", check=False)
    assert r.returncode == 1 and "no namespace specified" in r.stderr


def test_unshare_explain_matches_the_mounts_made(tomato):
    r = tomato("unshare", "--explain=full", "-p", "-f", "--mount-proc", "sh", "-c",
               "grep ' /proc ' /proc/self/mountinfo | tail -n 1")
    steps = r.stderr.splitlines()
    assert steps[0] == "+ unshare(CLONE_NEWNS|CLONE_NEWPID) — unshare --mount --pid"
    assert steps[1] == "+ fork() — unshare --fork"
    assert steps[2] == '+ mount("none", "/", NULL, MS_REC|MS_PRIVATE, NULL) — ' \
                       "mount --make-rprivate /"
    assert steps[3].endswith("— mount -t proc -o nosuid,nodev,noexec proc /proc")
    # What the kernel shows: a proc mount on /proc with exactly those flags.
    assert " /proc rw,nosuid,nodev,noexec" in r.stdout and "- proc proc" in r.stdout


def test_nsenter_a_container_that_is_not_running(tomato, workdir):
    tomato("rootfs", "from-host", "/bin/true", "--into", str(workdir / "r"), "--image", "t")
    try:
        tomato("create", "--name", "idle", "--network", "none", "t", "/bin/true")
        r = tomato("nsenter", "-t", "idle", "-a", "true", check=False)
        assert r.returncode == 1 and r.stderr == "tomato: container idle is not running\n"
    finally:
        tomato("rm", "-f", "idle", check=False)
        tomato("rmi", "t", check=False)


@pytest.fixture
def user_target():
    """A process in a new user namespace (root inside) with its own hostname."""
    p = subprocess.Popen(["unshare", "-U", "-r", "-u", "sh", "-c",
                          "hostname userbox; exec sleep 60"])
    try:
        deadline = time.monotonic() + 10
        while not os.readlink(f"/proc/{p.pid}/exe").endswith("sleep"):
            assert time.monotonic() < deadline, "target did not start"
            time.sleep(0.02)
        yield p.pid
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("flags", [["-a"], ["-U", "-u"], ["-U", "--preserve-credentials"]])
def test_nsenter_user_namespace_agrees(tomato, user_target, flags):
    cmd = ["sh", "-c", "id -u; hostname; readlink /proc/self/ns/user"]
    real = subprocess.run(["nsenter", "-t", str(user_target), *flags, *cmd],
                          capture_output=True, text=True, timeout=30)
    ours = tomato("nsenter", "-t", str(user_target), *flags, *cmd, check=False)
    assert (ours.returncode, ours.stdout, ours.stderr) == \
        (real.returncode, real.stdout, real.stderr.replace("nsenter:", "tomato:"))


@pytest.mark.parametrize("forkserver", ["on", "off"])
def test_nsenter_all_into_a_container_prints_its_output_and_nothing_else(tomato, workdir,
                                                                         forkserver):
    """util-linux's nsenter exits 0 here; ours once printed the right output, then an
    ImportError from after joining the container's mount namespace, and exited 1."""
    tomato("rootfs", "from-host", "/bin/busybox", "--into", str(workdir / "r"), "--image",
           "ns-bb")
    env = dict(os.environ, TOMATO_ROOT=str(workdir / "root"))
    if forkserver == "off":
        env["TOMATO_NO_FORKSERVER"] = "1"
    try:
        tomato("run", "-d", "--name", "ns-c", "--network", "none", "--hostname", "ns-box",
               "ns-bb", "/bin/busybox", "sleep", "1000", timeout=120)
        p = subprocess.run([TOMATO, "nsenter", "-t", "ns-c", "-a", "/bin/busybox", "sh", "-c",
                            "cat /proc/sys/kernel/hostname; echo $$"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert (p.returncode, p.stdout, p.stderr) == (0, "ns-box\n2\n", "")
        # and its --explain says the same on stderr, in a summary, then exits 0 too
        p = subprocess.run([TOMATO, "nsenter", "--explain", "-t", "ns-c", "-a",
                            "/bin/busybox", "true"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode == 0 and p.stdout == ""
        assert p.stderr.startswith("[ns]       joined: cgroup ipc uts net pid mnt of pid ")
        assert p.stderr.endswith("[exec]     /bin/busybox true\n") and "Error" not in p.stderr
    finally:
        tomato("rm", "-f", "ns-c", check=False)
        tomato("rmi", "ns-bb", check=False)
