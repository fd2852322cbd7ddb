"""Reading judge replies: a corpus of real replies (PandaLM's bundled GPT-3.5 and PandaLM-7B judgments) plus
hand-written awkward cases, and how judge_pair turns positional replies into model-terms judgments."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest

from ift_select.evaluation.parse import parse_reply, parse_scores, parse_verdict
from ift_select.evaluation.pairwise import judge_pair, reference_generations
from ift_select.llm.base import ChatReply, ChatRequest, OnReply
from ift_select.llm.templates import load_template

GPT_LABEL = {"1": "1", "2": "2", "Tie": "tie", "garbage": None}


@pytest.fixture
def gpt35(shared_data) -> list[dict[str, Any]]:
    return json.loads(shared_data("pandalm170/gpt-3.5-turbo-testset-v1.json").read_text())


def test_gpt35_result_field_parses_exactly(gpt35):
    assert len(gpt35) == 999
    for rec in gpt35:
        assert parse_verdict(rec["gpt_result"]) == GPT_LABEL[rec["gpt_result"]], rec["idx"]
    assert sum(parse_verdict(r["gpt_result"]) is None for r in gpt35) == 25  # the "garbage" replies


def test_pandalm_style_replies_verdict_then_reason(gpt35):
    """A PandaLM-format reply is the verdict line, then the reason: the first line decides."""
    for rec in gpt35:
        reply = f"{rec['gpt_result']}\n\n### Reason: {rec['gpt_reason']}"
        assert parse_verdict(reply) == GPT_LABEL[rec["gpt_result"]], reply


def test_free_text_reasons_are_read_cautiously(gpt35):
    """Reasons alone are prose. Whatever the parser reads from them must mostly match the judge's own label;
    descriptive sentences ("Response 1 provides ...") stay unread instead of being guessed."""
    read = [(parse_verdict(r["gpt_reason"]), GPT_LABEL[r["gpt_result"]]) for r in gpt35 if r["gpt_reason"]]
    readable = [(got, want) for got, want in read if got is not None]
    assert len(readable) >= 300
    assert sum(got == want for got, want in readable) / len(readable) >= 0.85


def test_pandalm7b_reasons(shared_data):
    records = json.loads(shared_data("pandalm170/pandalm-7b-testset-v1.json").read_text())
    label = {0: "tie", 1: "1", 2: "2"}
    readable = [(parse_verdict(r["pandalm_reason"]), label[r["pandalm_result"]]) for r in records]
    readable = [(g, w) for g, w in readable if g is not None]
    assert len(readable) >= 600 and all(g == w for g, w in readable)


@pytest.mark.parametrize("text, expected", [
    ("8 9", (8, 9)), ("8, 9", (8, 9)), ("8,9", (8, 9)), ("8/10 9/10", (8, 9)), ("8/10, 6/10", (8, 6)),
    ("7.5 8", (7.5, 8)), ("Scores: 8.5 and 7", (8.5, 7)), ("[[8, 9]]", (8, 9)), ("10 3", (10, 3)),
    ("Assistant 1: 8\nAssistant 2: 9", (8, 9)), ("Assistant 2: 7, Assistant 1: 9", (9, 7)),
    ("Assistant 1 and Assistant 2: 8 9", (8, 9)), ("Score for Assistant 1 and 2: 8 9", (8, 9)),
    ("Answer B gets 6 points. Answer A gets 8.", (8, 6)), ("8 out of 10 and 6 out of 10", (8, 6)),
    ("Sure! Here are my scores.\n7 4\nAssistant 1 is more detailed.", (7, 4)), ("8\n9", (8, 9)),
    ("Assistant 1 receives a score of 8, while Assistant 2 receives 6.", (8, 6)),
    ("**Assistant 1**: 6/10\n**Assistant 2**: 9/10", (6, 9)),
])
def test_score_pairs(text, expected):
    assert parse_scores(text) == expected


@pytest.mark.parametrize("text", ["", "garbage", "I think 7", "1990 and 2000", "42 17", "N/A", "Both are fine."])
def test_unreadable_scores(text):
    assert parse_scores(text) is None


@pytest.mark.parametrize("text, expected", [
    ("[[A]]", "1"), ("[[B]]", "2"), ("[[C]]", "tie"), ("My final verdict: [[ B ]]", "2"),
    ("Explanation mentions [[A]] format... final verdict: [[B]]", "2"), ("A]]", "1"),
    ("Tie", "tie"), ("2", "2"), ("Response 2 is better because it is concise.", "2"),
    ("Assistant A is better than Assistant B.", "1"), ("Output (b) is preferred.", "2"),
    ("Both responses are incorrect.", "tie"), ("Both are close, but Response 1 is more accurate.", "1"),
    ("Response 1 is incomplete and does not answer.", "2"),
])
def test_verdicts(text, expected):
    assert parse_verdict(text) == expected


@pytest.mark.parametrize("text", ["", "garbage", "Response 1 provides a list.", "[[D]]", "I cannot decide"])
def test_unreadable_verdicts(text):
    assert parse_verdict(text) is None


def test_parse_reply_falls_back_to_the_other_kind():
    assert parse_reply("Assistant 2 is better.", "scores").verdict == "2"
    assert parse_reply("9 4", "verdict").verdict == "1"
    assert parse_reply("7 7", "scores").verdict == "tie"
    assert not parse_reply("no idea", "scores").ok


SECOND_ANSWER = ("[The Start of Assistant 2's Answer]", "[The Start of Assistant B's Answer]",
                 "[The Start of Answer 2]")


class FakeJudge:
    """Prefers whichever answer contains GOOD, wherever it is shown; speaks the template's format."""

    name = "fake"

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def identity(self) -> dict[str, Any]:
        return {"backend": "fake", "mode": self.mode}

    def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply) -> None:
        for i, req in enumerate(requests):
            user = req.messages[1][1]
            second = min(user.index(m) for m in SECOND_ANSWER if m in user)
            good_first = user.index("GOOD") < second
            if self.mode == "text":
                on_reply(i, ChatReply(text="9 2\nreason" if good_first else "Assistant 1: 2\nAssistant 2: 9"))
            elif self.mode == "probs":
                p = {"A": 0.7, "B": 0.2, "C": 0.1} if good_first else {"A": 0.1, "B": 0.8, "C": 0.1}
                on_reply(i, ChatReply(text="", token_probs=p))
            else:
                on_reply(i, ChatReply(text="no idea"))


def _gens() -> tuple[pd.DataFrame, pd.DataFrame]:
    base = pd.DataFrame({"test_set": "t", "item_id": ["1", "2"], "instruction": ["q1", "q2"], "input": ["", "x"]})
    return base.assign(output=["GOOD one", "meh"]), base.assign(output=["meh", "GOOD two"])


@pytest.mark.parametrize("mode, prompt", [("text", "prompts/judge_pair_score.txt"),
                                          ("probs", "prompts/judge_mt_bench_prefill.txt")])
def test_judge_pair_maps_positions_to_models(mode, prompt):
    gen_a, gen_b = _gens()
    judgments, stats = judge_pair(gen_a, gen_b, "x", "y", FakeJudge(mode), load_template(prompt), None)
    assert stats.rows == 4 and len(judgments) == 4
    assert set(judgments["order"]) == {"ab", "ba"} and (judgments["status"] == "ok").all()
    by_item = judgments.groupby("item_id")["verdict"].agg(set)
    assert by_item["1"] == {"a"} and by_item["2"] == {"b"}  # same winner in both orders
    assert (judgments["model_a"] == "x").all() and (judgments["len_a"] > 0).all()
    if mode == "text":
        item1 = judgments[judgments["item_id"] == "1"]
        assert (item1["score_a"] == 9).all() and (item1["score_b"] == 2).all()
    else:
        item1 = judgments[judgments["item_id"] == "1"]
        assert (item1["prob_a"] > item1["prob_b"]).all() and item1["prob_tie"].round(3).eq(0.1).all()


def test_unreadable_replies_are_counted_not_tied():
    gen_a, gen_b = _gens()
    judgments, _ = judge_pair(gen_a, gen_b, "x", "y", FakeJudge("junk"), load_template("prompts/judge_pair_score.txt"),
                              None)
    assert (judgments["status"] == "unparsed").all() and judgments["verdict"].isna().all()


def test_reference_generations_and_category():
    tests = pd.DataFrame({"id": ["1", "2"], "test_set": "t", "instruction": ["q1", "q2"], "input": ["", ""],
                          "reference": ["GOOD ref", None], "category": ["c1", "c2"]})
    refs = reference_generations(tests)
    assert list(refs["item_id"]) == ["1"]
    gen_a, _ = _gens()
    judgments, _ = judge_pair(gen_a, refs, "x", "reference", FakeJudge("text"),
                              load_template("prompts/judge_reference.txt"), None, tests=tests)
    assert set(judgments["item_id"]) == {"1"} and (judgments["category"] == "c1").all()


def test_judge_command_end_to_end(tmp_path):
    """`ift-select judge` with the tiny local model: both orders written, figures per test set on the last line."""
    from typer.testing import CliRunner

    from ift_select.cli import app

    gen_a, gen_b = _gens()
    gen_a.to_json(tmp_path / "arm1.jsonl", orient="records", lines=True)
    gen_b.to_parquet(tmp_path / "arm2.parquet")
    tests = pd.DataFrame({"id": ["1", "2"], "test_set": "t", "instruction": ["q1", "q2"], "input": ["", "x"],
                          "reference": [None, None], "category": ["c1", "c2"]})
    tests.to_parquet(tmp_path / "tests.parquet")
    out = tmp_path / "judgments.parquet"
    result = CliRunner().invoke(app, [
        "judge", "--a", str(tmp_path / "arm1.jsonl"), "--b", str(tmp_path / "arm2.parquet"), "--out", str(out),
        "--tests", str(tmp_path / "tests.parquet"), "--backend", "local", "--model", "tiny-random-llama",
        "--prompt", "prompts/judge_mt_bench_prefill.txt", "--max-new-tokens", "2", "--no-cache",
        "--params", str(tmp_path / "none.yaml"), "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert last["rows"] == 4 and set(last["by_test_set"]) == {"t"}
    judgments = pd.read_parquet(out)
    assert len(judgments) == 4 and set(judgments["model_a"]) == {"arm1"} and set(judgments["category"]) == {"c1", "c2"}
    assert judgments["judge"].str.startswith("local:tiny-random-llama|prompt:").all()
