"""max_cost_usd stops a run before the budget is exceeded; what finished is saved and a rerun pays only for
the rest."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ift_select.llm import RequestCache, make_backend
from ift_select.llm.templates import load_template
from ift_select.grading.alpagasus import score_pool

PRICING = {"pricey": {"input": 100.0, "output": 400.0}, "batch_discount": 0.5}  # USD per 1M tokens
ROWS = 30


@pytest.fixture
def server(fake_openai):
    return fake_openai(latency=0.01)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(ROWS)], "instruction": [f"Question {i}?" for i in range(ROWS)],
                         "input": "", "output": "An answer of moderate length."})


def run(url, frame, template, cache, budget):
    backend = make_backend("openai", model="pricey", base_url=url, concurrency=4, pricing=PRICING,
                           max_cost_usd=budget, api_key_env="IFT_TEST_UNSET_KEY")
    scores, stats = score_pool(frame, backend, template, cache, max_tokens=8)
    return backend.ledger, scores, stats


def test_budget_stops_cleanly_and_rerun_pays_only_the_rest(server, frame, repo_root, tmp_path):
    srv, url = server
    template = load_template(repo_root / "prompts/alpagasus_rating.txt")
    cache = RequestCache(tmp_path / "cache.sqlite")
    budget = 0.25  # about 40% of what the run costs
    ledger, scores, stats = run(url, frame, template, cache, budget)
    assert ledger.stopped is not None
    assert 0 < ledger.spent <= budget and stats.cost_usd == pytest.approx(ledger.spent)
    ok = scores["status"] == "ok"
    assert 0 < ok.sum() < ROWS and stats.not_sent == ROWS - ok.sum()
    assert (scores.loc[~ok, "status"] == "error").all() and scores.loc[~ok, "score"].isna().all()
    assert cache.count() == ok.sum() == srv.total  # everything paid for is saved

    paid_first = srv.total
    ledger2, scores2, stats2 = run(url, frame, template, cache, None)
    assert (scores2["status"] == "ok").all() and ledger2.stopped is None
    assert stats2.cache_hits == paid_first and srv.total == ROWS  # no request paid twice
    assert scores2.loc[ok.to_numpy(), "score"].tolist() == scores.loc[ok, "score"].tolist()


def test_cli_reports_the_budget_stop(server, repo_root, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ift_select.cli import app

    srv, url = server
    monkeypatch.chdir(repo_root)
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"instruction": f"Q{i}?", "input": "", "output": "A."}) + "\n"
                            for i in range(ROWS)))
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({"pricing": PRICING}))
    result = CliRunner().invoke(app, [
        "score", "--input", str(pool), "--out", str(tmp_path / "scores.parquet"), "--backend", "openai",
        "--base-url", url, "--model", "pricey", "--max-cost", "0.2", "--concurrency", "2",
        "--cache", str(tmp_path / "c.sqlite"), "--prompt", "prompts/alpagasus_rating.txt", "--params", str(params)])
    assert result.exit_code == 2
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["budget"]["budget_exceeded"] and out["cost_usd"] <= 0.2
    assert out["scored"] + out["unparsed"] + out["errors"] == out["rows"] == ROWS
    assert out["not_sent"] == ROWS - out["scored"] and out["requests"] == srv.total
    assert pd.read_parquet(tmp_path / "scores.parquet")["status"].eq("ok").sum() == out["scored"]
