"""SQLite (WAL) request cache keyed by sha256 of the full request (backend identity + request payload).

A reply is committed before the caller counts it, so a killed run resumes without paying twice. A paid
reply's charge goes into the cost ledger (``llm.ledger``, same file) in the same transaction.
Only replies with status "ok" are cached: errors are retried on the next run.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ift_select.llm import ledger, sqlite_wal
from ift_select.llm.base import ChatReply, ChatRequest


def request_key(identity: dict[str, Any], request: ChatRequest) -> str:
    blob = json.dumps({"backend": identity, "request": request.payload()}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite_wal.connect(self.path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, backend TEXT, reply TEXT, "
            "created REAL DEFAULT (julianday('now')))"
        )
        self._db.executescript(ledger.SCHEMA)
        self._db.commit()

    def get(self, key: str) -> ChatReply | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return ChatReply.from_json(row[0]) if row else None

    def put(self, key: str, backend: str, reply: ChatReply, charge_scope: str | None = None,
            batch: bool = False) -> None:
        """Keep an ok reply; with ``charge_scope``, record what it cost in the ledger (paid or not ok)."""
        charge = charge_scope is not None and reply.cost_usd > 0
        if reply.status != "ok" and not charge:
            return
        with self._lock:
            if reply.status == "ok":
                self._db.execute(
                    "INSERT OR REPLACE INTO replies (key, backend, reply) VALUES (?, ?, ?)",
                    (key, backend, reply.to_json()),
                )
            if charge:
                ledger.record_charge(self._db, key, charge_scope, reply, batch)
            self._db.commit()

    def cost_of(self, keys: Iterable[str]) -> float:
        """What the cached replies with these keys cost when first paid (from the ledger)."""
        with self._lock:
            return ledger.cost_of(self._db, keys)

    def count(self) -> int:
        """Replies kept (a query: not ``__len__``, so that ``if cache`` stays free)."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
