"""Container records in the engine's sqlite store, and where each container lives.

A record holds what the user asked for (the run options and the generated
OCI spec) and the last state the engine wrote.  That state is a claim, not
the truth: ``reconcile`` compares it with the kernel (the runtime's pid and
its start time, the monitor's exit file) so that after any tomato process
is killed, the next command shows what really happened.

On disk, ``ROOT/containers/<id>/`` holds the bundle (config.json and the
overlay mounted at rootfs/), the monitor's files and the json log.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tomato import sqlitedb as sqlite3
from tomato.engine.status import (  # noqa: F401 — Docker's status words, also read from here
    CREATED,
    DEAD,
    EXITED,
    PAUSED,
    REMOVING,
    RESTARTING,
    RUNNING,
    StateChange,
    check_transition,
)
from tomato.engine.store import Store
from tomato.errors import AlreadyExists, InvalidArgument, NotFound
from tomato.records import field, field_names, record

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

#: in a container's directory: `stop`/`kill`/`rm` asked for its end when the disk was
#: too full to say so in the record (state.request_stop; the monitor looks for it)
STOP_MARKER = "stop-requested"
#: ...and how it ended, in an empty file's name (exited.CODE[.oom]; its mtime is when),
#: when neither the record nor exit.json could be written
EXIT_MARKER_PREFIX = "exited."


def leave_exit_marker(cdir: Path, code: int, oom: bool) -> None:
    """The exit, when the disk has no block left for it: a new empty file needs none
    on most filesystems (an inode, a directory entry)."""
    try:
        os.close(os.open(cdir / f"{EXIT_MARKER_PREFIX}{code}{'.oom' if oom else ''}",
                         os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError:
        pass


def read_exit(cdir: Path) -> dict[str, Any]:
    """What the monitor's side wrote of the container's exit: exit.json (tomato-shim's),
    or an exit marker; {} if neither."""
    try:
        info = json.loads((cdir / "exit.json").read_text())
        if isinstance(info, dict):
            return info
    except (OSError, ValueError):
        pass
    try:
        names = [n for n in os.listdir(cdir) if n.startswith(EXIT_MARKER_PREFIX)]
    except OSError:
        return {}
    for name in names:
        code, _, oom = name[len(EXIT_MARKER_PREFIX):].partition(".")
        try:
            return {"exit_code": int(code), "oom_killed": oom == "oom",
                    "finished_at": os.stat(cdir / name).st_mtime}
        except (ValueError, OSError):
            continue
    return {}


def forget_exit(cdir: Path) -> None:
    """Before a start: the last run's exit files and stop marker are stale."""
    try:
        names = os.listdir(cdir)
    except OSError:
        return
    for name in names:
        if name in ("exit.json", STOP_MARKER) or name.startswith(EXIT_MARKER_PREFIX):
            try:
                os.unlink(cdir / name)
            except OSError:
                pass

_LEFT = ("admiring", "brave", "clever", "dazzling", "eager", "fervent", "gallant", "happy",
         "jolly", "keen", "lucid", "modest", "nifty", "optimistic", "peaceful", "quirky",
         "relaxed", "serene", "tender", "upbeat", "vibrant", "wizardly", "youthful", "zealous")
_RIGHT = ("tomato", "basil", "pepper", "garlic", "oregano", "thyme", "fennel", "chive",
          "sage", "mint", "parsley", "caper", "olive", "shallot", "leek", "radish")


@record(frozen=False)
class State:
    """The last state the engine recorded: a claim that ``state.reconcile`` checks against
    the kernel.  Changed only through ``Containers.set_state`` (status.py's table)."""

    status: str = CREATED
    pid: int = 0
    pid_start: int = 0
    exit_code: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    oom_killed: bool = False
    restart_count: int = 0
    error: str = ""
    monitor_pid: int = 0
    monitor_start: int = 0
    stop_requested: bool = False

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> State:
        raw = json.loads(text)
        return cls(**{k: v for k, v in raw.items() if k in _STATE_FIELDS})


_STATE_FIELDS = frozenset(field_names(State))


@record(frozen=False)
class Container:
    id: str
    name: str
    image: str
    image_id: str
    created: float
    options: dict[str, Any]
    spec: dict[str, Any]
    state: State = field(default_factory=State)

    @property
    def short_id(self) -> str:
        return self.id[:12]


def apply_change(cid: str, state: State, change: StateChange) -> None:
    """``change`` onto ``state`` in memory (the transition checked first)."""
    items = change.items()
    for name, value in items:
        if name == "status":
            check_transition(cid, state.status, str(value))
    for name, value in items:
        setattr(state, name, value)


def new_id() -> str:
    return os.urandom(32).hex()


def _pick(words: tuple[str, ...]) -> str:
    # os.urandom rather than the random module: ~1 ms less on every `run`.
    return words[int.from_bytes(os.urandom(2), "little") % len(words)]


def random_name(taken: set[str]) -> str:
    for _ in range(100):
        name = f"{_pick(_LEFT)}_{_pick(_RIGHT)}"
        if name not in taken:
            return name
    return f"{_pick(_LEFT)}_{_pick(_RIGHT)}{int.from_bytes(os.urandom(2), 'little') % 10000}"


def validate_name(name: str) -> str:
    ok = name and (name[0].isalnum()) and all(ch.isalnum() or ch in "_.-" for ch in name)
    if not ok:
        raise InvalidArgument(f'invalid container name "{name}", only [a-zA-Z0-9][a-zA-Z0-9_.-] '
                              "are allowed")
    return name


class Containers:
    """The containers table plus each container's directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = Store(root)
        self.dir = root / "containers"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o711)  # the table: store.MIGRATIONS

    def path(self, cid: str) -> Path:
        return self.dir / cid

    def bundle(self, cid: str) -> Path:
        return self.dir / cid / "bundle"

    def log_path(self, cid: str) -> Path:
        return self.dir / cid / f"{cid}-json.log"

    @staticmethod
    def _row(row: tuple[Any, ...]) -> Container:
        return Container(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]),
                         json.loads(row[6]), State.from_json(row[7]))

    def add(self, c: Container, pick_name: bool = False) -> None:
        """Insert the record; with ``pick_name`` a random free name is chosen inside
        the transaction, so concurrent creates never pick the same one."""
        with self.store.write() as db:
            taken = {r[0] for r in db.execute("SELECT name FROM containers")}
            if pick_name:
                c.name = random_name(taken)
            elif c.name in taken:
                raise AlreadyExists(f'Conflict. The container name "/{c.name}" is already in '
                                    "use")
            db.execute("INSERT INTO containers VALUES (?,?,?,?,?,?,?,?)",
                       (c.id, c.name, c.image, c.image_id, c.created, json.dumps(c.options),
                        json.dumps(c.spec), c.state.to_json()))

    def names(self) -> set[str]:
        with self.store.read() as db:
            return {r[0] for r in db.execute("SELECT name FROM containers")}

    def all(self) -> list[Container]:
        with self.store.read() as db:
            rows = db.execute("SELECT * FROM containers ORDER BY created DESC").fetchall()
        return [self._row(r) for r in rows]

    def get(self, ref: str) -> Container:
        """By full id, name, or unique id prefix (docker's rules)."""
        with self.store.read() as db:
            return self._find(db, ref)

    def _find(self, db: sqlite3.Connection, ref: str) -> Container:
        name = ref[1:] if ref.startswith("/") else ref
        row = db.execute("SELECT * FROM containers WHERE id=? OR name=?", (ref, name)).fetchone()
        if row is None and ref and all(ch in "0123456789abcdef" for ch in ref):
            rows = db.execute("SELECT * FROM containers WHERE id LIKE ?",
                              (ref + "%",)).fetchall()
            if len(rows) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"No such container: {ref}")
        return self._row(row)

    def set_state(self, cid: str, change: StateChange) -> State:
        """Apply ``change`` in one transaction, its status move checked against the
        table (status.py) in that same transaction; returns the new state."""
        with self.store.write() as db:
            row = db.execute("SELECT state FROM containers WHERE id=?", (cid,)).fetchone()
            if row is None:
                raise NotFound(f"No such container: {cid}")
            state = State.from_json(row[0])
            apply_change(cid, state, change)
            db.execute("UPDATE containers SET state=? WHERE id=?", (state.to_json(), cid))
        return state

    def rename(self, cid: str, new_name: str) -> None:
        validate_name(new_name)
        with self.store.write() as db:
            taken = db.execute("SELECT id FROM containers WHERE name=?", (new_name,)).fetchone()
            if taken and taken[0] != cid:
                raise AlreadyExists(f'Conflict. The container name "/{new_name}" is already '
                                    "in use")
            db.execute("UPDATE containers SET name=? WHERE id=?", (new_name, cid))

    def update_options(self, cid: str, options: dict[str, Any], spec: dict[str, Any]) -> None:
        with self.store.write() as db:
            db.execute("UPDATE containers SET options=?, spec=? WHERE id=?",
                       (json.dumps(options), json.dumps(spec), cid))

    def delete(self, cid: str) -> None:
        with self.store.write() as db:
            db.execute("DELETE FROM containers WHERE id=?", (cid,))


def now() -> float:
    return time.time()


def iso(ts: float) -> str:
    if not ts:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


def process_alive(pid: int, start: int) -> bool:
    from tomato.runtime.statedir import alive

    return alive(pid, start)


def ensure_dir(path: Path) -> Path:
    os.makedirs(path, exist_ok=True, mode=0o711)
    return path
