import math

import pandas as pd
import pytest

from ift_select.llm import ChatReply, ChatRequest, RequestCache, make_backend
from ift_select.llm.templates import load_template
from ift_select.grading.alpagasus import check_failures, checked_error, parse_score, rate, score_pool, summarize
from ift_select.grading.check import check_request, checked_score, p_correct
from ift_select.grading.expected import continue_digits, first_digit


@pytest.mark.parametrize("text, value", [
    ("4.5", 4.5),
    ("Score: 4", 4.0),
    ("4.5/5", 4.5),
    ("4.5 out of 5", 4.5),
    ("5\nThe response is accurate.", 5.0),
    ("**3**", 3.0),
    ("I would rate it 2 points.", 2.0),
    ("Rating: 0", 0.0),
    ("The response is fine.\nScore: 3.5", 3.5),
])
def test_scores_parse(text, value):
    assert parse_score(text) == value


@pytest.mark.parametrize("text", ["", "garbage", "The answer is good.", "Score: 9", "7.5", "-"])
def test_garbage_is_not_a_score(text):
    assert parse_score(text) is None


def test_unparsed_reply_is_nan_not_zero():
    rating = rate(ChatReply(text="no idea"), None, min_mass=0.1)
    assert rating.status == "unparsed" and math.isnan(rating.score) and rating.error == "no score in the reply"
    failed = rate(ChatReply(text="", status="error", error="HTTP 503: busy"), None, 0.1)
    assert failed.status == "error" and failed.error == "HTTP 503: busy" and math.isnan(failed.expected)


def positions(*steps):
    return [(token, dict(alternatives)) for token, alternatives in steps]


REQUEST = ChatRequest(messages=(("user", "Rate it."), ("assistant", "Score: ")), score_tokens=tuple("012345"))


def test_expected_score_reads_the_half_point_from_the_reply():
    """A reply "4.5" with P(4) = 0.9, P(5) = 0.1 and P("." | 4) = 0.95: exact at 4.5, not "about 4"."""
    reply = ChatReply(text="4.5", positions=positions(("4", {"4": 0.9, " 5": 0.1}), (".", {".": 0.95, "": 0.05}),
                                                      ("5", {"5": 0.8, "0": 0.2})))
    state = first_digit(REQUEST, reply)
    assert state.wanted() == ["4"]  # 5 is the top of the scale: nothing to continue
    assert continue_digits([state], lambda batch: pytest.fail("no follow-up needed")) == 0
    assert state.expected() == pytest.approx(0.9 * (4 + 0.95 * 0.4) + 0.1 * 5)
    rating = rate(reply, state, 0.1)
    assert (rating.score, rating.method) == (4.5, "probs")


def test_expected_score_continues_each_likely_digit_with_a_prefill():
    """First-token probabilities only (no positions): each likely digit is continued by follow-ups that
    prefill "Score: 3" then "Score: 3."; unlikely digits count as whole numbers."""
    reply = ChatReply(text="3.5", token_probs={"0": 0.0, "1": 0.02, "2": 0.0, "3": 0.6, "4": 0.38, "5": 0.0})
    state = first_digit(REQUEST, reply)
    sent = []

    def send(batch):
        sent.extend(r.messages[-1][1] for r in batch)
        return [ChatReply(text="", token_probs={".": 0.5} if r.messages[-1][1].endswith(("3", "4")) else
                          {d: float(d == "5") for d in "0123456789"}) for r in batch]

    assert continue_digits([state], send) == 4
    assert sent == ["Score: 3", "Score: 4", "Score: 3.", "Score: 4."]
    assert state.expected() == pytest.approx((0.02 * 1 + 0.6 * 3.25 + 0.38 * 4.25) / 1.0)


def test_failures_name_the_endpoint_and_the_first_error():
    frame = pd.DataFrame({"status": ["error", "ok", "error"], "error": ["connection refused", "", "HTTP 500"]})
    message = check_failures(frame, "openai:m at http://127.0.0.1:9/v1", max_error_rate=0.05)
    assert message == ("openai:m at http://127.0.0.1:9/v1: 2 of 3 rows failed (67% > score.max_error_rate = 0.05); "
                       "first error: connection refused")
    assert check_failures(frame, "e", max_error_rate=0.7) is None
    none_ok = pd.DataFrame({"status": ["unparsed"], "error": ["no score in the reply"]})
    assert check_failures(none_ok, "e", 1.0) == "e: no row was graded; first error: no score in the reply"


@pytest.mark.slow
def test_local_grader_scores_every_row_and_caches(tmp_path):
    pool = pd.DataFrame({"id": ["a", "b", "c"], "instruction": ["Add 2 and 3.", "Name a color.", "Say hi."],
                         "input": ["", "", ""], "output": ["5", "Blue.", "Hi!"]})
    backend = make_backend("local", model="tiny-random-llama", batch_size=2)
    cache = RequestCache(tmp_path / "cache.sqlite")
    template = load_template("prompts/alpagasus_rating_prefill.txt")
    scores, stats = score_pool(pool, backend, template, cache, max_tokens=4)
    assert list(scores["id"]) == ["a", "b", "c"]
    assert set(scores["status"]) <= {"ok", "unparsed"}
    ok = scores[scores["status"] == "ok"]
    assert ((ok["score"] >= 0) & (ok["score"] <= 5)).all()
    assert stats.requests >= 3 and stats.cache_hits == 0
    again, stats2 = score_pool(pool, backend, template, cache, max_tokens=4)
    assert stats2.requests == 0 and stats2.cache_hits >= 3
    pd.testing.assert_series_equal(scores["score"], again["score"])


def test_extra_grader_settings_override_the_primary():
    from ift_select.core.params import ScoreParams

    primary = ScoreParams(backend="openai", model="gpt-4o-mini",
                          graders={"helpfulness": {"dimension": "helpfulness"},
                                   "other": {"model": "claude-compatible", "openai": {"base_url": "http://h/v1"}}})
    helpful = primary.grader("helpfulness")
    assert (helpful.dimension, helpful.model, helpful.backend) == ("helpfulness", "gpt-4o-mini", "openai")
    other = primary.grader("other")
    assert other.openai.base_url == "http://h/v1" and other.openai.api_key_env == "OPENAI_API_KEY"


def test_extra_grader_columns_join_by_id():
    from ift_select.grading.alpagasus import GRADER_COLUMNS, with_grader_columns

    base = pd.DataFrame({"id": ["a", "b"], **{c: [1, 2] for c in GRADER_COLUMNS}})
    extra = pd.DataFrame({"id": ["b", "a"], **{c: [20, 10] for c in GRADER_COLUMNS}})
    merged = with_grader_columns(base, extra, "helpfulness")
    assert list(merged["score_helpfulness"]) == [10, 20]
    assert list(merged["score"]) == [1, 2]


def test_a_dead_endpoint_fails_with_its_address_and_reason(tmp_path):
    """Every request refused (nothing listens on the port): each row says why, and the run must fail."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    url = f"http://127.0.0.1:{port}/v1"
    backend = make_backend("openai", model="grader", base_url=url, max_retries=1, timeout_s=1)
    backend.retry = type(backend.retry)(max_retries=1, base_s=0.01)
    pool = pd.DataFrame({"id": ["a", "b"], "instruction": ["Say hi.", "Say bye."], "input": "", "output": ["Hi", "Bye"]})
    scores, stats = score_pool(pool, backend, load_template("prompts/alpagasus_rating.txt"), None)
    assert list(scores["status"]) == ["error", "error"]
    assert all(e.startswith("gave up after 2 attempts: ") for e in scores["error"])
    metrics = summarize(scores, stats)
    assert (metrics["errors"], metrics["retries"]) == (2, 2)
    from ift_select.grading.alpagasus import endpoint

    message = check_failures(scores, endpoint(backend), 0.05)
    assert message.startswith(f"openai:grader at {url}: no row was graded; first error: gave up after 2 attempts")


@pytest.fixture(scope="module")
def smollm2_server():
    from llamacpp import llama_server, smollm2_gguf

    with llama_server(smollm2_gguf()) as url:
        yield url


TINY_POOL = pd.DataFrame({"id": ["a", "b"], "instruction": ["Name a fruit.", "Add 3 and 4."], "input": "",
                          "output": ["Apple.", "7"]})


@pytest.mark.slow
def test_a_real_grader_that_writes_half_points_scores_them(smollm2_server, tmp_path, repo_root):
    """SmolLM2 through llama.cpp, prompted with examples that all score 4.5, writes "4.5": `score` is 4.5, and
    `score_expected` weighs every likely first digit with its own fraction (follow-ups that continue the reply)."""
    backend = make_backend("openai", model="smollm2", base_url=smollm2_server, prefill="send", concurrency=1,
                           timeout_s=600)
    template = load_template(repo_root / "tests/fixtures/prompts/rating_fewshot_half.txt")
    cache = RequestCache(tmp_path / "cache.sqlite")
    scores, stats = score_pool(TINY_POOL, backend, template, cache, max_tokens=4)
    assert list(scores["score"]) == [4.5, 4.5] and list(scores["method"]) == ["probs", "probs"]
    assert stats.requests > len(TINY_POOL)  # the fractions were asked for
    assert summarize(scores, stats)["fraction_requests"] == stats.requests - len(TINY_POOL)
    assert ((scores["score_expected"] > 3) & (scores["score_expected"] < 5)).all()
    assert (scores["score_expected"] % 1 != 0).all()  # continuous, not a first-token integer mix
    again, stats2 = score_pool(TINY_POOL, backend, template, cache, max_tokens=4)
    assert stats2.requests == 0
    pd.testing.assert_series_equal(scores["score_expected"], again["score_expected"])


@pytest.mark.slow
def test_a_windowed_backend_gets_each_rows_follow_ups_before_later_ratings(smollm2_server, tmp_path, repo_root):
    """A backend with a ``followup_window`` (the managed llama.cpp server's prompt cache) is graded that many
    rows at a time: a row's fractional follow-ups reach the server before any later row's rating, and the
    scores are those of the whole-pool order."""
    template = load_template(repo_root / "tests/fixtures/prompts/rating_fewshot_half.txt")
    pool = pd.concat([TINY_POOL, TINY_POOL.assign(id=["c", "d"], output=["A banana.", "Seven."])], ignore_index=True)

    def graded(window: int | None, cache_name: str):
        backend = make_backend("openai", model="smollm2", base_url=smollm2_server, prefill="send", concurrency=1,
                               timeout_s=600)
        backend.followup_window = window
        rows_sent: list[int] = []
        complete = backend.complete

        def recording(requests, on_reply):
            for request in requests:
                question = next(text for role, text in request.messages if role == "user")
                rows_sent.append(next(i for i, out in enumerate(pool["output"]) if f"Response: {out}\n" in question))
            complete(requests, on_reply)

        backend.complete = recording
        scores, stats = score_pool(pool, backend, template, RequestCache(tmp_path / cache_name), max_tokens=4)
        return scores, stats, rows_sent

    whole, whole_stats, whole_order = graded(None, "whole.sqlite")
    windowed, windowed_stats, order = graded(1, "windowed.sqlite")
    # how many follow-ups a row needs rests on probability thresholds, which llama.cpp's batch shapes can nudge
    assert whole_stats.requests > len(pool) and windowed_stats.requests > len(pool)
    assert order == sorted(order) and set(order) == set(range(len(pool)))  # row by row, follow-ups included
    assert whole_order != sorted(whole_order)  # the whole-pool order sends every rating first
    assert windowed["score"].tolist() == whole["score"].tolist()
    assert windowed["score_expected"].to_numpy() == pytest.approx(whole["score_expected"].to_numpy(), abs=0.05)
    assert windowed_stats.requests == len(pool) + windowed.attrs["followups"]


def test_a_correctness_check_replaces_the_prefill_or_follows_as_a_user_turn():
    rating = ChatRequest(messages=(("system", "Rate it."), ("user", "Response: 7"), ("assistant", "Score: ")),
                         max_tokens=8, logprobs=20)
    asked = check_request(rating, "Correct (yes or no):")
    assert asked.messages == rating.messages[:2] + (("assistant", "Correct (yes or no):"),)
    assert asked.max_tokens == 1 and asked.logprobs > 0
    assert check_request(rating, "Correct?", prefill=False).messages[-1] == ("user", "Correct?")


def test_the_check_reads_yes_against_no_and_caps_what_it_doubts():
    def reply(dist, text="Yes"):
        return ChatReply(text=text, positions=[(text, dist)])

    assert p_correct(reply({" Yes": 0.6, " No": 0.2, " Maybe": 0.2}), 0.1) == pytest.approx(0.75)
    assert p_correct(reply({" maybe": 0.9}, text="No."), 0.1) == 0.0  # probabilities miss: the written answer
    assert math.isnan(p_correct(reply({" maybe": 0.9}, text="maybe"), 0.1))
    assert math.isnan(p_correct(ChatReply(text="", status="error", error="HTTP 500"), 0.1))
    assert checked_score(4.5, 1.0) == 4.5 and checked_score(4.5, 0.0) == 2.0 and checked_score(1.0, 0.0) == 1.0
    assert checked_score(4.0, 0.5) == pytest.approx(3.0) and checked_score(4.0, math.nan) == 4.0


def test_a_failed_check_makes_its_row_an_error_with_the_reason():
    ok = rate(ChatReply(text="4"), None, 0.1)
    failed = checked_error(ok, ChatReply(text="", status="error", error="HTTP 503: busy"))
    assert failed.status == "error" and failed.error == "correctness check: HTTP 503: busy" and failed.score == 4.0
    assert checked_error(ok, ChatReply(text="Yes")) == ok and checked_error(ok, None) == ok


@pytest.mark.slow
def test_each_check_follows_its_own_rating_through_a_real_server(smollm2_server, tmp_path, repo_root):
    """SmolLM2 through llama.cpp: every row's check is sent right after that row's rating (so the server's
    slot still holds the row's prompt), ``p_correct`` is a probability, ``score_checked`` lies between the
    rubric's error cap and ``score_expected``, and a rerun is served from the cache."""
    backend = make_backend("openai", model="smollm2", base_url=smollm2_server, prefill="send", concurrency=1,
                           timeout_s=600)
    sent: list[str] = []
    complete = backend.complete

    def recording(requests, on_reply):
        sent.extend(request.messages[-1][1] for request in requests)
        complete(requests, on_reply)

    backend.complete = recording
    template = load_template(repo_root / "prompts/alpagasus_rating_rubric.txt")
    cache = RequestCache(tmp_path / "cache.sqlite")
    question = "Correct and complete (yes or no):"
    scores, stats = score_pool(TINY_POOL, backend, template, cache, max_tokens=4, fractions=False, check=question)
    assert sent == ["Score: ", question] * len(TINY_POOL) and stats.requests == 2 * len(TINY_POOL)
    assert (scores["status"] == "ok").all() and scores["p_correct"].between(0, 1).all()
    expected, checked = scores["score_expected"], scores["score_checked"]
    assert (checked <= expected + 1e-9).all() and (checked >= expected.clip(upper=2.0) - 1e-9).all()
    assert summarize(scores, stats)["checked"] == len(TINY_POOL) and "[check]" in scores["raw"].iloc[0]
    again, stats2 = score_pool(TINY_POOL, backend, template, cache, max_tokens=4, fractions=False, check=question)
    assert stats2.requests == 0
    pd.testing.assert_frame_equal(scores.drop(columns="raw"), again.drop(columns="raw"))
