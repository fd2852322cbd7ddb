"""The cost ledger in the cache database: each paid request recorded once, when its reply is committed;
budgets cumulative across runs and processes; batch holds kept until the batch settles; unpriced paid models
refused; both costs (spent by this run, what the results cost) reported."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from ift_select.core.errors import ConfigError
from ift_select.llm import ChatRequest, RequestCache, make_backend, run_requests
from ift_select.llm.ledger import LedgerDB
from ift_select.llm.urls import is_paid

PRICING = {"pricey": {"input": 100.0, "output": 400.0}, "batch_discount": 0.5}  # USD per 1M tokens


@pytest.fixture
def server(fake_openai):
    return fake_openai(batch_polls=1)


def backend(url, cache, **kw):
    return make_backend("openai", model="pricey", base_url=url, concurrency=2, pricing=PRICING,
                        api_key_env="IFT_TEST_UNSET_KEY", ledger_path=cache, **kw)


def requests(n: int, tag: str = "") -> list[ChatRequest]:
    return [ChatRequest(messages=(("user", f"Rate item {tag}{i}"),), max_tokens=8) for i in range(n)]


def charges(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT key, scope, usd, batch FROM charges").fetchall()


def test_each_paid_reply_recorded_once_and_results_cost_from_the_ledger(server, tmp_path):
    srv, url = server
    path = tmp_path / "requests.sqlite"
    cache = RequestCache(path)
    replies, first = run_requests(backend(url, path), requests(5), cache)
    rows = charges(path)
    assert len(rows) == 5 and first.cost_usd > 0 and first.results_cost_usd == pytest.approx(first.cost_usd)
    assert sum(r[2] for r in rows) == pytest.approx(first.cost_usd) and {r[1] for r in rows} == {f"{url}|pricey"}
    _, again = run_requests(backend(url, path), requests(5) + requests(2, "new"), RequestCache(path))
    assert again.cache_hits == 5 and again.requests == 2 and len(charges(path)) == 7  # a hit pays nothing new
    assert again.results_cost_usd == pytest.approx(first.cost_usd + again.cost_usd)
    assert LedgerDB(path).totals(f"{url}|pricey") == (pytest.approx(first.cost_usd + again.cost_usd), 0.0)


def test_budget_is_cumulative_across_runs(server, tmp_path):
    srv, url = server
    path = tmp_path / "requests.sqlite"
    _, first = run_requests(backend(url, path), requests(4), RequestCache(path))
    budget = first.cost_usd * 1.5  # room for about two more requests in all, whatever the run
    b = backend(url, path, max_cost_usd=budget)
    replies, second = run_requests(b, requests(6, "more"), RequestCache(path))
    assert b.ledger.stopped is not None and "all runs" in str(b.ledger.stopped)
    assert 0 < second.requests < 6 and second.not_sent == 6 - second.requests
    assert first.cost_usd + second.cost_usd <= budget
    assert replies[-1].error and replies[-1].error.startswith("not sent: max_cost_usd")
    assert b.ledger.summary()["ledger_spent_usd"] == pytest.approx(first.cost_usd + second.cost_usd)


RUN = """
import json, os, sys, time
from ift_select.llm import ChatRequest, RequestCache, make_backend, run_requests
url, cache, budget, name, go = sys.argv[1:]
b = make_backend("openai", model="pricey", base_url=url, concurrency=4, pricing=%r, max_cost_usd=float(budget),
                 api_key_env="IFT_TEST_UNSET_KEY", ledger_path=cache)
requests = [ChatRequest(messages=(("user", f"Rate {name}{i}"),), max_tokens=8) for i in range(40)]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
_, stats = run_requests(b, requests, RequestCache(cache))
print(json.dumps({**stats.to_dict(), "stopped": b.ledger.stopped is not None}))
""" % (PRICING,)


def test_two_processes_share_one_budget(tmp_path, fake_openai):
    srv, url = fake_openai(latency=0.05)
    cache, budget, go = tmp_path / "requests.sqlite", 0.05, tmp_path / "go"  # about a dozen of the 80 requests
    procs = [subprocess.Popen([sys.executable, "-c", RUN, url, str(cache), str(budget), name, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in "ab"]
    assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]  # type: ignore[union-attr]
    go.touch()  # both run at once
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-800:] for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    spent = sum(r["cost_usd"] for r in results)
    assert all(r["stopped"] and r["requests"] > 0 for r in results) and 0 < spent <= budget
    assert sum(r[2] for r in charges(cache)) == pytest.approx(spent) and len(charges(cache)) == srv.total
    assert LedgerDB(cache).totals(f"{url}|pricey")[1] == 0  # no hold left behind


def test_unpriced_model_refused_on_a_paid_endpoint(server):
    srv, url = server
    with pytest.raises(ConfigError, match=r"no price for model 'mystery'.*paid endpoint.*openai.paid: false"):
        make_backend("openai", model="mystery", base_url="https://api.example.invalid/v1", api_key_env="X_UNSET")
    with pytest.raises(ConfigError, match="no price for model 'mystery'"):
        make_backend("openai", model="mystery", base_url=url, paid=True, api_key_env="X_UNSET")
    make_backend("openai", model="mystery", base_url=url, api_key_env="X_UNSET")  # loopback: auto = free
    make_backend("openai", model="mystery", base_url="https://api.example.invalid/v1", paid=False,
                 api_key_env="X_UNSET")
    assert is_paid("auto", None) and is_paid("auto", "https://api.openai.com/v1")
    assert not any(is_paid("auto", u) for u in ("http://localhost:8000/v1", "http://10.1.2.3/v1", "http://[::1]:9/v1"))


def test_batch_hold_kept_until_the_batch_settles(server, tmp_path):
    srv, url = server
    path, state = tmp_path / "requests.sqlite", tmp_path / "batches.json"
    srv.batch_polls = 10**6  # still running when the first run stops waiting

    def batch_backend(**kw):
        return backend(url, path, batch_api=True, batch_state=str(state), poll_s=0.05, **kw)

    first = batch_backend(max_cost_usd=1.0, max_wait_s=0.2)
    _, stats = run_requests(first, requests(3), RequestCache(path))
    held = LedgerDB(path).batch_holds()
    assert stats.not_sent == 3 and list(held) == ["batch_1"] and held["batch_1"] > 0  # held, not released
    tight = batch_backend(max_cost_usd=held["batch_1"] * 1.01, max_wait_s=0.2)
    _, refused = run_requests(tight, requests(3, "other"), RequestCache(path))
    assert tight.ledger.stopped is not None and refused.not_sent == 3 and len(srv.batches) == 1
    srv.batch_polls = 0  # the provider finished meanwhile
    replies, done = run_requests(batch_backend(max_cost_usd=1.0), requests(3), RequestCache(path))
    assert [r.status for r in replies] == ["ok"] * 3 and not LedgerDB(path).batch_holds()
    rows = charges(path)
    assert len(rows) == 3 and all(r[3] == 1 for r in rows) and sum(r[2] for r in rows) == pytest.approx(done.cost_usd)
