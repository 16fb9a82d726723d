"""One command, many containers: `stop`, `kill`, `rm`, `pause`... as docker's CLI runs
them (cli/command/container/utils.go, parallelOperation): up to 50 at a time, each
container's name printed in argument order as soon as it and those before it are done,
an error as one line on stderr where its container would have been, exit 1 if any failed.

Sequentially, `stop -t 1` of 200 containers took 209 s: each waited out its grace alone.

Threads, not processes: these use cases signal, wait and write records; none forks
or clones (DESIGN: never a thread before a ctypes clone), and every worker is joined
before ``run`` returns, so a caller that starts containers afterwards (`restart`) forks
its monitors from a single-threaded process again.  A served command is a forked child
of the fork server: threads in it are fine.  References that name the same container
(twice, or by name and by id) run one after another in one worker, never side by side.
"""

from __future__ import annotations

import sys
import threading

from tomato.errors import TomatoError

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable

#: docker's CLI: `defaultParallel`
PARALLEL = 50


def message(err: BaseException) -> str:
    if isinstance(err, OSError) and not isinstance(err, TomatoError):
        return f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__


def run(refs: list[str], action: Callable[[str], object], same: Callable[[str], str] = str,
        report: Callable[[int, BaseException | None], None] | None = None,
        ) -> list[BaseException | None]:
    """``action(ref)`` for every ref, at most PARALLEL at once; returns each one's error
    (None if it succeeded) in argument order.  ``same(ref)`` names the container (refs
    with one name go to one worker, in order).  ``report(i, error)`` is called in the
    caller's thread, in argument order, as soon as refs[0..i] are all done."""
    outcome: list[BaseException | None] = [None] * len(refs)
    done = [threading.Event() for _ in refs]
    groups: dict[str, list[int]] = {}
    for i, ref in enumerate(refs):
        groups.setdefault(same(ref), []).append(i)
    pending = list(groups.values())
    pending.reverse()  # popped from the end: in argument order
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not pending:
                    return
                group = pending.pop()
            for i in group:
                try:
                    action(refs[i])
                except BaseException as err:  # noqa: BLE001 — handed to the caller
                    outcome[i] = err
                done[i].set()

    def worker() -> None:
        from tomato.engine.store import forget_thread_connections

        try:
            work()
        finally:
            forget_thread_connections()  # its sqlite connections go with it

    # one container (or one named many times): no thread at all
    workers = [threading.Thread(target=worker, name=f"tomato-each-{n}", daemon=True)
               for n in range(min(PARALLEL, len(pending)) if len(pending) > 1 else 0)]
    for w in workers:
        w.start()
    if not workers:
        work()
    for i in range(len(refs)):
        done[i].wait()
        if report is not None:
            report(i, outcome[i])
    for w in workers:
        w.join()
    return outcome


def each(refs: list[str], action: Callable[[str], object],
         same: Callable[[str], str] = str) -> int:
    """Docker's output for ``action`` on many containers: each ref on stdout, or one
    `tomato: ...` line on stderr; 1 if any failed.  An error that is neither the
    engine's nor the system's (a bug) is raised once the others have finished."""
    failed = 0
    bugs: list[BaseException] = []

    def report(i: int, err: BaseException | None) -> None:
        nonlocal failed
        if err is None:
            print(refs[i], flush=True)
        elif isinstance(err, (TomatoError, OSError)):
            print(f"tomato: {message(err)}", file=sys.stderr, flush=True)
            failed = 1
        else:
            bugs.append(err)

    run(refs, action, same, report)
    if bugs:
        raise bugs[0]
    return failed
