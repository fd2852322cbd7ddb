"""The judge stage refuses to report on a judge whose requests failed: over judge.max_error_rate (or all of
them) it exits non-zero naming the endpoint and the first error, and writes no judgments. The faults are
injected by the loopback fake server (a 400 for chosen requests; a real server rarely fails on cue)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fake_openai import FakeOpenAI
from judge_workdir import QUESTIONS, make_workdir

from ift_select.core.config import load_params
from ift_select.core.errors import IftSelectError
from ift_select.core.stage import lookup, main


@pytest.fixture(scope="module")
def server():
    srv = FakeOpenAI()
    url = srv.start()
    yield url
    srv.stop()


def _judge(url: str, **extra) -> dict:
    return {"backend": "openai", "model": "fake", "prompt": "prompts/judge_mt_bench.txt", "max_new_tokens": 8,
            "openai": {"base_url": url, "api_key_env": "IFT_TEST_UNSET_KEY", "max_retries": 0,
                       "concurrency": 4}, **extra}


def _answers(faulty: int) -> list[str]:
    return [("[fault:400] " if k < faulty else "") + q[1] for k, q in enumerate(QUESTIONS)]


def test_error_share_over_the_limit_fails_naming_endpoint_and_first_error(server, tmp_path, monkeypatch, capsys):
    root = make_workdir(tmp_path, _judge(server), _answers(1))  # 1 item of 4: 2 of 8 requests fail
    monkeypatch.chdir(root)
    monkeypatch.setenv("IFT_SELECT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as exit_:
        main("judge", ["good_vs_bad"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: stage judge@good_vs_bad: {server}: 2 of 8 judge requests failed (25% > "
                          "judge.max_error_rate = 0.05); first error: HTTP 400")
    assert not (root / "data/judgments/good_vs_bad.parquet").exists()  # nothing half-written


def test_under_the_limit_the_failures_are_counted(server, tmp_path, monkeypatch):
    root = make_workdir(tmp_path, _judge(server, max_error_rate=0.5), _answers(1))
    monkeypatch.chdir(root)
    monkeypatch.setenv("IFT_SELECT_CACHE_DIR", str(tmp_path / "cache"))
    metrics = lookup("judge").body(load_params(), "good_vs_bad")
    figures = metrics["by_test_set"]["t"]
    assert metrics["errors"] == 2 and figures["errors"] == 2 and figures["judgments"] == 8
    assert figures["incomplete"] >= 1 and figures["n"] + figures["incomplete"] == 4
    judgments = pd.read_parquet(root / "data/judgments/good_vs_bad.parquet")
    assert judgments["error"].dropna().str.contains("HTTP 400").sum() == 2


def test_all_requests_failing_fails_whatever_the_limit(server, tmp_path, monkeypatch):
    root = make_workdir(tmp_path, _judge(server, max_error_rate=1.0), _answers(len(QUESTIONS)))
    monkeypatch.chdir(root)
    monkeypatch.setenv("IFT_SELECT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(IftSelectError, match="every one of the 8 judge requests failed; first error: "):
        lookup("judge").body(load_params(), "good_vs_bad")


def test_vs_reference_pair_uses_the_reference_prompt_and_counts_missing_references(server, tmp_path, monkeypatch):
    root = make_workdir(tmp_path, _judge(server, reference_prompt="prompts/judge_reference.txt"))
    monkeypatch.chdir(root)
    monkeypatch.setenv("IFT_SELECT_CACHE_DIR", str(tmp_path / "cache"))
    metrics = lookup("judge").body(load_params(), "good_vs_ref")
    assert metrics["prompt"] == "prompts/judge_reference.txt" and metrics["items_without_reference"] == 1
    judgments = pd.read_parquet(root / "data/judgments/good_vs_ref.parquet")
    assert set(judgments["model_b"]) == {"reference"} and len(judgments) == 6  # 3 items with a reference
    assert json.dumps(metrics["by_test_set"]["t"]["vs_reference"]) == "true"
