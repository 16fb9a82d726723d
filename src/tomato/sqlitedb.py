"""sqlite3 without its DB-API shim, for the engine's stores.

``import sqlite3`` runs ``sqlite3/dbapi2.py``, which imports ``datetime``
(~2 ms on every `tomato` command) only to register date adapters that Tomato
never uses.  Everything the stores call lives in the C module underneath, so
they import these names from here instead.
"""

from __future__ import annotations

try:
    from _sqlite3 import Connection, IntegrityError, OperationalError, connect
except ImportError:  # an interpreter without the C module's public names
    from sqlite3 import Connection, IntegrityError, OperationalError, connect

__all__ = ["Connection", "IntegrityError", "OperationalError", "connect"]
