"""End to end: `dvc repro` on a tiny configuration (the traced run of conftest's audited_pipeline, copied), then
experiments rerun only what they change: -S tau, -S n1/n2, a new arm in params.yaml, the IQS scorer. (The queued
tau sweep that `ift-select compare` reads back from MLflow is tests/test_queue.py.)"""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
import yaml

from pipeline_repo import copy_repo, dvc, pipeline_env, ran_and_skipped, run

pytestmark = pytest.mark.slow

ALL_ARMS = ("alpagasus", "random", "car", "full")


@pytest.fixture(scope="module")
def repo(audited_pipeline, tmp_path_factory):
    base, audit_dir = audited_pipeline
    root = copy_repo(base, tmp_path_factory.mktemp("e2e") / "repo")
    return root, (audit_dir / "repro.log").read_text()


def test_repro_writes_every_output(repo):
    root, output = repo
    ran, _ = ran_and_skipped(output)
    for arm in ALL_ARMS:
        assert {f"select@{arm}", f"train@{arm}", f"generate@{arm}"} <= ran
        assert (root / f"models/{arm}/lineage.json").exists()
    assert {"prepare", "testset@tiny", "score", "embed", "arms", "base_model", "reference", "report"} <= ran
    for name in ("report.md", "report.html", "summary.json"):
        assert (root / "reports" / name).stat().st_size > 0
    assert list((root / "reports/figures").glob("*.png"))
    summary = json.loads((root / "reports/summary.json").read_text())
    assert summary["selected"]["full"] == 36 - _duplicates(root)
    scores = pd.read_parquet(root / "data/scores/scores.parquet")
    assert set(scores["status"]) <= {"ok", "unparsed", "error"}
    assert len(scores) == summary["selected"]["full"]


def _duplicates(root) -> int:
    return json.loads((root / "metrics/prepare.json").read_text())["pool"]["duplicates"]


def test_metrics_and_plots_visible_to_dvc(repo):
    root, _ = repo
    shown = dvc(root, "metrics", "show", "--json").stdout
    assert "selected" in shown
    plots = dvc(root, "plots", "show", "--json").stdout
    assert "ws.csv" in plots


def test_mlflow_run_recorded(repo):
    root, _ = repo
    with sqlite3.connect(root / "mlflow.db") as db:
        names = {r[0] for r in db.execute("SELECT name FROM runs")}
        metrics = {r[0] for r in db.execute("SELECT key FROM metrics")}
    assert {"prepare", "score", "report"} <= names
    assert any(key.startswith("selected.") for key in metrics)


def test_judge_is_qualified_before_the_report_names_a_winner(repo):
    """qualify_judge measures the configured judge on the constructed and the human-labelled set; the report
    leads with its verdict and the vs-reference pair is judged with the reference prompt."""
    root, output = repo
    ran, _ = ran_and_skipped(output)
    assert {"labelled_pairs@constructed", "labelled_pairs@human", "qualify_judge", "judge@car_vs_ref"} <= ran
    qualify = json.loads((root / "metrics/qualify.json").read_text())
    sets = qualify["sets"]
    assert (sets["constructed"]["n"], sets["human"]["n"]) == (12, 6)  # the tiny params' sample, the fixture
    assert sets["human"]["baseline_longer"] == 0.2 and sets["constructed"]["by_method"] == {"probs": 24}
    assert qualify["decided_on"] == "human" and qualify["qualified"] == sets["human"]["beats_longer"]
    md = (root / "reports/report.md").read_text()
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert headings[:2] == ["How to read this report", "Judge qualification"]
    agreement = md[md.index("## Judge agreement with people"):]
    assert "Measured in this run by the qualify_judge stage" in agreement and "human (6 pairs" in agreement
    summary = json.loads((root / "reports/summary.json").read_text())
    assert summary["qualify"]["qualified"] == qualify["qualified"]
    ref = json.loads((root / "metrics/judge_car_vs_ref.json").read_text())
    assert ref["prompt"] == "prompts/judge_reference_prefill.txt"
    assert ref["items_without_reference"] == 6 and list(ref["by_test_set"]) == ["coach"]  # tiny has none
    assert set(pd.read_parquet(root / "data/judgments/car_vs_ref.parquet")["model_b"]) == {"reference"}


def test_a_qualification_setting_reruns_only_qualification(repo, tmp_path):
    base, _ = repo
    root = copy_repo(base, tmp_path / "repo")
    out = dvc(root, "exp", "run", "-S", "judge.qualify.sets.constructed.sample=8")
    ran, skipped = ran_and_skipped(out.stdout + out.stderr)
    assert {"labelled_pairs@constructed", "qualify_judge", "report"} <= ran
    assert not ran & {"labelled_pairs@human", "judge@alpagasus_vs_full", "judge@car_vs_ref", "generate@full"}
    assert json.loads((root / "metrics/qualify.json").read_text())["sets"]["constructed"]["n"] == 8


def test_tau_experiment_reruns_only_what_tau_feeds(repo):
    root, _ = repo
    scores = pd.read_parquet(root / "data/scores/scores.parquet")
    tau = float(scores["score_expected"].median())  # the tiny pipeline selects on score_expected
    before = len(pd.read_parquet(root / "data/selected/alpagasus.parquet"))
    out = dvc(root, "exp", "run", "-S", f"tau={tau}")
    ran, skipped = ran_and_skipped(out.stdout + out.stderr)
    assert {"select@alpagasus", "select@random", "train@alpagasus", "train@random"} <= ran
    assert {"prepare", "score", "embed", "base_model", "select@car", "select@full", "train@full",
            "train@car"} <= skipped
    assert not ran & {"prepare", "score", "embed", "base_model", "train@full", "train@car"}
    assert "select@car" in skipped and "select@full" in skipped
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["arms"]["params"]["params.yaml"]["tau"] == pytest.approx(tau)
    assert json.loads((root / "data/arms/alpagasus.json").read_text())["tau"] == pytest.approx(tau)
    assert "tau" not in lock["stages"]["score"]["params"]["params.yaml"]
    after = len(pd.read_parquet(root / "data/selected/alpagasus.parquet"))
    assert after < before
    assert len(pd.read_parquet(root / "data/selected/random.parquet")) == after


def test_car_experiment_reruns_only_select_car_and_downstream(repo):
    """CaR's n1 and n2 feed select@car and what depends on it; embed, score and the other arms stay cached."""
    root, _ = repo
    settings = {"n1": 3, "n2": 2}
    out = dvc(root, "exp", "run", *[arg for key, value in settings.items() for arg in ("-S", f"{key}={value}")])
    ran, skipped = ran_and_skipped(out.stdout + out.stderr)
    assert {"select@car", "train@car", "generate@car", "report"} <= ran  # a tiny random model may answer alike
    assert {"prepare", "score", "embed", "base_model", "select@alpagasus", "select@random", "select@full",
            "train@alpagasus", "train@random", "train@full"} <= skipped
    assert not ran & {"prepare", "score", "embed", "base_model", "train@alpagasus", "train@random", "train@full",
                      "generate@full", "judge@alpagasus_vs_full"}
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    metrics = json.loads((root / "metrics/select_car.json").read_text())
    for key, value in settings.items():
        assert lock["stages"]["arms"]["params"]["params.yaml"][key] == value
        assert json.loads((root / "data/arms/car.json").read_text())[key] == value
        assert metrics[key] == value


def test_iqs_column_ranks_the_car_arm(repo, shared_data, tmp_path_factory):
    """score.iqs_model adds an `iqs` column; car.scorer=iqs makes select@car rank by it (descending). The
    experiment stops at select@car (its target): what follows it is the CaR test's."""
    root = copy_repo(repo[0], tmp_path_factory.mktemp("iqs_repo") / "repo")
    from typer.testing import CliRunner
    from test_iqs import LABELS, VALID, cli

    model = root / "models" / "iqs"
    args = ["iqs", "train", "--labels", str(shared_data(LABELS)), "--valid", str(shared_data(VALID)), "--out", str(model),
            "--encoder", "all-minilm-l6-v2", "--max-rows", "24", "--max-length", "64"]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    settings = ["-S", "score.iqs_model=models/iqs", "-S", "car.scorer=iqs", "select@car"]
    refused = dvc(root, "exp", "run", *settings, check=False)  # the model dir is no dep of score yet
    assert refused.returncode != 0
    assert "score.iqs_model: models/iqs is read by stage score but is not one of its deps" in refused.stdout + refused.stderr
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    pipeline["stages"]["score"]["deps"].append("models/iqs")  # what README tells the user to do
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    out = dvc(root, "exp", "run", *settings)
    ran, skipped = ran_and_skipped(out.stdout + out.stderr)
    assert {"score", "select@car"} <= ran and {"prepare", "embed"} <= skipped
    assert not ran & {"train@car", "generate@car", "report"}
    scores = pd.read_parquet(root / "data/scores/scores.parquet")
    assert scores["iqs"].notna().all() and scores["iqs"].nunique() > 1
    car = pd.read_parquet(root / "data/selected/car.parquet")
    iqs_by_id = scores.set_index("id")["iqs"]
    assert car["quality"].to_numpy() == pytest.approx(iqs_by_id.loc[car["id"]].to_numpy(), abs=1e-6)
    top = car[car["car_reason"] != "cluster"]["quality"]
    assert top.min() >= iqs_by_id.drop(car["id"]).max() - 1e-6  # the top n1 are the best IQS rows


def test_a_new_arm_is_one_entry_in_params(repo, tmp_path):
    """An AlpaGasus arm with a lower tau, added as one entry of params.yaml: select@/train@/generate@ of the new arm
    run, it keeps more rows than the default arm, and no other arm's stage runs."""
    base, _ = repo
    root = copy_repo(base, tmp_path / "repo")
    params = yaml.safe_load((root / "params.yaml").read_text())
    scores = pd.read_parquet(root / "data/scores/scores.parquet")["score_expected"].dropna()  # the tiny arms column
    if (scores >= float(params["tau"])).all():  # the default arm keeps every row (this test alone): raise its tau
        params["tau"] = float(scores.median())
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["git", "commit", "-qam", "tau at the median"], root, pipeline_env(root))
        dvc(root, "repro")
    params["arms"]["alpagasus_low"] = {"method": "alpagasus", "tau": float(scores.min())}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(root, "repro")
    ran, skipped = ran_and_skipped(out.stdout + out.stderr)
    assert {"arms", "select@alpagasus_low", "train@alpagasus_low", "generate@alpagasus_low"} <= ran
    others = {f"{s}@{a}" for s in ("select", "train", "generate") for a in ("alpagasus", "random", "car", "full")}
    assert not ran & others and others <= skipped
    assert len(pd.read_parquet(root / "data/selected/alpagasus_low.parquet")) > \
        len(pd.read_parquet(root / "data/selected/alpagasus.parquet"))
