"""OpenAI Batch API mode against a loopback fake of /v1/files and /v1/batches (no real server offers batches
offline): results mapped back by custom_id, batch prices, resumable after an interrupted wait."""

from __future__ import annotations

import json

import pytest

from ift_select.llm import ChatRequest, RequestCache, make_backend, run_requests

PRICING = {"gpt-4o-mini": {"input": 0.15, "output": 0.60}, "batch_discount": 0.5}


@pytest.fixture
def server(fake_openai):
    return fake_openai(batch_polls=2)


def backend(url, state, **kw):
    return make_backend("openai", model="gpt-4o-mini", base_url=url, batch_api=True, batch_state=str(state),
                        poll_s=0.05, pricing=PRICING, api_key_env="IFT_TEST_UNSET_KEY", **kw)


def requests(n: int, fault: str = "") -> list[ChatRequest]:
    return [ChatRequest(messages=(("user", f"Rate item {i}{fault if i == 0 else ''}"),), max_tokens=4,
                        score_tokens=tuple("012345")) for i in range(n)]


def test_batch_maps_replies_back_at_batch_prices(server, tmp_path):
    srv, url = server
    reqs = requests(7) + requests(1)  # a duplicate request is sent once and answered twice
    replies, stats = run_requests(backend(url, tmp_path / "b.json"), reqs, RequestCache(tmp_path / "c.sqlite"))
    assert [r.status for r in replies] == ["ok"] * 8 and len(srv.batches) == 1
    lines = srv.files["file-1"].decode().splitlines()
    assert len(lines) == 7 and {json.loads(ln)["url"] for ln in lines} == {"/v1/chat/completions"}
    assert replies[7].text == replies[0].text and replies[0].token_probs is not None
    full = sum(PRICING["gpt-4o-mini"]["input"] * r.tokens_in + PRICING["gpt-4o-mini"]["output"] * r.tokens_out
               for r in replies[:7]) / 1e6
    assert sum(r.cost_usd for r in replies[:7]) == pytest.approx(full / 2)
    assert json.loads((tmp_path / "b.json").read_text())  # the batch is on record
    _, again = run_requests(backend(url, tmp_path / "b.json"), reqs, RequestCache(tmp_path / "c.sqlite"))
    assert again.cache_hits == 8 and len(srv.batches) == 1


def test_interrupted_wait_resumes_the_same_batch(server, tmp_path):
    srv, url = server
    srv.batch_polls = 10**6  # never finishes while we wait
    first = backend(url, tmp_path / "b.json", max_wait_s=0.2)
    replies, stats = run_requests(first, requests(5), RequestCache(tmp_path / "c.sqlite"))
    assert stats.not_sent == 5 and first.pending == ["batch_1"]
    srv.batch_polls = 0  # the provider finished in the meantime
    replies, stats = run_requests(backend(url, tmp_path / "b.json"), requests(5), RequestCache(tmp_path / "c.sqlite"))
    assert [r.status for r in replies] == ["ok"] * 5 and len(srv.batches) == 1 and len(srv.files) == 2


def test_failed_lines_are_resubmitted_alone(server, tmp_path):
    srv, url = server
    reqs = requests(4, fault=" [fault:500]")
    replies, _ = run_requests(backend(url, tmp_path / "b.json"), reqs, RequestCache(tmp_path / "c.sqlite"))
    assert [r.status for r in replies] == ["error", "ok", "ok", "ok"] and "HTTP 500" in (replies[0].error or "")
    run_requests(backend(url, tmp_path / "b.json"), reqs, RequestCache(tmp_path / "c.sqlite"))
    assert len(srv.batches) == 2 and len(srv.files["file-3"].decode().splitlines()) == 1  # only the failed one


def test_budget_refuses_a_whole_batch(server, tmp_path):
    srv, url = server
    b = backend(url, tmp_path / "b.json", max_cost_usd=1e-7)
    replies, stats = run_requests(b, requests(3), None)
    assert stats.not_sent == 3 and b.ledger.stopped is not None and not srv.batches
