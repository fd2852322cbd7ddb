"""Runs that share one request cache at the same time (queued experiments, two commands) pay for each request
once: a request another live run is sending is waited for and read from the cache; one whose sender was
killed is taken over. Checked with the loopback server's own count per request body."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from fake_openai import FakeOpenAI

ROWS = 24
CONCURRENCY = 4
DRIVER = """
import json, sys
from ift_select.llm import ChatRequest, RequestCache, make_backend, run_requests
url, cache, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
backend = make_backend("openai", model="gpt-4o-mini", base_url=url, concurrency=%d, api_key_env="IFT_TEST_UNSET_KEY",
                       pricing={"gpt-4o-mini": {"input": 0.15, "output": 0.60}})
requests = [ChatRequest(messages=(("user", f"Rate row {i}."),), max_tokens=4) for i in range(rows)]
print("READY", flush=True)
sys.stdin.readline()  # go
replies, stats = run_requests(backend, requests, RequestCache(cache))
print(json.dumps({"texts": [r.text for r in replies], "status": [r.status for r in replies], **stats.to_dict()}))
""" % CONCURRENCY


def start(url: str, cache: Path, rows: int = ROWS) -> subprocess.Popen:
    """The driver, imports done, waiting for ``go``."""
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, url, str(cache), str(rows)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return proc


def ready(*procs: subprocess.Popen) -> None:
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY", proc.stderr.read() if proc.stderr else ""


def go(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def claims(cache: Path) -> int:
    try:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM claims").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_two_runs_at_once_pay_each_request_once(tmp_path):
    srv = FakeOpenAI(latency=1.5)  # 24 requests at concurrency 4: ~9 s of sending, so the runs overlap under load
    url = srv.start()
    cache = tmp_path / "requests.sqlite"
    try:
        a, b = start(url, cache), start(url, cache)
        ready(a, b)
        go(a), go(b)
        first, second = finish(a), finish(b)
    finally:
        srv.stop()
    assert srv.total == ROWS and set(srv.attempts.values()) == {1}, "a request was sent twice"
    assert first["texts"] == second["texts"] and set(first["status"]) == {"ok"}
    assert first["requests"] + second["requests"] == ROWS
    assert first["cache_hits"] + second["cache_hits"] == ROWS  # what one run sent, the other read
    assert min(first["requests"], second["requests"]) < ROWS, "the runs did not overlap"
    assert claims(cache) == 0
    with sqlite3.connect(cache) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_requests_of_a_killed_run_are_taken_over(tmp_path):
    """The first run claims every request and is killed with most in flight or unsent; the second, waiting
    on its claims, sends the rest itself: nothing is lost, at most the requests in flight are sent twice."""
    srv = FakeOpenAI(latency=2.0)
    url = srv.start()
    cache = tmp_path / "requests.sqlite"
    try:
        killed, waiter = start(url, cache), start(url, cache)
        ready(killed, waiter)
        go(killed)
        deadline = time.monotonic() + 120
        while srv.total < CONCURRENCY and time.monotonic() < deadline:
            time.sleep(0.02)
        go(waiter)
        time.sleep(0.5)  # the second run sees the first's claims and waits on them
        assert claims(cache) == ROWS and srv.total == CONCURRENCY
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        result = finish(waiter)
    finally:
        srv.stop()
    assert set(result["status"]) == {"ok"} and len(result["texts"]) == ROWS
    twice = sum(n - 1 for n in srv.attempts.values())
    assert len(srv.attempts) == ROWS and twice <= CONCURRENCY
    assert result["requests"] + result["cache_hits"] == ROWS and result["requests"] >= ROWS - CONCURRENCY
    assert claims(cache) == 0


OPENER = """
import sys, time, traceback
from ift_select.llm.cache import RequestCache
from ift_select.llm.claims import Claims
from ift_select.llm.ledger import LedgerDB
root, start, paths, gap = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
failed = 0
for i in range(paths):
    while time.time() < start + i * gap:
        pass
    path = f"{root}/cache{i}.sqlite"
    try:
        RequestCache(path), LedgerDB(path), Claims(path)
    except Exception:
        failed += 1
        traceback.print_exc()
print(failed)
"""


def test_processes_opening_a_new_cache_at_once_all_get_it(tmp_path):
    """Queued experiments start together on a fresh cache: every process opens it (SQLite may refuse the switch
    to WAL without waiting; the switch is retried)."""
    processes, paths = 8, 30
    start_at = time.time() + 4  # after every process's imports
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, str(tmp_path), str(start_at), str(paths), "0.1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    results = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in results]
    failed = [int(out.strip()) for out, _ in results]
    assert sum(failed) == 0, next(err for _, err in results if "Error" in err)[-2000:]
    for i in range(paths):
        with sqlite3.connect(tmp_path / f"cache{i}.sqlite") as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
