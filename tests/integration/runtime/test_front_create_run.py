"""`create` and `run` answered by the front end (front/create.c, init.c) and by Python alike.

Each case runs both ways: "front" (TOMATO_RUNTIME_FRONT_ONLY=1, so a hand-over would
exit 3: the proof it was answered in C) and "python"
(TOMATO_RUNTIME_PYTHON=1), one after the other under the same id, and the answers are
compared: exit codes, stdout, stderr, state.json (its members, its modes), the pid file,
the cgroups' values, and that a failure leaves nothing behind (state directory, cgroups,
processes; the suite's leak check adds mounts).  Errors Python words before anything is
made (a missing bundle, a bad rootfs, an id that exists) are handed to Python by design:
there the front end's answer (as installed) is Python's own.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from .rt import RUNTIME
from .rt_extra import ConsoleListener, cid, edit, read_until

FRONT = Path(RUNTIME).parent / "tomato-runtime-front"
pytestmark = pytest.mark.skipif(not FRONT.exists(),
                                reason="tomato-runtime-front is not installed (no C compiler?)")

PATHS = {"front": {"TOMATO_RUNTIME_FRONT_ONLY": "1"}, "python": {"TOMATO_RUNTIME_PYTHON": "1"}}
C = cid("fcr")
#: state.json's members that differ from one create to the next
VARYING = ("created", "pid", "pid_start", "creator_pid", "creator_start")


def call(root: Path, *args: str, path: str = "", env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[bytes]:
    # files, not pipes: a detached container inherits them
    full = {**os.environ, **PATHS.get(path, {}), **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([RUNTIME, "--root", str(root), *args], stdout=out, stderr=err,
                              stdin=subprocess.DEVNULL, env=full, timeout=60)
        out.seek(0)
        err.seek(0)
        proc.stdout, proc.stderr = out.read(), err.read()
    assert b"Traceback" not in proc.stderr, proc.stderr
    if path == "front":
        assert proc.returncode != 3, (args, proc.stderr)  # answered in C, never handed over
    return proc


def cgroup_dirs(container_id: str) -> list[str]:
    """Where the container's cgroups are (cgroupsPath empty: tomato/<id> below ours)."""
    from tomato import cgroups

    return sorted(set(cgroups.new_manager("", container_id).paths.values()))


def gone(root: Path, container_id: str) -> None:
    """Nothing of the container is left: no state directory, no cgroup."""
    assert not (root / container_id).exists()
    assert [d for d in cgroup_dirs(container_id) if os.path.exists(d)] == []


def answer(proc: subprocess.CompletedProcess[bytes]) -> tuple[int, bytes, bytes]:
    return proc.returncode, proc.stdout, proc.stderr


def record(root: Path) -> tuple[dict[str, Any], int, int]:
    """state.json without what varies, its mode and its directory's."""
    path = root / C / "state.json"
    doc = json.loads(path.read_text())
    for key in VARYING:
        doc.pop(key)
    # levels made: 2 when tomato/ was not there yet (other tests' containers come and go)
    doc["cgroup"]["created"] = sorted(doc["cgroup"]["created"])
    return doc, stat.S_IMODE(path.stat().st_mode), stat.S_IMODE((root / C).stat().st_mode)


def each_way(fn: Any) -> dict[str, Any]:
    return {path: fn(path) for path in PATHS}


def test_create_start_state_delete(root: Path, bundle: Path, workdir: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].update(args=["sh", "-c", "echo out; echo err >&2"]))

    def way(path: str) -> Any:
        pid_file = workdir / f"{path}.pid"
        created = call(root, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), C,
                       path=path)
        assert created.returncode == 0, created.stderr
        rec, mode, dir_mode = record(root)
        fifo = stat.S_IMODE((root / C / "exec.fifo").stat().st_mode)
        state = json.loads(call(root, "state", C, path=path).stdout)
        pid = json.loads((root / C / "state.json").read_text())["pid"]
        assert pid_file.read_text() == str(pid) == str(state.pop("pid"))
        state.pop("created")
        dirs = cgroup_dirs(C)
        assert dirs and all(str(pid) in Path(d, "cgroup.procs").read_text().split()
                            for d in dirs)
        started = call(root, "start", C, path=path)
        for _ in range(500):  # until the init has exited (bounded)
            if json.loads(call(root, "state", C, path=path).stdout)["status"] == "stopped":
                break
            time.sleep(0.01)
        deleted = call(root, "delete", C, path=path)
        gone(root, C)
        return (answer(created), rec, mode, dir_mode, fifo, state, answer(started),
                answer(deleted))

    ways = each_way(way)
    assert ways["front"] == ways["python"]
    rec = ways["front"][1]
    assert rec["status"] == "created" and rec["cgroup"]["container_id"] == C
    assert ways["front"][2:4] == (0o600, 0o711)


@pytest.mark.parametrize("script, code", [("exit 0", 0), ("exit 7", 7)])
def test_run_exit_codes(root: Path, bundle: Path, script: str, code: int) -> None:
    edit(bundle, lambda cfg: cfg["process"].update(args=["sh", "-c", f"echo hi; {script}"]))

    def way(path: str) -> Any:
        proc = call(root, "--debug", "run", "--bundle", str(bundle), C, path=path)
        gone(root, C)
        return proc.returncode, proc.stdout, proc.stderr.replace(
            f"init pid {_pid(proc.stderr)}".encode(), b"init pid N").replace(
            f"(pid {_pid(proc.stderr)})".encode(), b"(pid N)")

    ways = each_way(way)
    assert ways["front"] == ways["python"]
    assert ways["front"][:2] == (code, b"hi\n")


def test_run_forwards_signals_and_reports_a_kill(root: Path, bundle: Path,
                                                 workdir: Path) -> None:
    """SIGTERM to `run` reaches the init (its trap answers); a SIGKILL of the init is
    run's 128+9."""
    script = 'trap "echo got; exit 5" TERM; echo ready; while :; do sleep 0.05; done'
    edit(bundle, lambda cfg: cfg["process"].update(args=["sh", "-c", script]))

    def way(path: str) -> Any:
        codes = []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            out = workdir / f"{path}-{sig}.out"
            with open(out, "wb") as f:
                proc = subprocess.Popen([RUNTIME, "--root", str(root), "run", "--bundle",
                                         str(bundle), C], stdout=f, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL,
                                        env={**os.environ, **PATHS[path]})
            try:
                for _ in range(1000):  # until the trap is set (bounded)
                    if b"ready" in out.read_bytes():
                        break
                    time.sleep(0.01)
                if sig == signal.SIGTERM:
                    proc.send_signal(sig)
                else:
                    state = json.loads((root / C / "state.json").read_text())
                    os.kill(state["pid"], sig)
                codes.append((proc.wait(timeout=30), out.read_bytes()))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                call(root, "delete", "--force", C, path=path)
            gone(root, C)
        return codes

    ways = each_way(way)
    assert ways["front"] == ways["python"] == [(5, b"ready\ngot\n"), (137, b"ready\n")]


def _pid(debug: bytes) -> int:
    for line in debug.decode().splitlines():
        if "init pid " in line:
            return int(line.rsplit(" ", 1)[1])
    return -1


def test_run_detach_and_keep(root: Path, bundle: Path, workdir: Path) -> None:
    def way(path: str) -> Any:
        edit(bundle, lambda cfg: cfg["process"].update(args=["sleep", "600"]))
        pid_file = workdir / f"{path}.pid"
        detached = call(root, "run", "-d", "--pid-file", str(pid_file), "--bundle",
                        str(bundle), C, path=path)
        status = json.loads(call(root, "state", C, path=path).stdout)["status"]
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        deleted = call(root, "delete", "--force", C, path=path)
        try:
            os.waitpid(pid, 0)  # (a detached init of ours is our grandchild: not reaped here)
        except ChildProcessError:
            pass
        gone(root, C)
        edit(bundle, lambda cfg: cfg["process"].update(args=["true"]))
        kept = call(root, "run", "--keep", "--bundle", str(bundle), C, path=path)
        rec = record(root)[0]
        after = json.loads(call(root, "state", C, path=path).stdout)["status"]
        call(root, "delete", C, path=path)
        gone(root, C)
        return answer(detached), status, answer(deleted), answer(kept), rec["status"], after

    ways = each_way(way)
    assert ways["front"] == ways["python"]
    assert ways["front"][1] == "running" and ways["front"][4:] == ("running", "stopped")


def test_console_socket(root: Path, bundle: Path, workdir: Path) -> None:
    edit(bundle, lambda cfg: cfg["process"].update(terminal=True,
                                                   args=["sh", "-c", "tty; sleep 600"]))

    def way(path: str) -> Any:
        sock = workdir / f"{path}.sock"
        listener = ConsoleListener(sock)
        try:
            created = call(root, "create", "--console-socket", str(sock), "--bundle",
                           str(bundle), C, path=path)
            assert created.returncode == 0, created.stderr
            master, _name = listener.receive()
            call(root, "start", C, path=path)
            seen = read_until(master, b"/dev/pts/0")
            os.close(master)
        finally:
            listener.close()
            call(root, "delete", "--force", C, path=path)
        gone(root, C)
        return answer(created), b"/dev/pts/0" in seen

    ways = each_way(way)
    assert ways["front"] == ways["python"] == ((0, b"", b""), True)


def test_resources_written_alike(root: Path, bundle: Path) -> None:
    resources = {"devices": [{"allow": False, "access": "rwm"},
                             {"allow": True, "type": "c", "major": 1, "minor": 3,
                              "access": "rw"}],
                 "memory": {"limit": 67108864, "reservation": 33554432},
                 "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0",
                         "mems": "0"},
                 "pids": {"limit": 64}}
    files = ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "memory.limit_in_bytes",
             "memory.soft_limit_in_bytes", "pids.max", "devices.list", "cpuset.cpus",
             "cpuset.mems")

    def fn(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"] = resources
        cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10,
                                    "minor": 229, "fileMode": 0o666}]

    edit(bundle, fn)

    def way(path: str) -> Any:
        created = call(root, "create", "--bundle", str(bundle), C, path=path)
        paths = json.loads((root / C / "state.json").read_text())["cgroup"]["paths"]
        values = {}
        for name in files:
            ctrl = name.split(".")[0]
            values[name] = Path(paths[ctrl], name).read_text()
        call(root, "delete", "--force", C, path=path)
        gone(root, C)
        return answer(created), values

    ways = each_way(way)
    assert ways["front"] == ways["python"]
    assert ways["front"][1]["pids.max"] == "64\n"
    assert ways["front"][1]["cpuset.cpus"] == "0\n"


def _escaping_mount(bundle: Path, workdir: Path) -> None:
    outside = workdir / "outside"
    outside.mkdir()
    (bundle / "rootfs" / "evil").symlink_to(outside)

    def fn(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"})

    edit(bundle, fn)


def test_a_mount_onto_an_escaping_symlink_stays_inside(root: Path, bundle: Path,
                                                      workdir: Path) -> None:
    """/evil -> a host directory: the mount lands inside the rootfs, both ways."""
    _escaping_mount(bundle, workdir)

    def way(path: str) -> Any:
        created = call(root, "create", "--bundle", str(bundle), C, path=path)
        outside = workdir / "outside"
        untouched = not os.path.ismount(outside) and not any(outside.iterdir())
        call(root, "delete", "--force", C, path=path)
        gone(root, C)
        return answer(created), untouched

    ways = each_way(way)
    assert ways["front"] == ways["python"] == ((0, b"", b""), True)


@pytest.mark.parametrize("case", ["missing executable", "a bind source that does not exist",
                                  "a pid file that cannot be written",
                                  "a console socket nobody listens on",
                                  "cpus the parent does not have"])
def test_init_failures(root: Path, bundle: Path, workdir: Path, case: str) -> None:
    """Failures once things are made: Python's words, everything rolled back."""
    flags = []
    if case == "a pid file that cannot be written":
        flags = ["--pid-file", str(workdir / "no-such-dir" / "pid")]
    elif case == "cpus the parent does not have":
        edit(bundle, lambda cfg: cfg["linux"].update(resources={"cpu": {"cpus": "0,8000"}}))
    elif case == "a console socket nobody listens on":
        flags = ["--console-socket", str(workdir / "nobody.sock")]
        edit(bundle, lambda cfg: cfg["process"].update(terminal=True))
    elif case == "missing executable":
        edit(bundle, lambda cfg: cfg["process"].update(args=["/no/such/program"]))
    else:
        edit(bundle, lambda cfg: cfg["mounts"].append(
            {"destination": "/mnt", "type": "bind", "source": "no-such-dir",
             "options": ["rbind"]}))

    def way(path: str) -> Any:
        created = call(root, "create", *flags, "--bundle", str(bundle), C, path=path)
        gone(root, C)
        ran = call(root, "run", *flags, "--bundle", str(bundle), C, path=path)
        gone(root, C)
        return answer(created), answer(ran)

    ways = each_way(way)
    assert ways["front"] == ways["python"]
    assert ways["front"][0][0] == 1 and ways["front"][0][2].startswith(b"tomato-runtime: ")


@pytest.mark.parametrize("case", ["missing bundle", "missing rootfs", "existing id"])
def test_errors_before_anything_is_made_are_pythons(root: Path, bundle: Path,
                                                    case: str) -> None:
    """Python words these (before anything is made, the front end hands over): the
    answer with the C path on is Python's own, and FRONT_ONLY shows the hand-over."""
    args = ["create", "--bundle", str(bundle), C]
    if case == "missing bundle":
        args[2] = str(bundle) + "-missing"
    elif case == "missing rootfs":
        edit(bundle, lambda cfg: cfg["root"].update(path="no-rootfs"))
    else:
        assert call(root, *args, path="python").returncode == 0
    on = call(root, *args)
    python = call(root, *args, path="python")
    only = call(root, *args, env=PATHS["front"])
    assert answer(on) == answer(python)
    assert on.returncode == 1 and on.stderr.startswith(b"tomato-runtime: ")
    assert only.returncode == 3
    if case == "existing id":
        call(root, "delete", "--force", C, path="python")
    gone(root, C)


def test_a_config_create_check_refuses_is_pythons(root: Path, bundle: Path) -> None:
    edit(bundle, lambda cfg: cfg.update(hooks={"poststop": [{"path": "/bin/true"}]}))
    only = call(root, "create", "--bundle", str(bundle), C, env=PATHS["front"])
    assert (only.returncode, only.stderr) == (
        3, b"tomato-runtime-front: handed over to Python: hooks\n")
    gone(root, C)
    on = call(root, "create", "--bundle", str(bundle), C)
    assert on.returncode == 0, on.stderr
    call(root, "delete", "--force", C)
    gone(root, C)


def test_preserve_fds(root: Path, bundle: Path, workdir: Path) -> None:
    """--preserve-fds 1: the caller's fd 3 reaches the container, nothing of ours does;
    with fd 3 not open, the front end hands over (it would be one of ours)."""
    edit(bundle, lambda cfg: cfg["process"].update(args=["sh", "-c", "ls /proc/self/fd; cat <&3"]))
    given = workdir / "given"
    given.write_text("through fd 3\n")

    def way(path: str) -> Any:
        # fd 3 given by a shell's redirection (never this process's own fd 3)
        proc = subprocess.run(["sh", "-c", 'exec "$@" 3<"$0"', str(given), RUNTIME, "--root",
                               str(root), "run", "--preserve-fds", "1", "--bundle",
                               str(bundle), C], capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=60,
                              env={**os.environ, **PATHS[path]})
        gone(root, C)
        return answer(proc)

    ways = each_way(way)
    assert ways["front"] == ways["python"]
    code, out, err = ways["front"]
    assert code == 0 and out.split() == [b"0", b"1", b"2", b"3", b"4", b"through", b"fd",
                                         b"3"], (out, err)
    missing = subprocess.run(["sh", "-c", 'exec "$@" 3<&-', "sh", RUNTIME, "--root",
                              str(root), "run", "--preserve-fds", "1", "--bundle",
                              str(bundle), C], capture_output=True,
                             stdin=subprocess.DEVNULL, timeout=60,
                             env={**os.environ, **PATHS["front"]})
    assert missing.returncode == 3 and missing.stderr.endswith(
        b"--preserve-fds (a preserved fd is not open)\n"), missing.stderr
    gone(root, C)


def test_seccomp_from_pythons_cache(root: Path, bundle: Path) -> None:
    """A profile: the first create is Python's (it compiles and caches the program), the
    next ones C's, loading that program; the filter works alike, and exec's seccomp.bpf
    is left alike."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 18}]}  # EXDEV
    edit(bundle, lambda cfg: (cfg["linux"].update(seccomp=profile),
                              cfg["process"].update(args=["mkdir", "/tmp/x"])))
    first = call(root, "create", "--bundle", str(bundle), C, env=PATHS["front"])
    assert (first.returncode, first.stderr) == (
        3, b"tomato-runtime-front: handed over to Python: linux.seccomp (not compiled yet)\n")
    gone(root, C)

    def way(path: str) -> Any:
        created = call(root, "create", "--bundle", str(bundle), C, path=path)
        program = (root / C / "seccomp.bpf").read_bytes()
        call(root, "delete", "--force", C, path=path)
        ran = call(root, "run", "--bundle", str(bundle), C, path=path)
        gone(root, C)
        return answer(created), program, answer(ran)

    ways = {"python": way("python"), "front": way("front")}  # Python's fills the cache
    assert ways["front"] == ways["python"]
    assert ways["front"][2][0] == 1 and b"Invalid cross-device link" in ways["front"][2][2]


def test_warnings_and_log_records_alike(root: Path, bundle: Path, workdir: Path) -> None:
    """--log records (json) and warnings (the runtime's own: oomScoreAdj, where it is not
    permitted; the init's: an rlimit clamped) come out alike, a failure's too."""
    def fn(cfg: dict[str, Any]) -> None:
        cfg["process"].update(args=["true"], oomScoreAdj=-1000,
                              rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1 << 40,
                                        "hard": 1 << 40}])

    edit(bundle, fn)

    def way(path: str) -> Any:
        records = []
        for args in (["true"], ["/no/such/program"]):
            edit(bundle, lambda cfg: cfg["process"].update(args=args))
            log = workdir / f"{path}.log"
            log.unlink(missing_ok=True)
            proc = call(root, "--log", str(log), "--log-format", "json", "--debug", "run",
                        "--bundle", str(bundle), C, path=path)
            gone(root, C)
            lines = [json.loads(line) for line in log.read_text().splitlines()]
            for line in lines:
                line.pop("time")
                line["msg"] = " ".join("N" if w.rstrip(")").isdigit() else w
                                       for w in line["msg"].split())
            records.append((answer(proc), lines))
        return records

    ways = each_way(way)
    assert ways["front"] == ways["python"]
    assert ways["front"][1][0][0] == 1


def test_an_absolute_cgroups_path(root: Path, bundle: Path) -> None:
    """cgroupsPath "/<parent>/<id>" (CRI's "/k8s.io/<id>"): below each hierarchy's root,
    the parent made and, as its creator, removed again; the records alike."""
    parent = f"tomato-test-{C}"
    edit(bundle, lambda cfg: cfg["linux"].update(cgroupsPath=f"/{parent}/{C}"))

    def way(path: str) -> Any:
        created = call(root, "create", "--bundle", str(bundle), C, path=path)
        rec = record(root)[0]
        dirs = sorted(set(rec["cgroup"]["paths"].values()))
        made = all(os.path.isdir(d) for d in dirs)
        deleted = call(root, "delete", "--force", C, path=path)
        left = [d for d in dirs if os.path.exists(d) or os.path.exists(os.path.dirname(d))]
        return answer(created), rec, made, answer(deleted), left

    ways = each_way(way)
    assert ways["front"] == ways["python"]
    assert ways["front"][2] is True and ways["front"][4] == []
    assert all(f"/{parent}/{C}" in d for d in ways["front"][1]["cgroup"]["paths"].values())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_create_rolls_back(root: Path, bundle: Path, workdir: Path,
                                           sig: int) -> None:
    """Ctrl-C (or SIGTERM) while create has made its state directory and cgroups:
    everything made is undone, as Python's Undo does on KeyboardInterrupt (exit 130);
    SIGTERM then ends the front end by its signal.  The hold: --console-socket's connect,
    blocked on a listener whose one-place backlog another connection fills."""
    import socket

    edit(bundle, lambda cfg: cfg["process"].update(args=["true"], terminal=True))
    ways = ["front", "python"] if sig == signal.SIGINT else ["front"]

    def way(path: str) -> Any:
        sock_path = workdir / f"{path}-{sig}.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(sock_path))
        listener.listen(0)
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        filler.connect(str(sock_path))  # the backlog's one place: the next connect waits
        proc = subprocess.Popen([RUNTIME, "--root", str(root), "create", "--console-socket",
                                 str(sock_path), "--bundle", str(bundle), C],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env={**os.environ, **PATHS[path]})
        try:
            for _ in range(1000):  # until its cgroups are made (bounded: 10 s)
                if proc.poll() is not None or all(os.path.isdir(d) for d in cgroup_dirs(C)):
                    break
                time.sleep(0.01)
            time.sleep(0.2)  # (in the connect now)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            proc.send_signal(sig)
            code = proc.wait(timeout=30)
            err = proc.stderr.read() if proc.stderr else b""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()
            filler.close()
            listener.close()
        left = (root / C).exists() or any(os.path.exists(d) for d in cgroup_dirs(C))
        call(root, "delete", "--force", C, path="python")
        gone(root, C)
        return code, left, b"Traceback" in err

    answers = {p: way(p) for p in ways}
    want = (130 if sig == signal.SIGINT else -sig, False, False)
    assert all(a == want for a in answers.values()), answers


@pytest.mark.parametrize("corruption", ["an unknown member", "a lone surrogate"])
def test_delete_force_of_an_unreadable_record_stops_what_it_names(
        root: Path, bundle: Path, corruption: str) -> None:
    """A record statedir refuses (a member it does not know, a lone surrogate): delete
    --force still kills the init and removes the cgroups it names (review 14, #6: they
    were left, out of every command's reach).  The front end hands such a record to
    Python; both ways alike."""
    edit(bundle, lambda cfg: cfg["process"].update(args=["sleep", "600"]))

    def way(path: str) -> Any:
        assert call(root, "create", "--bundle", str(bundle), C, path=path).returncode == 0
        state = root / C / "state.json"
        pid = json.loads(state.read_text())["pid"]
        text = state.read_text()
        state.write_text(text[:-1] + ', "evil": 1}' if corruption == "an unknown member"
                         else text.replace('"annotations": {}', '"annotations": {"k": "\\ud800"}'))
        stated = call(root, "state", C)
        deleted = call(root, "delete", "--force", C, path="python" if path == "python" else "")
        try:
            os.waitpid(pid, os.WNOHANG)  # (not ours: the runtime's child, reparented)
        except ChildProcessError:
            pass
        alive = os.path.exists(f"/proc/{pid}") and \
            Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
        gone(root, C)
        return stated.returncode, answer(deleted), alive

    ways = each_way(way)
    assert ways["front"] == ways["python"]
    assert ways["front"][0] == 1 and ways["front"][1] == (0, b"", b"") and not ways["front"][2]
