"""sqlite3 without its DB-API shim, for the engine's stores.

``import sqlite3`` runs ``sqlite3/dbapi2.py``, which imports ``datetime``
(~2 ms on every `tomato` command) only to register date adapters that Tomato
never uses.  Everything the stores call lives in the C module underneath, so
they import these names from here instead.
"""

from __future__ import annotations

import os

try:
    from _sqlite3 import Connection, IntegrityError, OperationalError, connect
except ImportError:  # an interpreter without the C module's public names
    from sqlite3 import Connection, IntegrityError, OperationalError, connect



def disk_full(path: str | os.PathLike[str]) -> bool:
    """Whether the filesystem holding ``path`` has (next to) no free blocks left for us."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    free = st.f_bfree if os.geteuid() == 0 else st.f_bavail  # root may use reserved blocks
    return free * st.f_frsize < 256 * 1024


def frozen_reader(db_path: str | os.PathLike[str]) -> Connection | None:
    """On a full disk, a read-only look at a WAL database's file as it stands; None if
    the disk is not full or the file alone is not the whole truth.

    sqlite cannot open a WAL database without its -shm file, which it must grow
    (write) first: with no block left, even a read fails ("disk I/O error").  When no
    -wal holds pages the file lacks (the last connection checkpointed and removed it),
    the file can be read as immutable, without the -shm.  Good for one transaction:
    an immutable connection never sees later changes.
    """
    path = os.fspath(db_path)
    if not disk_full(os.path.dirname(path) or "."):
        return None
    try:
        if os.stat(f"{path}-wal").st_size > 0:
            return None
    except FileNotFoundError:
        pass
    from urllib.parse import quote

    return connect(f"file:{quote(path)}?mode=ro&immutable=1", uri=True,
                   isolation_level=None, check_same_thread=False)


__all__ = ["Connection", "IntegrityError", "OperationalError", "connect", "disk_full",
           "frozen_reader"]
