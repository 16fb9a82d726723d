"""The per-container monitor (Tomato's conmon/shim): one small process per container.

Forked by `tomato start`/`run` (supervision.py: no interpreter start-up), or the
very process of a fork server's `run -d` that turned into it, in a session of
its own: it outlives the CLI.  It is the parent of the container's init (it
calls the runtime in-process, which clones the init from here), so it alone
can wait for the exit status.  It:

- owns the container's stdio (pipes, or the pty master for -t) and writes
  every byte to the json-file log, and to attached clients (attach.sock,
  Docker's multiplexed frames; see frames.py);
- records running (pid, start time) and exited (code, time, OOMKilled) in
  the engine's store, through the transition table (status.py);
- applies the restart policy, and removes a --rm container when it ends
  (removal.py).

A detached container's steady state (copying its output, waiting for it) is
handed to the C tomato-shim by exec; the shim execs ``python -m
tomato.engine.monitor --after ...`` when the container exits, to record that.

It is single-threaded: the runtime clones the init from it through ctypes.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path

from tomato.engine import events, frames, health, healthprobe, monitor_config
from tomato.engine.containers import STOP_MARKER, leave_exit_marker
from tomato.engine.logs import LogWriter
from tomato.engine.monitor_config import exit_code, shim_binary, start_failure_code
from tomato.engine.status import EXITED, RESTARTING, StateChange, exited, running
from tomato.errors import NoSpace

TYPE_CHECKING = False  # typing costs ~2 ms to import: `tomato run` forks us from the CLI
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from tomato.explain.trace import Explainer

ATTACH_WAIT = 10.0  # seconds a foreground run may take to attach before we start anyway


class Monitor:
    def __init__(self, root: Path, cid: str) -> None:
        self.root = root
        self.cid = cid
        self.dir = root / "containers" / cid
        self.cfg = monitor_config.read(self.dir)
        self.clients: list[tuple[socket.socket, frames.FrameReader]] = []
        self.stdin_w: int | None = None
        self.master: int | None = None
        self.outputs: dict[int, str] = {}
        self.log = LogWriter(self.cfg.log_path or str(self.dir / f"{cid}-json.log"),
                             self.cfg.log_max_size,
                             self.cfg.log_max_file)
        from tomato.engine.containers import Containers

        self.records = Containers(root)
        from tomato.runtime.log import RuntimeLog
        from tomato.runtime.statedir import StateDir

        self.states = StateDir(self.cfg.runtime_root)
        self.rtlog = RuntimeLog(str(self.dir / "runtime.log"), "json")
        self.on_report: Any = None  # instead of the report pipe, see run_monitor
        self.explain: Explainer | None = None  # --explain: handed to the runtime's create
        self.exit_unrecorded = False  # a full disk kept the exit out of the record

    # -- the container ---------------------------------------------------------------
    def _start_container(self) -> int:
        """Create (blocked before execve) with our pipes as its stdio; returns the pid."""
        from tomato.runtime.create import CreateOptions, create

        tty = self.cfg.tty
        saved = [os.dup(fd) for fd in (0, 1, 2)]
        ours: list[int] = []
        try:
            if tty:
                null = os.open("/dev/null", os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.close(null)
            else:
                if self.cfg.stdin:
                    r, w = os.pipe()
                    os.dup2(r, 0)
                    os.close(r)
                    self.stdin_w = w
                    os.set_inheritable(w, False)
                else:
                    null = os.open("/dev/null", os.O_RDONLY)
                    os.dup2(null, 0)
                    os.close(null)
                for fd, name in ((1, "stdout"), (2, "stderr")):
                    r, w = os.pipe2(os.O_CLOEXEC)
                    os.dup2(w, fd)
                    os.close(w)
                    self.outputs[r] = name
                    ours.append(r)
            # `tomato create`/`run` primed the cgroup move already (service.create)
            created = create(self.states, self.cid,
                             CreateOptions(bundle=self.cfg.bundle,
                                           prime_cgroups=not self.cfg.primed,
                                           explain=self.explain),
                             self.rtlog, keep_master=tty)
        except BaseException:
            for r in ours:
                os.close(r)
            self.outputs.clear()
            raise
        finally:
            for fd, copy in zip((0, 1, 2), saved, strict=False):
                os.dup2(copy, fd)
                os.close(copy)
        if created.console_master is not None:
            self.master = created.console_master
            self.outputs[self.master] = "stdout"
        self.rec = created.record
        return created.record.pid

    def _oom_killed(self) -> bool:
        cg = getattr(self, "rec", None)
        if cg is None or not cg.cgroup:
            return False
        from tomato.runtime.lifecycle import manager_of

        mgr = manager_of(cg)
        mem = mgr.paths.get("memory") if mgr is not None else None
        if not mem:
            return False
        for name in ("memory.oom_control", "memory.events"):
            try:
                with open(os.path.join(mem, name)) as f:
                    for line in f:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
            except OSError:
                continue
        return False

    # -- clients -----------------------------------------------------------------------
    def _broadcast(self, stream: int, data: bytes) -> None:
        message = frames.frame(stream, data)
        for client in list(self.clients):
            try:
                client[0].sendall(message)
            except OSError:
                self._drop(client)

    def _drop(self, client: tuple[socket.socket, frames.FrameReader]) -> None:
        if client in self.clients:
            self.clients.remove(client)
        client[0].close()

    def _handle_client(self, client: tuple[socket.socket, frames.FrameReader],
                       pid: int) -> None:
        try:
            data = client[0].recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        for stream, payload in client[1].feed(data):
            if stream == frames.STDIN:
                target = self.master if self.master is not None else self.stdin_w
                if target is not None:
                    try:
                        os.write(target, payload)
                    except OSError:
                        pass
            elif stream == frames.CONTROL:
                self._control(frames.decode_control(payload), pid)

    def _control(self, msg: dict[str, Any], pid: int) -> None:
        if "resize" in msg and self.master is not None:
            from tomato.runtime.console import set_size

            rows, cols = msg["resize"]
            set_size(self.master, int(rows), int(cols))
        if "signal" in msg:
            try:
                os.kill(pid, int(msg["signal"]))
            except ProcessLookupError:
                pass
        if msg.get("close_stdin") and self.stdin_w is not None:
            os.close(self.stdin_w)
            self.stdin_w = None
        if msg.get("start"):
            self.start_now = True

    # -- the loop ----------------------------------------------------------------------
    def _pump(self, fd: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            return False
        name = self.outputs[fd]
        self.log.write(name, data)
        self._broadcast(frames.STDOUT if name == "stdout" else frames.STDERR, data)
        return True

    def run_once(self, listener: socket.socket, wake_r: int, first: bool) -> int:
        """Start the container, serve it until it exits; return its exit code."""
        pid = self._start_container()
        attach = first and self.cfg.attach_wait
        if attach:  # the CLI attaches now; we start on its first connection
            self._report({"pid": pid})
        self.start_now = not attach
        deadline = time.monotonic() + ATTACH_WAIT
        while not self.start_now and time.monotonic() < deadline:
            ready, _, _ = select.select([listener], [], [], 0.05)
            if ready:
                self._accept(listener)
                self.start_now = True
        from tomato.runtime.lifecycle import start

        start(self.states, self.cid, self.rtlog, self.rec)
        from tomato.runtime.statedir import proc_start_time

        started_at = time.time()
        self.records.set_state(self.cid, running(pid, proc_start_time(pid), started_at))
        # A healthcheck: starting, and its probes' timer (tomato-shim keeps its own)
        probes = healthprobe.begin(self.dir, self.cfg, self.rec.config, started_at) \
            if self.cfg.health_command else None
        if not first:  # a restart policy's start (the first one is `start`'s to report)
            events.emit(self.root, "container", "start", self.cid,
                        self.cfg.event_attributes)
        if first and not attach:
            self._report({"pid": pid})
        # Detached containers hand the steady state to tomato-shim (memory); a
        # foreground run keeps this loop, which records the exit before telling
        # the attached CLI (no interpreter start-up on the way out).
        shim = shim_binary() if not attach else None
        if shim is not None:
            self._exec_shim(shim, pid, listener)  # does not return
        status = None
        while status is None:
            watch: list[Any] = [listener, wake_r, *self.outputs, *(c[0] for c in self.clients)]
            try:
                ready, _, _ = select.select(watch, [], [],
                                            min(1.0, probes.wait()) if probes else 1.0)
            except InterruptedError:
                ready = []
            for ready_fd in ready:
                if ready_fd is listener:
                    self._accept(listener)
                elif ready_fd == wake_r:
                    os.read(wake_r, 512)
                elif isinstance(ready_fd, int) and ready_fd in self.outputs:
                    if not self._pump(ready_fd):
                        del self.outputs[ready_fd]
                else:
                    client = next((c for c in self.clients if c[0] is ready_fd), None)
                    if client is not None:
                        self._handle_client(client, pid)
            done, st = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                status = st
            elif probes is not None:
                probes.tick()
        if probes is not None:
            probes.stop()  # before the exit's record says unhealthy
        # Drain what the container wrote before it exited.
        for fd in list(self.outputs):
            while select.select([fd], [], [], 0)[0] and self._pump(fd):
                pass
            os.close(fd)
        self.outputs.clear()
        self.master = None
        if self.stdin_w is not None:
            os.close(self.stdin_w)
            self.stdin_w = None
        self.log.flush()
        code = exit_code(status)
        self._record_exit(code, time.time(), self._oom_killed())
        self._broadcast(frames.CONTROL, json.dumps({"exit": code}).encode())
        return code

    def _record_exit(self, code: int, finished_at: float, oom: bool) -> None:
        from tomato.runtime.lifecycle import delete

        if self.cfg.health_command:
            health.container_stopped(self.dir)
        delete(self.states, self.cid, True, self.rtlog, getattr(self, "rec", None))
        # The events first: `stop` waits for this record, then reports "stop" after "die".
        if oom:
            events.emit(self.root, "container", "oom", self.cid, self.cfg.event_attributes)
        events.emit(self.root, "container", "die", self.cid,
                    {**self.cfg.event_attributes, "exitCode": str(code)})
        try:
            self.records.set_state(self.cid, exited(code, finished_at, oom))
        except NoSpace:
            # A full disk: exit.json (if the shim could write it) or a marker stays for
            # the next reader, who finds this monitor gone and takes the exit from there.
            leave_exit_marker(self.dir, code, oom)
            self.exit_unrecorded = True
            return
        try:
            os.unlink(self.dir / "exit.json")
        except FileNotFoundError:
            pass

    def _exec_shim(self, shim: str, pid: int, listener: socket.socket) -> None:
        """Become tomato-shim (same pid: still the init's parent) for the steady state."""
        self.log.close()
        mem = "-"
        if self.rec.cgroup:
            from tomato.runtime.lifecycle import manager_of

            mgr = manager_of(self.rec)
            mem = (mgr.paths.get("memory") or mgr.paths.get("") or "-") if mgr else "-"
        out = err = master = -1
        for fd, name in self.outputs.items():
            if fd == self.master:
                master = fd
            elif name == "stdout":
                out = fd
            else:
                err = fd
        keep = [fd for fd in (out, err, master, self.stdin_w, listener.fileno()) if fd is not None
                and fd >= 0] + [c[0].fileno() for c in self.clients]
        for fd in keep:
            os.set_inheritable(fd, True)
        clients = ",".join(str(c[0].fileno()) for c in self.clients) or "-"
        health_arg, probe = healthprobe.shim_args(self.dir, self.cfg) \
            if self.cfg.health_command else ("-", [])
        argv = [shim, str(pid), str(out), str(err), str(master),
                str(self.stdin_w if self.stdin_w is not None else -1), str(listener.fileno()),
                self.cfg.log_path or str(self.dir / f"{self.cid}-json.log"),
                str(self.cfg.log_max_size),
                str(self.cfg.log_max_file), clients, str(self.dir / "exit.json"), mem,
                health_arg, "--", sys.executable, "-I", "-m", "tomato.engine.monitor",
                "--after", str(self.root), self.cid, "--listen", str(listener.fileno()),
                *probe]
        os.execv(shim, argv)

    def after_shim(self, status: int, client_fds: list[int]) -> int:
        """Back from tomato-shim: the container exited; record it (the shim already
        wrote exit.json and told the attached clients)."""
        try:
            with open(self.dir / "exit.json") as f:
                exit_info = json.load(f)
        except (OSError, ValueError):
            exit_info = {}
        code = exit_code(status)
        self.states_rec()
        self._record_exit(code, float(exit_info.get("finished_at", time.time())),
                          bool(exit_info.get("oom_killed", False)))
        for fd in client_fds:
            try:
                self.clients.append((socket.socket(fileno=fd), frames.FrameReader()))
            except OSError:
                continue
        return code

    def states_rec(self) -> None:
        """The runtime's record of our container (for cgroups and delete)."""
        from tomato.runtime.lifecycle import load

        try:
            self.rec, _ = load(self.states, self.cid)
        except Exception:  # noqa: BLE001 — already gone: nothing to delete
            pass

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        self.clients.append((conn, frames.FrameReader()))

    def _report(self, msg: dict[str, Any]) -> None:
        """Tell the CLI that started us (our stdout pipe), once."""
        if self.on_report is not None:  # the CLI is this very process (service.start)
            hook, self.on_report = self.on_report, None
            hook(msg)
            return
        try:
            os.write(1, (json.dumps(msg) + "\n").encode())
        except OSError:
            pass
        null = os.open("/dev/null", os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)

    def _should_restart(self, code: int, restarts: int) -> bool:
        policy = self.cfg.restart
        if policy == "no" or self.exit_unrecorded:
            return False  # (a disk too full to record the exit is too full to go on)
        state = self.records.get(self.cid).state
        if state.stop_requested or (self.dir / STOP_MARKER).exists():
            return False
        if policy in ("always", "unless-stopped"):
            return True
        if policy == "on-failure" and code != 0:
            limit = self.cfg.restart_max
            return limit == 0 or restarts < limit
        return False

    def serve(self, listen_fd: int | None = None,
              after: tuple[int, list[int]] | None = None) -> int:
        sock_path = str(self.dir / "attach.sock")
        if listen_fd is not None:
            listener = socket.socket(fileno=listen_fd)
        else:
            try:
                os.unlink(sock_path)
            except FileNotFoundError:
                pass
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            from tomato.engine.attach import short_path

            short, dir_fd = short_path(Path(sock_path))
            try:
                listener.bind(short)
            finally:
                os.close(dir_fd)
            os.chmod(sock_path, 0o600)
            listener.listen(16)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_IGN)
        restarts = self.records.get(self.cid).state.restart_count if after else 0
        delay = min(0.1 * 2 ** restarts, 10.0)
        code = 0
        remove = self.cfg.auto_remove  # not after a failed start: the CLI does
        try:
            first = after is None
            while True:
                try:
                    if after is not None:
                        code = self.after_shim(*after)
                        after = None
                    else:
                        code = self.run_once(listener, wake_r, first)
                except Exception as err:  # noqa: BLE001 — recorded for `inspect`, told to the CLI
                    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
                    # The first start's failure leaves the status as it was (created, or
                    # exited from an earlier run) with Docker's code for it; a restart
                    # policy's start that fails ends the container.
                    self.records.set_state(self.cid, StateChange(
                        error=msg, exit_code=start_failure_code(msg)) if first else
                        StateChange(status=EXITED, error=msg, exit_code=0))
                    if first:
                        self._report({"error": msg})
                    remove = False
                    return 1
                first = False
                if not self._should_restart(code, restarts):
                    break
                restarts += 1
                self.records.set_state(self.cid, StateChange(status=RESTARTING,
                                                             restart_count=restarts))
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        finally:
            self.log.close()
            listener.close()
            try:
                os.unlink(sock_path)
            except FileNotFoundError:
                pass
            try:
                if remove:
                    from tomato.engine.removal import remove_files

                    try:
                        remove_files(self.root, self.cid)
                    except Exception as err:  # noqa: BLE001
                        sys.stderr.write(f"monitor: --rm cleanup failed: {err}\n")
            finally:
                # Hung up only now: an attached `run --rm` waits for this, not a poll.
                for client in list(self.clients):
                    self._drop(client)
        return 0


def run_as_monitor(root: Path, cid: str, on_report: Any = None,
                   explain: Explainer | None = None) -> NoReturn:
    """This (forked) process is the container's monitor until it exits; never returns
    (supervision.py forks it, or hands a fork server's child over to it)."""
    code = 1
    try:
        code = run_monitor(root, cid, on_report=on_report, explain=explain)
    except BaseException as exc:  # noqa: BLE001
        try:
            os.write(2, f"monitor: {exc}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def run_monitor(root: Path, cid: str, on_report: Any = None,
                explain: Explainer | None = None) -> int:
    """``on_report(msg)``: the first report (``{"pid": N}`` or ``{"error": ...}``) is a
    call rather than a line on stdout, when the CLI became the monitor itself;
    ``explain``: --explain's explainer, handed to the runtime's create."""
    from tomato.runtime.statedir import proc_start_time

    monitor = Monitor(root, cid)
    monitor.on_report = on_report
    monitor.explain = explain
    monitor.records.set_state(cid, StateChange(monitor_pid=os.getpid(),
                                               monitor_start=proc_start_time(os.getpid())))
    return monitor.serve()


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--after":
        # tomato-shim hands back: --after ROOT ID --listen FD --status N --clients a,b
        root, cid = Path(argv[1]), argv[2]
        opts = dict(zip(argv[3::2], argv[4::2], strict=False))
        clients = [int(x) for x in opts.get("--clients", "-").split(",") if x.isdigit()]
        monitor = Monitor(root, cid)
        return monitor.serve(int(opts["--listen"]), (int(opts["--status"]), clients))
    return run_monitor(Path(argv[0]), argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
