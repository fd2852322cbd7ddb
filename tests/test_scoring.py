import math

import pandas as pd
import pytest

from ift_select.llm import ChatReply, RequestCache, make_backend
from ift_select.llm.templates import load_template
from ift_select.grading.alpagasus import expected_score, parse_score, read_reply, score_pool


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
    rating = read_reply(ChatReply(text="no idea"), min_mass=0.1)
    assert rating.status == "unparsed" and math.isnan(rating.score)
    assert read_reply(ChatReply(text="", status="error"), 0.1).status == "error"


def test_expected_score_from_probabilities():
    probs = {"0": 0.0, "1": 0.0, "2": 0.0, "3": 0.1, "4": 0.2, "5": 0.1}
    assert expected_score(probs, min_mass=0.1) == pytest.approx((0.3 + 0.8 + 0.5) / 0.4)
    assert expected_score(probs, min_mass=0.5) is None  # too little mass on the score tokens: parse text
    assert read_reply(ChatReply(text="4", token_probs={"4": 0.01}), 0.1).method == "text"


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
