"""End to end: `dvc repro` on a tiny configuration, then `dvc exp run -S tau=...` reruns only what tau feeds."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
import yaml

from pipeline_repo import dvc, make_repo, ran_and_skipped

pytestmark = pytest.mark.slow

ALL_ARMS = ("alpagasus", "random", "car", "full")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = make_repo(tmp_path_factory.mktemp("pipeline"))
    out = dvc(root, "repro")
    return root, out.stdout + out.stderr


def test_repro_writes_every_output(repo):
    root, output = repo
    ran, _ = ran_and_skipped(output)
    for arm in ALL_ARMS:
        assert {f"select@{arm}", f"train@{arm}", f"generate@{arm}"} <= ran
        assert (root / f"models/{arm}/lineage.json").exists()
    assert {"prepare", "score", "embed", "base_model", "report"} <= ran
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


def test_tau_experiment_reruns_only_what_tau_feeds(repo):
    root, _ = repo
    scores = pd.read_parquet(root / "data/scores/scores.parquet")
    tau = float(scores["score"].median())
    before = len(pd.read_parquet(root / "data/selected/alpagasus.parquet"))
    out = dvc(root, "exp", "run", "-S", f"tau={tau}")
    ran, skipped = ran_and_skipped(out.stdout + out.stderr)
    assert {"select@alpagasus", "select@random", "train@alpagasus", "train@random"} <= ran
    assert {"prepare", "score", "embed", "base_model", "select@car", "select@full", "train@full",
            "train@car"} <= skipped
    assert not ran & {"prepare", "score", "embed", "base_model", "train@full", "train@car"}
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["select@alpagasus"]["params"]["params.yaml"]["tau"] == pytest.approx(tau)
    assert "tau" not in lock["stages"]["score"]["params"]["params.yaml"]
    after = len(pd.read_parquet(root / "data/selected/alpagasus.parquet"))
    assert after < before
    assert len(pd.read_parquet(root / "data/selected/random.parquet")) == after


@pytest.mark.parametrize("setting", ["n1=3", "n2=2"])
def test_car_experiment_reruns_only_select_car_and_downstream(repo, setting):
    """CaR's n1 / n2 feed select@car and what depends on it; embed, score and the other arms stay cached."""
    root, _ = repo
    out = dvc(root, "exp", "run", "-S", setting)
    ran, skipped = ran_and_skipped(out.stdout + out.stderr)
    assert {"select@car", "report"} <= ran
    assert {"prepare", "score", "embed", "base_model", "select@alpagasus", "select@random", "select@full",
            "train@alpagasus", "train@random", "train@full"} <= skipped
    assert not ran & {"prepare", "score", "embed", "base_model", "train@alpagasus", "train@random", "train@full",
                      "generate@full", "judge@alpagasus_vs_full"}
    key, value = setting.split("=")
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["select@car"]["params"]["params.yaml"][key] == int(value)
    metrics = json.loads((root / "metrics/select_car.json").read_text())
    assert metrics[key] == int(value)


def test_iqs_column_ranks_the_car_arm(repo, shared_data, tmp_path_factory):
    """score.iqs_model adds an `iqs` column; car.scorer=iqs makes select@car rank by it (descending)."""
    root, _ = repo
    from typer.testing import CliRunner
    from test_iqs import LABELS, VALID, cli

    model = tmp_path_factory.mktemp("iqs") / "model"
    args = ["iqs", "train", "--labels", str(shared_data(LABELS)), "--valid", str(shared_data(VALID)), "--out", str(model),
            "--encoder", "all-minilm-l6-v2", "--max-rows", "24", "--max-length", "64"]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    out = dvc(root, "exp", "run", "-S", f"score.iqs_model={model}", "-S", "car.scorer=iqs")
    ran, skipped = ran_and_skipped(out.stdout + out.stderr)
    assert {"score", "select@car"} <= ran and {"prepare", "embed", "base_model", "train@full"} <= skipped
    scores = pd.read_parquet(root / "data/scores/scores.parquet")
    assert scores["iqs"].notna().all() and scores["iqs"].nunique() > 1
    car = pd.read_parquet(root / "data/selected/car.parquet")
    iqs_by_id = scores.set_index("id")["iqs"]
    assert car["quality"].to_numpy() == pytest.approx(iqs_by_id.loc[car["id"]].to_numpy(), abs=1e-6)
    top = car[car["car_reason"] != "cluster"]["quality"]
    assert top.min() >= iqs_by_id.drop(car["id"]).max() - 1e-6  # the top n1 are the best IQS rows
