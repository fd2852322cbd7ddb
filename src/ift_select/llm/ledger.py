"""The cost ledger and the budget (``max_cost_usd``), kept in the request cache's SQLite file.

- ``charges``: one row per paid request (tokens, USD), written in the same transaction as its cached reply
  (``RequestCache.put``): a cache hit adds nothing, and a killed run records nothing it did not keep.
- ``spend``: the running total per scope (kept by a trigger on ``charges``, so a budget check reads one row).
- ``holds``: budget reservations. Before a request is sent its worst case (estimated prompt tokens with a
  margin + ``max_tokens``) is held; an online request's hold goes when its reply is recorded, a batch's when the
  batch settles, in this run or a later one. Holds of processes that died are dropped.

Scope: a budget and its spend belong to one endpoint and model (``https://api.openai.com/v1|gpt-4o-mini``).
``max_cost_usd`` caps everything this cache has spent there, all runs, stages, judge pairs, graders and
processes together, plus what is in flight; a request that would go over it is not sent, nor is any later one,
and ``Ledger.stopped`` says why. Without a database (``db=None``) the budget covers the one run.
"""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ift_select.core.errors import BudgetExceeded, ConfigError
from ift_select.llm import sqlite_wal
from ift_select.llm.base import ChatReply, ChatRequest
from ift_select.llm.pricing import PriceTable, TokenCounter, prompt_tokens, token_counter

PROMPT_MARGIN = 1.10  # worst-case holds add 10% to estimated prompt tokens
SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, scope TEXT NOT NULL, tokens_in INTEGER, tokens_out INTEGER,
    usd REAL NOT NULL, batch INTEGER, created REAL DEFAULT (julianday('now')));
CREATE TABLE IF NOT EXISTS spend (scope TEXT PRIMARY KEY, usd REAL NOT NULL);
CREATE TRIGGER IF NOT EXISTS charges_spend AFTER INSERT ON charges BEGIN
    INSERT INTO spend (scope, usd) VALUES (NEW.scope, NEW.usd) ON CONFLICT (scope) DO UPDATE SET usd = usd + NEW.usd;
END;
CREATE TABLE IF NOT EXISTS holds (id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, usd REAL NOT NULL,
    host TEXT, pid INTEGER, batch_id TEXT, created REAL DEFAULT (julianday('now')));
"""
_HOST = socket.gethostname()


def record_charge(db: sqlite3.Connection, key: str, scope: str, reply: ChatReply, batch: bool = False) -> None:
    """Insert one paid reply's charge (once per key; a failed reply's charge under a key of its own)."""
    if reply.status != "ok":
        key = f"{key}#{os.urandom(8).hex()}"
    db.execute("INSERT OR IGNORE INTO charges (key, scope, tokens_in, tokens_out, usd, batch) VALUES (?, ?, ?, ?, ?, ?)",
               (key, scope, reply.tokens_in, reply.tokens_out, reply.cost_usd, int(batch)))


def cost_of(db: sqlite3.Connection, keys: Iterable[str]) -> float:
    """What the replies with these cache keys cost when they were paid."""
    keys, total = sorted(set(keys)), 0.0
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        row = db.execute(f"SELECT SUM(usd) FROM charges WHERE key IN ({','.join('?' * len(chunk))})", chunk).fetchone()
        total += row[0] or 0.0
    return total


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LedgerDB:
    """The ledger tables of one cache file, shared safely by threads and processes (SQLite, WAL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite_wal.connect(self.path, isolation_level=None)
        self._db.executescript(SCHEMA)

    def totals(self, scope: str) -> tuple[float, float]:
        """(spent, held) in ``scope``."""
        with self._lock:
            return self._totals(scope)

    def _totals(self, scope: str) -> tuple[float, float]:
        row = self._db.execute("SELECT usd FROM spend WHERE scope = ?", (scope,)).fetchone()
        spent = row[0] if row else 0.0
        held = self._db.execute("SELECT SUM(usd) FROM holds WHERE scope = ?", (scope,)).fetchone()[0] or 0.0
        return spent, held

    def try_hold(self, scope: str, usd: float, cap: float) -> tuple[int | None, float, float]:
        """Hold ``usd`` unless spent + held + usd would exceed ``cap``: (hold id or None, spent, held)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                others = self._db.execute("SELECT id, pid FROM holds WHERE host = ? AND pid IS NOT NULL AND pid != ?",
                                          (_HOST, os.getpid())).fetchall()
                gone = {pid for pid in {pid for _, pid in others} if not _alive(pid)}
                dead = [(i,) for i, pid in others if pid in gone]
                self._db.executemany("DELETE FROM holds WHERE id = ?", dead)
                spent, held = self._totals(scope)
                if spent + held + usd > cap:
                    self._db.execute("COMMIT")
                    return None, spent, held
                cursor = self._db.execute("INSERT INTO holds (scope, usd, host, pid) VALUES (?, ?, ?, ?)",
                                          (scope, usd, _HOST, os.getpid()))
                self._db.execute("COMMIT")
                return cursor.lastrowid, spent, held
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def release(self, hold_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM holds WHERE id = ?", (hold_id,))

    def keep_for_batch(self, hold_id: int, batch_id: str) -> None:
        """The hold outlives this process: it goes when batch ``batch_id`` settles (``release_batch``)."""
        with self._lock:
            self._db.execute("UPDATE holds SET batch_id = ?, pid = NULL WHERE id = ?", (batch_id, hold_id))

    def release_batch(self, batch_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM holds WHERE batch_id = ?", (batch_id,))

    def batch_holds(self) -> dict[str, float]:
        with self._lock:
            return dict(self._db.execute("SELECT batch_id, SUM(usd) FROM holds WHERE batch_id IS NOT NULL "
                                         "GROUP BY batch_id").fetchall())

    def record(self, key: str, scope: str, reply: ChatReply, batch: bool = False) -> None:
        with self._lock:
            record_charge(self._db, key, scope, reply, batch)

    def cost_of(self, keys: Iterable[str]) -> float:
        with self._lock:
            return cost_of(self._db, keys)

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class Hold:
    usd: float
    id: int | None = None  # its row in the holds table; None: held in this process only


class Ledger:
    """Tokens and USD of one backend's calls in this run, and its budget (``max_cost_usd``; None: no cap)."""

    def __init__(self, model: str, pricing: PriceTable | Mapping[str, Any] | None = None,
                 max_cost_usd: float | None = None, counter: TokenCounter | None = None, batch: bool = False,
                 scope: str | None = None, db: LedgerDB | None = None) -> None:
        self.model = model
        self.table = PriceTable.from_params(pricing)
        self.max_cost_usd = max_cost_usd
        self.batch = batch
        self.scope = scope or model
        self.db = db
        if max_cost_usd is not None and self.table.price(model) is None:
            raise ConfigError(f"pricing: no price for model {model!r}, so max_cost_usd = {max_cost_usd} cannot "
                              "be enforced; add it to pricing in params.yaml")
        # counted before the run starts (a tokenizer may take a moment to load), only when there is a budget
        self._counter = counter or (token_counter(model) if max_cost_usd is not None else None)
        self._lock = threading.Lock()
        self.calls = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.spent = 0.0  # by this run
        self.reserved = 0.0  # held by this run, not yet settled
        self.refused = 0
        self.stopped: BudgetExceeded | None = None

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return self.table.cost(self.model, tokens_in, tokens_out, batch=self.batch)

    def worst_case(self, requests: Sequence[ChatRequest]) -> float:
        counter = self._counter or token_counter(self.model)
        tokens_in = sum(math.ceil(prompt_tokens(r, counter) * PROMPT_MARGIN) for r in requests)
        return self.cost(tokens_in, sum(r.max_tokens for r in requests))

    def reserve(self, requests: Sequence[ChatRequest]) -> Hold | None:
        """Hold the worst case of sending ``requests``; None (and ``stopped`` set) when the budget refuses.
        Once refused, every later reservation is refused too, so a run stops instead of trickling on."""
        if self.max_cost_usd is None:
            return Hold(0.0)
        need = self.worst_case(requests)
        with self._lock:
            if self.stopped is None:
                if self.db is not None:
                    hold_id, spent, held = self.db.try_hold(self.scope, need, self.max_cost_usd)
                    ok, where = hold_id is not None, " (all runs, from the ledger)"
                else:
                    hold_id, spent, held = None, self.spent, self.reserved
                    ok, where = spent + held + need <= self.max_cost_usd, ""
                if not ok:
                    self.stopped = BudgetExceeded(
                        f"max_cost_usd = {self.max_cost_usd} for {self.scope}: spent ${spent:.6g}{where}, in "
                        f"flight ${held:.6g}; the next request could cost up to ${need:.6g}, so it and the rest "
                        "were not sent (raise max_cost_usd and rerun: finished replies are cached)")
            if self.stopped is not None:
                self.refused += len(requests)
                return None
            self.reserved += need
            return Hold(need, hold_id)

    def settle(self, hold: Hold, replies: Sequence[ChatReply], batch_id: str | None = None) -> None:
        """Count ``replies`` (their ``cost_usd``, set by the backend; recorded by the runner) and drop the hold
        (for a batch: every hold of ``batch_id``, whichever run made it)."""
        with self._lock:
            self.reserved -= hold.usd
            for reply in replies:
                self.calls += 1
                self.tokens_in += reply.tokens_in
                self.tokens_out += reply.tokens_out
                self.spent += reply.cost_usd
        if self.db is not None and batch_id is not None:
            self.db.release_batch(batch_id)
        elif self.db is not None and hold.id is not None:
            self.db.release(hold.id)

    def keep_for_batch(self, hold: Hold, batch_id: str) -> None:
        if self.db is not None and hold.id is not None:
            self.db.keep_for_batch(hold.id, batch_id)

    def summary(self) -> dict[str, Any]:
        out = {"calls": self.calls, "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
               "cost_usd": round(self.spent, 6), "max_cost_usd": self.max_cost_usd, "refused": self.refused,
               "budget_exceeded": None if self.stopped is None else str(self.stopped), "scope": self.scope}
        if self.db is not None:
            spent, held = self.db.totals(self.scope)
            out.update(ledger_spent_usd=round(spent, 6), ledger_held_usd=round(held, 6))
        return out
