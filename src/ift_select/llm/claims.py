"""Requests that some run is sending right now, kept beside the replies in the request cache's database, so
that runs sharing one cache at the same time (queued DVC experiments, two ``ift-select score`` commands) pay
for each request once.

A run claims the requests it is about to send (one transaction that also sees the replies committed so far),
sends its own, then waits for those another live run holds and reads their replies from the cache. A claim
whose owner is gone (killed: its pid no longer exists, or was reused by another process) is taken over; so is
a claim from another host once it is older than ``LEASE_S``. A reply is committed before its claim is
dropped, and a run drops its claims when it ends.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from ift_select.llm import sqlite_wal

LEASE_S = 3600.0  # claims of another host (whose processes cannot be checked) expire after this
POLL_S = 0.2
_CHUNK = 500  # keys per IN (...) query
HOST = socket.gethostname()


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/<pid>/stat), which tells a reused pid apart; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _process_id(pid: int) -> str:
    return f"{pid}:{_start_time(pid) or ''}"


def _alive(process: str, host: str, started: float) -> bool:
    if host != HOST:
        return time.time() - started < LEASE_S
    pid = int(process.split(":", 1)[0])
    if Path("/proc/self/stat").exists():
        return _process_id(pid) == process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _chunks(keys: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(keys), _CHUNK):
        yield keys[i:i + _CHUNK]


class Claims:
    """This run's claims in the cache database at ``path`` (the ``replies`` table must exist)."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite_wal.connect(path, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                         "process TEXT NOT NULL, host TEXT NOT NULL, started REAL NOT NULL)")
        self.process = _process_id(os.getpid())
        self.owner = uuid.uuid4().hex

    def _answered(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for part in _chunks(keys):
            marks = ",".join("?" * len(part))
            found.update(k for (k,) in self._db.execute(f"SELECT key FROM replies WHERE key IN ({marks})", part))
        return found

    def _holders(self, keys: Sequence[str]) -> dict[str, tuple[str, str, str, float]]:
        out: dict[str, tuple[str, str, str, float]] = {}
        for part in _chunks(keys):
            marks = ",".join("?" * len(part))
            for key, *rest in self._db.execute(
                    f"SELECT key, owner, process, host, started FROM claims WHERE key IN ({marks})", part):
                out[key] = tuple(rest)  # type: ignore[assignment]
        return out

    def claim(self, keys: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
        """Split ``keys`` (distinct, not cached when looked up) into (claimed by this run: send them, answered
        meanwhile: read them from the cache, held by another live run: ``wait`` for them)."""
        mine: list[str] = []
        theirs: list[str] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            answered = self._answered(keys)
            open_keys = [k for k in keys if k not in answered]
            now = time.time()
            self._db.executemany(
                "INSERT OR IGNORE INTO claims (key, owner, process, host, started) VALUES (?, ?, ?, ?, ?)",
                [(k, self.owner, self.process, HOST, now) for k in open_keys])
            holders = self._holders(open_keys)
            for key in open_keys:
                owner, process, host, started = holders[key]
                if owner == self.owner:
                    mine.append(key)
                elif _alive(process, host, started):
                    theirs.append(key)
                else:
                    self._db.execute("UPDATE claims SET owner = ?, process = ?, host = ?, started = ? WHERE key = ?",
                                     (self.owner, self.process, HOST, now, key))
                    mine.append(key)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return mine, [k for k in keys if k in answered], theirs

    def wait(self, keys: Sequence[str]) -> tuple[list[str], list[str]]:
        """Wait until each of ``keys`` is answered or its claim is gone without an answer (the other run
        failed it, or died): (answered, orphaned: claim them again)."""
        pending = list(keys)
        answered: list[str] = []
        while pending:
            done = self._answered(pending)
            answered += [k for k in pending if k in done]
            pending = [k for k in pending if k not in done]
            holders = self._holders(pending)
            orphans = [k for k in pending if k not in holders or not _alive(*holders[k][1:])]
            if orphans or not pending:
                return answered, orphans
            time.sleep(POLL_S)
        return answered, []

    def release(self) -> None:
        """Drop every claim this run holds (its replies, if any, are already committed)."""
        self._db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))

    def close(self) -> None:
        self.release()
        self._db.close()
