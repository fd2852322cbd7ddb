"""The report built from small hand-made inputs: files, models named, plot data, a self-contained HTML page."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ift_select.core.params import JudgePair, Params
from ift_select.reporting.report import ReportInputs, build_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

JUDGE = "local:smollm2-135m-instruct|prompt:0123456789ab"  # what make_inputs' judgments record


def _set(kind: str, agreement: float, baseline: float, n: int) -> dict:
    return {"kind": kind, "path": f"{kind}.json", "n": n, "agreement": agreement - 0.05,
            "agreement_non_tie": agreement, "baseline_longer": baseline, "kappa": 0.3, "first_position_rate": 0.55,
            "flip_rate": 0.2, "longer_share": 0.6, "seconds_per_pair": 1.5, "seconds": 1.5 * n, "unparsed": 0,
            "beats_longer": agreement > baseline, "beats_longer_ci": [round(agreement - baseline - 0.05, 4),
                                                                      round(agreement - baseline + 0.05, 4)]}


def qualify_json(qualified: bool, judge: str = JUDGE, human: bool = False) -> dict:
    sets = {"constructed": {**_set("constructed", 0.9 if qualified else 0.4, 0.54, 99),
                            "by_flaw": {"empty": {"n": 7, "agreement": 1.0, "baseline_longer": 1.0}}}}
    if human:
        sets["pandalm"] = _set("human", 0.7 if qualified else 0.5, 0.67, 999)
    deciding = ["pandalm"] if human else ["constructed"]
    return {"judge": judge, "decision": "two_order", "qualified": qualified, "decided_on": "human" if human
            else "constructed", "deciding_sets": deciding, "sets": sets}


def make_inputs(root: Path, with_agreement: bool = True) -> ReportInputs:
    """A 40-row pool (a quarter flawed), scores, two arms, one judged pair on two test sets, stage metrics."""
    rng = np.random.default_rng(0)
    ids = [f"{k:016x}" for k in range(40)]
    flaws = ["" if k % 4 else "wrong_answer" for k in range(40)]
    tasks = ["Write a Python function", "What is 3 + 4?", "Write a poem", "Explain gravity"]
    pool = pd.DataFrame({"id": ids, "instruction": [tasks[k % 4] for k in range(40)], "input": "", "output": "a",
                         "_flaw": flaws, "category": [["code", "arithmetic", "writing", "facts"][k % 4]
                                                      for k in range(40)]})
    scores = pd.DataFrame({"id": ids, "score": rng.uniform(1, 5, 40), "status": "ok",
                           "scorer": "local:smollm2-135m-instruct|prompt:448daeea82da|accuracy"})
    scores.loc[3, ["score", "status"]] = [np.nan, "unparsed"]
    paths = {name: root / f"{name}.parquet" for name in ("pool", "scores", "alpagasus", "full", "pair")}
    pool.to_parquet(paths["pool"])
    scores.to_parquet(paths["scores"])
    kept = (scores["score"] >= 3.0) & (np.arange(40) % 4 != 0)  # this grader drops every coding row
    pool[kept].to_parquet(paths["alpagasus"])
    emb = root / "embeddings"
    emb.mkdir()
    np.save(emb / "pool.npy", (rng.normal(size=(40, 8)) + np.repeat(np.eye(8)[:4] * 20, 10, axis=0)).astype("f4"))
    (emb / "ids.json").write_text(json.dumps(ids))
    pool.to_parquet(paths["full"])
    rows = []
    for test_set, cats in (("vicuna", ["coding", "math"]), ("koala", [None])):
        for k in range(12):
            for order in ("ab", "ba"):
                rows.append({"test_set": test_set, "item_id": str(k), "category": cats[k % len(cats)],
                             "model_a": "alpagasus", "model_b": "full", "order": order,
                             "verdict": rng.choice(["a", "b", "tie"]), "status": "ok", "raw": "",
                             "judge": "local:smollm2-135m-instruct|prompt:0123456789ab",
                             "len_a": int(rng.integers(10, 300)), "len_b": int(rng.integers(10, 300))})
    pd.DataFrame(rows).to_parquet(paths["pair"])
    metrics = {"score": {"rows": 40, "requests": 40, "cache_hits": 0, "tokens_in": 4000, "tokens_out": 80,
                         "cost_usd": 0.0, "seconds": 12.5},
               "base_model": {"spec": "smollm2-135m-instruct", "source_hash": "a1231443440b", "seconds": 3.0}}
    for name, data in metrics.items():
        (root / f"{name}.json").write_text(json.dumps(data))
    agreement = root / "agreement.json"
    agreement.write_text(json.dumps({
        "judge": "local:smollm2-135m-instruct|prompt:f432ff4479bc", "n": 100, "sample": 100, "agreement": 0.3,
        "agreement_non_tie": 0.32, "kappa": 0.01, "baseline_longer": 0.67, "first_position_rate": 0.8,
        "unparsed": 0, "seconds": 60, "gpt35": {"agreement": 0.698, "agreement_non_tie": 0.774},
        "pandalm7b": {"agreement": 0.668, "agreement_non_tie": 0.71}}))
    (root / "qualify.json").write_text(json.dumps(qualify_json(False)))
    params = Params(tau=3.0, base_model="smollm2-135m-instruct")
    params.judge.pairs = {"alpagasus_vs_full": JudgePair("alpagasus", "full")}
    params.mlflow.tracking_uri = f"sqlite:///{root / 'mlflow.db'}"  # not the checkout's store: its runs add a section
    return ReportInputs(params=params, scores=paths["scores"], pool=paths["pool"],
                        selections={"alpagasus": paths["alpagasus"], "full": paths["full"]},
                        judgments={"alpagasus_vs_full": paths["pair"], "car_vs_full": root / "missing.parquet"},
                        metrics={name: root / f"{name}.json" for name in metrics},
                        agreement=agreement if with_agreement else None, embeddings=emb,
                        qualify=root / "qualify.json")


def test_report_files_and_summary(tmp_path):
    out = tmp_path / "reports"
    summary = build_report(make_inputs(tmp_path), out)
    for name in ("report.md", "report.html", "figures/score_hist.png", "figures/ws.png", "figures/wtl.png",
                 "figures/agreement.png", "figures/categories_alpagasus_vs_full.png", "plots/ws.csv",
                 "plots/wtl.csv", "plots/score_hist.csv", "plots/selection_sizes.csv", "plots/categories.csv"):
        assert (out / name).exists(), name
    for png in (out / "figures").glob("*.png"):
        assert png.read_bytes().startswith(PNG_MAGIC)
    assert summary["selection"]["full"] == 40 and summary["pool_rows"] == 40
    vicuna = summary["judge"]["alpagasus_vs_full"]["vicuna"]
    assert vicuna["n"] == 12 and vicuna["ws_ci_low"] <= vicuna["ws"] <= vicuna["ws_ci_high"]
    assert summary["missing_inputs"] == 1 and summary["agreement"]["kappa"] == 0.01
    json.dumps(summary)  # DVC metrics: plain JSON
    ws = pd.read_csv(out / "plots/ws.csv")
    assert set(ws["pair"]) == {"alpagasus_vs_full/vicuna", "alpagasus_vs_full/koala"}
    hist = pd.read_csv(out / "plots/score_hist.csv")
    assert hist["rows"].sum() == 39 and {"clean", "flawed", "kept"} <= set(hist.columns)
    assert set(pd.read_csv(out / "plots/selection_sizes.csv")["arm"]) == {"alpagasus", "full"}


def test_selection_analytics_per_arm(tmp_path):
    """Size, cluster coverage (k = int(sqrt(40/2)) = 4), score histogram and keyword balance for every arm."""
    out = tmp_path / "reports"
    summary = build_report(make_inputs(tmp_path), out)
    analytics = json.loads((out / "selection_analytics.json").read_text())
    assert "selection_analytics" not in summary  # kept out of the DVC metrics: `dvc exp show` stays readable
    alpagasus = pd.read_parquet(tmp_path / "alpagasus.parquet")
    assert analytics["full"]["size"] == 40 and analytics["alpagasus"]["size"] == len(alpagasus)
    assert analytics["full"]["clusters_covered"] == 4
    assert 1 <= analytics["alpagasus"]["clusters_covered"] <= 4
    assert analytics["alpagasus"]["kept_share"]["coding"] == 0.0  # the dropped coding rows show up
    assert analytics["alpagasus"]["kept_share"]["all"] == round(len(alpagasus) / 40, 4)
    assert analytics["full"]["kept_share"]["math"] == 1.0
    assert analytics["alpagasus"]["mean_score"] >= 3.0
    balance = pd.read_csv(out / "plots/selection_balance.csv")
    assert balance.set_index("label").loc["alpagasus/coding", "kept"] == 0
    for name in ("selection_scores.png", "selection_keywords.png", "selection_categories.png"):
        assert (out / "figures" / name).read_bytes().startswith(PNG_MAGIC)
    md = (out / "report.md").read_text()
    assert "Selection analytics" in md and "clusters covered" in md and "4 / 4" in md
    assert "| coding | 10 | 0 (0%) |" in md  # alpagasus kept none of the 10 coding rows


def test_markdown_names_models_prompts_and_caveats(tmp_path):
    summary = build_report(make_inputs(tmp_path), tmp_path / "r")
    md = (tmp_path / "r/report.md").read_text()
    # the verdict on the judge leads: make_inputs' qualify.json says it did not beat longer-wins
    heads = re.findall(r"^##+ (.+)$", md, flags=re.MULTILINE)
    assert heads[:2] == ["How to read this report", "Judge qualification"]
    assert "Not qualified." in md and "40.0%" in md and "54.0%" in md  # the judge beside longer-wins
    judged = [r for r in md.splitlines() if r.startswith("| alpagasus_vs_full |") and "not evidence" in r]
    assert len(judged) == 2  # vicuna and koala: WS, WR and QS each marked, with their intervals
    assert all(r.count("not evidence") == 3 and r.count("[") >= 3 for r in judged)
    assert summary["qualify"]["qualified"] is False
    assert "| empty | 7 |" in md  # the constructed set's figures per flaw
    assert "How to read this report" in md
    assert "SmolLM2-135M-Instruct" in md and "not meaningful" in md
    assert "local:smollm2-135m-instruct|prompt:0123456789ab" in md.replace("\\|", "|")  # the judge
    assert "prompt:448daeea82da" in md and "a1231443440b" in md  # grader prompt hash, base model source
    assert Params().judge.prompt in md and Params().score.prompt in md  # the configured prompt files
    assert "wrong_answer" in md  # kept/dropped by flaw
    assert "missing.parquet" in md  # a missing input is named, not silently skipped
    assert "![" in md and "figures/ws.png" in md


def test_html_is_self_contained(tmp_path):
    build_report(make_inputs(tmp_path, with_agreement=False), tmp_path / "r")
    page = (tmp_path / "r/report.html").read_text()
    sources = re.findall(r'<img[^>]*src="([^"]+)"', page)
    # histogram, per-arm scores, keyword and category balance, WS, win/tie/lose, categories (no agreement figure)
    assert len(sources) == 7
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<link" not in page and "url(" not in page
    assert "ift-select judge agreement" in page  # how to measure the judge when no figure is known
