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
