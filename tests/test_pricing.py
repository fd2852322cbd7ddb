"""Price table, token counting, estimates and the budget ledger (ift_select.llm.pricing)."""

from __future__ import annotations

import json

import pytest
import yaml

from ift_select.core.errors import ConfigError
from ift_select.llm import ChatReply, ChatRequest
from ift_select.llm.ledger import Ledger
from ift_select.llm.pricing import PriceTable, TokenCounter, estimate, prompt_tokens, token_counter

CHARS4 = TokenCounter("chars/4", lambda t: -(-len(t) // 4))


def test_params_pricing_costs(repo_root):
    table = PriceTable.from_params(yaml.safe_load((repo_root / "params.yaml").read_text())["pricing"])
    assert table.cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert table.cost("gpt-4o-mini", 1_000_000, 1_000_000, batch=True) == pytest.approx(0.375)
    assert table.cost("gpt-4o-mini-2024-07-18", 2_000_000, 0) == pytest.approx(0.30)  # dated snapshot
    assert table.price("my-local-model") is None and table.cost("my-local-model", 10**6, 10**6) == 0.0


@pytest.mark.parametrize("pricing, where", [
    ({"m": {"input": -1, "output": 1}}, "pricing.m.input"),
    ({"m": {"input": 1}}, "pricing.m"),
    ({"m": {"input": 1, "output": "cheap"}}, "pricing.m.output"),
    ({"batch_discount": 2}, "pricing.batch_discount"),
])
def test_bad_pricing_names_the_setting(pricing, where):
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        PriceTable.from_params(pricing)


def test_estimate_counts_prompt_and_caps_replies():
    requests = [ChatRequest(messages=(("system", "x" * 40), ("user", "y" * 8)), max_tokens=10)] * 3
    per = prompt_tokens(requests[0], CHARS4)
    assert per == 10 + 2 + 2 * 4 + 3
    out = estimate(requests, "m", {"m": {"input": 1e6, "output": 2e6}}, CHARS4)
    assert out["tokens_in"] == 3 * per and out["max_tokens_out"] == 30
    assert out["usd"] == pytest.approx(3 * per + 2 * 30)
    assert out["token_count_method"] == "chars/4" and out["priced"]
    assert estimate(requests, "m", {"m": {"input": 1e6, "output": 2e6}}, CHARS4, batch=True)["usd"] == \
        pytest.approx((3 * per + 60) / 2)


def test_token_counter_falls_back():
    assert token_counter("not-a-known-model").method == "chars/4"
    hf = token_counter("tiny-random-llama")  # a local model: its own tokenizer
    assert hf.method == "hf:tiny-random-llama" and 0 < hf.count("hello world") < 6


def test_ledger_reserves_worst_case_and_stops_for_good():
    ledger = Ledger("m", {"m": {"input": 1e6, "output": 1e6}}, max_cost_usd=100.0, counter=CHARS4)
    request = ChatRequest(messages=(("user", "z" * 40),), max_tokens=20)  # 10+4+3 = 17 in (+10%: 19), 20 out
    first = ledger.reserve([request])
    assert first is not None and first.usd == pytest.approx(39.0)
    second = ledger.reserve([request])
    assert second is not None and ledger.reserve([request]) is None  # 39 + 39 + 39 > 100
    assert ledger.stopped is not None and "max_cost_usd = 100" in str(ledger.stopped)
    ledger.settle(first, [ChatReply(text="4", tokens_in=17, tokens_out=1, cost_usd=18.0)])
    assert ledger.reserve([request]) is None  # once stopped, stays stopped: the run ends cleanly
    summary = ledger.summary()
    assert summary["cost_usd"] == 18.0 and summary["refused"] == 2 and summary["calls"] == 1
    json.dumps(summary)


def test_budget_needs_a_price():
    with pytest.raises(ConfigError, match="no price for model 'unpriced'"):
        Ledger("unpriced", {"m": {"input": 1, "output": 1}}, max_cost_usd=1.0)
    assert Ledger("unpriced", {}).reserve([ChatRequest(messages=(("user", "x"),))]).usd == 0.0  # no budget: no cap


def test_estimate_cli(repo_root, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ift_select.cli import app

    monkeypatch.chdir(repo_root)
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"instruction": f"Say {i}.", "input": "", "output": f"{i}"}) + "\n"
                            for i in range(5)))
    result = CliRunner().invoke(app, ["estimate", "--input", str(pool), "--model", "gpt-4o-mini",
                                      "--prompt", "prompts/alpagasus_rating.txt", "--max-tokens", "8"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["requests"] == 5 and out["max_tokens_out"] == 40 and out["usd"] > 0
    assert out["token_count_method"].split(":")[0] in ("tiktoken", "hf", "chars/4")
    assert out["paid"] and out["scope"] == "https://api.openai.com/v1|gpt-4o-mini" and "ledger_spent_usd" in out
