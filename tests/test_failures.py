"""Failures a user can act on: every failed request keeps its reason, retries are counted, and
``failure_message`` turns a run of failures into one message naming the endpoint and the first reason."""

from __future__ import annotations


from ift_select.llm import ChatRequest, make_backend, run_requests
from ift_select.llm.runner import failure_message
from ift_select.llm.urls import endpoint_name
from ift_select.reporting.costs import costs_section


def test_reasons_and_retries_are_kept_end_to_end(fake_openai):
    _, url = fake_openai(retry_after="0")
    b = make_backend("openai", model="m", base_url=url, api_key_env="IFT_TEST_UNSET_KEY", max_retries=2,
                     concurrency=2)
    rows = ["fine", "busy [fault:429:1]", "broken [fault:500]", "refused [fault:400]"]
    replies, stats = run_requests(b, [ChatRequest(messages=(("user", r),)) for r in rows], None)
    assert [r.status for r in replies] == ["ok", "ok", "error", "error"]
    assert [r.attempts for r in replies] == [1, 2, 3, 1] and stats.attempts == 7 and stats.retries == 3
    assert "gave up after 3 attempts: HTTP 500" in (replies[2].error or "") and "HTTP 400" in (replies[3].error or "")
    assert stats.to_dict()["retries"] == 3
    statuses, errors = [r.status for r in replies], [r.error for r in replies]
    assert failure_message(statuses, errors, 0.05, b.endpoint, "x.max_error_rate", "requests") == (
        f"{b.endpoint}: 2 of 4 requests failed (50% > x.max_error_rate = 0.05); first error: {replies[2].error}")
    assert failure_message(statuses, errors, 0.5, b.endpoint, "x.max_error_rate", "requests") is None  # at the limit


def test_a_dead_endpoint_fails_the_run_naming_it():
    b = make_backend("openai", model="m", base_url="http://127.0.0.1:9/v1", api_key_env="IFT_TEST_UNSET_KEY",
                     max_retries=0, timeout_s=2)
    replies, _ = run_requests(b, [ChatRequest(messages=(("user", "hi"),))] * 2, None)
    message = failure_message([r.status for r in replies], [r.error for r in replies], 1.0, b.endpoint,
                              "x.max_error_rate", "requests")  # no ok reply fails whatever the rate
    assert message is not None and message.startswith("http://127.0.0.1:9/v1: every one of the 2 requests failed; "
                                                      "first error: ") and "connection" in message
    assert endpoint_name("https://u:pw@h.example/v1?api_key=s3cr3t&v=1") == "https://h.example/v1?v=1"
    assert failure_message([], [], 0.0, "x", "x.max_error_rate", "requests") is None  # nothing asked: nothing to fail
    assert failure_message(["ok"], [None], 0.0, "x", "x.max_error_rate", "requests") is None
    unread = failure_message(["unparsed"], ["no score in the reply"], 0.0, "x", "s", "rows", nothing_ok="no row was read")
    assert unread == "x: no row was read; first error: no score in the reply"
    assert failure_message(["unparsed"], [None], 0.0, "x", "s", "rows") is None  # not an error: only counted
    assert failure_message([], [], 0.0, "x", "s", "rows", nothing_ok="no row was graded") == \
        "x: no row was graded; first error: no rows"  # a grading run with no rows fails, as before
    assert failure_message(["error", "ok"], [float("nan"), None], 0.0, "x", "s", "rows") == \
        "x: 1 of 2 rows failed (50% > s = 0); first error: no reason given"


def test_costs_section_shows_spent_and_results_cost():
    metrics = {"score": {"rows": 4, "requests": 1, "cache_hits": 3, "cost_usd": 0.01, "results_cost_usd": 0.04,
                         "seconds": 2.0, "graders": {"helpful": {"cost_usd": 0.02, "results_cost_usd": 0.05}}},
               "judge_a_vs_b": {"rows": 8, "cost_usd": 0.0, "results_cost_usd": 0.3, "seconds": 1.0},
               "base_model": {"spec": "x"}}
    _, table = costs_section(metrics)
    assert "spent by this run (USD)" in table.headers and "results cost (USD)" in table.headers
    by = {row[0]: dict(zip(table.headers, row)) for row in table.rows}
    assert by["score"]["spent by this run (USD)"] == 0.03 and by["score"]["results cost (USD)"] == 0.09
    assert by["total"]["spent by this run (USD)"] == 0.03 and by["total"]["results cost (USD)"] == 0.39
    assert "base_model" not in by
