"""The openai backend against a loopback server that misbehaves: 429 with Retry-After, 500, replies slower than
the timeout, empty and malformed replies, dropped connections. The run always finishes and every row ends
ok, unparsed or error, with counts that add up."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from fake_openai import FakeOpenAI

from ift_select.llm import ChatRequest, RequestCache, make_backend, run_requests
from ift_select.llm.templates import load_template
from ift_select.grading.alpagasus import score_pool, summarize

# row instruction -> final status
EXPECTED = {
    "plain": "ok", "[fault:429:1]": "ok", "[fault:500:2]": "ok", "[fault:500]": "error", "[fault:slow:1]": "ok",
    "[fault:empty]": "unparsed", "[fault:nochoices]": "error", "[fault:malformed:1]": "ok",
    "[fault:malformed]": "error", "[fault:drop:1]": "ok", "[fault:drop]": "error", "[fault:text]": "ok",
    "[fault:garbage]": "unparsed", "[fault:400]": "error",
}


@pytest.fixture
def server():
    srv = FakeOpenAI(slow_s=1.5, retry_after="1")
    url = srv.start()
    yield srv, url
    srv.stop()


def pool(instructions) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(instructions))], "instruction": list(instructions),
                         "input": "", "output": "An answer."})


def backend(url: str, **kw):
    settings = dict(model="fake", base_url=url, concurrency=8, timeout_s=0.5, max_retries=2,
                    api_key_env="IFT_TEST_UNSET_KEY")
    return make_backend("openai", **{**settings, **kw})


def test_every_row_ends_ok_unparsed_or_error(server, repo_root, tmp_path):
    srv, url = server
    frame = pool(EXPECTED)
    cache = RequestCache(tmp_path / "cache.sqlite")
    start = time.monotonic()
    scores, stats = score_pool(frame, backend(url), load_template(repo_root / "prompts/alpagasus_rating.txt"),
                               cache, max_tokens=8)
    assert time.monotonic() - start < 30
    got = dict(zip(frame["instruction"], scores["status"]))
    assert got == EXPECTED
    summary = summarize(scores, stats)
    assert summary["scored"] + summary["unparsed"] + summary["errors"] == len(frame)
    assert summary["errors"] == list(EXPECTED.values()).count("error")
    assert scores.loc[scores["status"] != "ok", "score"].isna().all()  # never a score for a failure
    by = dict(zip(frame["instruction"], scores["method"]))
    assert by["plain"] == "probs" and by["[fault:text]"] == "text"
    assert cache.count() == list(EXPECTED.values()).count("ok") + 2 * list(EXPECTED.values()).count("unparsed")


def test_retry_after_is_honoured_and_capped(server):
    srv, url = server
    request = ChatRequest(messages=(("user", "rate [fault:429:1]"),), max_tokens=4)
    replies, _ = run_requests(backend(url), [request], None)
    assert replies[0].status == "ok" and replies[0].attempts == 2
    (times,) = srv.times.values()
    assert times[1] - times[0] >= 1.0  # Retry-After: 1

    srv.retry_after = "600"  # longer than max_retry_after_s: give up at once rather than stall the run
    start = time.monotonic()
    replies, stats = run_requests(backend(url), [ChatRequest(messages=(("user", "b [fault:429]"),))], None)
    assert replies[0].status == "error" and "Retry-After" in (replies[0].error or "")
    assert time.monotonic() - start < 5 and stats.errors == 1


def test_backoff_gives_up_after_max_retries(server):
    srv, url = server
    replies, _ = run_requests(backend(url, max_retries=3), [ChatRequest(messages=(("user", "x [fault:500]"),))], None)
    assert replies[0].status == "error" and "gave up after 4 attempts" in (replies[0].error or "")
    assert srv.total == 4


def test_auth_failure_stops_the_run(server):
    srv, url = server
    requests = [ChatRequest(messages=(("user", f"q{i} [fault:401]"),)) for i in range(40)]
    b = backend(url, concurrency=2)
    replies, stats = run_requests(b, requests, None)
    assert b.fatal and "401" in b.fatal
    assert all(r.status == "error" for r in replies) and stats.errors == 40
    assert srv.total <= 2 and stats.not_sent >= 38  # the rest were not sent once the key was refused
    assert "HTTP 401" in (replies[0].error or "")


def test_server_without_logprobs_support(server):
    srv, url = server
    srv.reject_logprobs = True
    requests = [ChatRequest(messages=(("user", f"q{i}"),), max_tokens=4, score_tokens=tuple("012345"))
                for i in range(5)]
    replies, _ = run_requests(backend(url, concurrency=1), requests, None)
    assert all(r.status == "ok" and r.token_probs is None and r.text for r in replies)
    assert srv.total == 6  # one refused request, then asked without logprobs from then on


def test_request_bodies_identity_and_helpers(monkeypatch):
    from ift_select.llm.endpoint import first_token_probs
    from ift_select.llm.openai_compat import parse_retry_after
    from ift_select.llm.urls import public_url

    monkeypatch.setenv("IFT_TEST_KEY", "sk-test-SECRET-123456")
    scored = ChatRequest(messages=(("system", "s"), ("user", "u"), ("assistant", "Score: ")), max_tokens=0,
                         score_tokens=("1", "2"))
    drop, send, cont = (make_backend("openai", model="m", base_url="http://u:p@127.0.0.1:9/v1?key=k",
                                     api_key_env="IFT_TEST_KEY", prefill=mode) for mode in ("drop", "send", "continue"))
    assert [m["role"] for m in drop.body(scored)["messages"]] == ["system", "user"] and "logprobs" not in drop.body(scored)
    assert send.body(scored)["messages"][-1] == {"role": "assistant", "content": "Score: "}
    assert send.body(scored)["top_logprobs"] == 20 and send.body(scored)["max_tokens"] == 1
    assert cont.body(scored)["continue_final_message"] is True
    identity = drop.identity()
    assert identity["base_url"] == "http://127.0.0.1:9/v1" and "SECRET" not in repr(identity) + repr(vars(drop))
    assert drop.scrub("echo Bearer sk-test-SECRET-123456") == "echo Bearer ***"
    assert public_url("https://[::1]:8443/v1") == "https://[::1]:8443/v1"
    top = {"content": [{"top_logprobs": [{"token": " 2", "logprob": 0.0}, {"token": "x", "logprob": None}]}]}
    assert first_token_probs(top, ("1", "2")) == {"1": 0.0, "2": 1.0} and first_token_probs(None, ("1",)) is None
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25 and parse_retry_after({}) is None
