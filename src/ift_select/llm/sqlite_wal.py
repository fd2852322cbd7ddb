"""One way to open the request cache's SQLite file, safe when several processes open a new file at once.

Switching a new database to WAL needs a lock for which SQLite may return "database is locked" at once instead
of waiting (its busy handler is skipped where waiting could deadlock), so the switch is retried until
``TIMEOUT_S``; every other statement waits through the busy handler.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

TIMEOUT_S = 60.0


def connect(path: str | Path, isolation_level: str | None = "") -> sqlite3.Connection:
    """A connection usable from any thread (callers lock), in WAL mode with ``synchronous=NORMAL``."""
    db = sqlite3.connect(path, timeout=TIMEOUT_S, check_same_thread=False, isolation_level=isolation_level)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(random.uniform(0.01, 0.1))
    db.execute("PRAGMA synchronous=NORMAL")
    return db
