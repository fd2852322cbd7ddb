"""`ift-select lineage` on the models of a real tiny pipeline run: the chain it prints matches dvc.lock,
`--verify` names the first file that changed, and the same chain comes back from an MLflow run id."""

from __future__ import annotations

import json
import os
import subprocess

import mlflow
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from audit_repo import ARMS, baseline, copy_repo, lock_md5
from ift_select.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root, _ = baseline(tmp_path_factory)
    return root


def lineage(root, *args: str) -> subprocess.CompletedProcess:
    """`ift-select lineage ...` run in ``root`` (in-process: the same typer app, without a Python start-up)."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(app, ["lineage", *args])
    finally:
        os.chdir(cwd)
    return subprocess.CompletedProcess(["ift-select", "lineage", *args], result.exit_code, result.stdout,
                                       result.stderr)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def train_run_id(root, arm: str) -> str:
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    (run,) = mlflow.search_runs(experiment_names=["ift-select"], output_format="list",
                                filter_string=f"tags.`lineage.arm` = '{arm}'")
    return run.info.run_id


def test_lineage_prints_the_chain_with_dvc_hashes(repo):
    proc = lineage(repo, "models/alpagasus")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for stage, path in (("prepare", "data/prepared/pool.parquet"), ("score", "data/scores/scores.parquet"),
                        ("select@alpagasus", "data/selected/alpagasus.parquet"), ("base_model", "models/base")):
        assert f"{path} md5 {lock_md5(repo, stage, path)}" in text, (path, text)
    rows = len(pd.read_parquet(repo / "data/selected/alpagasus.parquet"))
    column = params["select"]["alpagasus"]["column"]
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith("selection ")]
    assert f"rows {rows} ({column} >= {params['tau']:g};" in line, line
    assert f" tau={params['tau']}" in line and f" column={column}" in line, line
    assert "grader gpt-4o-mini prompt prompts/alpagasus_rating.txt (md5 " in text
    assert f"base model {params['base_model']} (" in text and f"lr={params['train']['lr']}" in text
    record = json.loads((repo / "models/alpagasus/lineage.json").read_text())
    assert record["git_commit"] in subprocess.run(["git", "log", "--format=%H"], cwd=repo, capture_output=True,
                                                  text=True).stdout
    summary = last_json(proc.stdout)
    assert summary["selection_rows"] == rows and summary["verified"] is False

    proc = lineage(repo, "models/alpagasus", "--verify")
    assert proc.returncode == 0 and last_json(proc.stdout)["mismatches"] == 0, proc.stderr


def test_verify_names_a_changed_selection(repo, tmp_path):
    root = copy_repo(repo, tmp_path / "repo")
    path = root / "data/selected/alpagasus.parquet"
    frame = pd.read_parquet(path)
    path.unlink()  # DVC links outputs from its cache: replace the file, do not write into it
    frame.iloc[:-1].to_parquet(path, index=False)
    proc = lineage(root, "models/alpagasus", "--verify")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: lineage of models/alpagasus: selection: data/selected/alpagasus.parquet md5 ")
    assert f"!= recorded {lock_md5(repo, 'select@alpagasus', 'data/selected/alpagasus.parquet')}" in line
    assert lineage(root, "models/full", "--verify").returncode == 0  # another arm's chain is intact

    # the earliest broken link is named first: a changed pool comes before the selection
    pool = root / "data/prepared/pool.parquet"
    pool_frame = pd.read_parquet(pool)
    pool.unlink()
    pool_frame.iloc[::-1].to_parquet(pool, index=False)
    proc = lineage(root, "models/alpagasus", "--verify")
    assert proc.returncode == 1 and ": pool: data/prepared/pool.parquet md5 " in proc.stderr
    assert "(+1 more)" in proc.stderr


def test_lineage_from_an_mlflow_run_id(repo, tmp_path):
    run_id = train_run_id(repo, "alpagasus")
    from_file = lineage(repo, "models/alpagasus").stdout.strip().splitlines()[:-1]
    proc = lineage(repo, "--run-id", run_id, "--verify")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith(f"# run {run_id} (train@alpagasus, experiment workspace@")
    assert lines[1:-1] == from_file  # the same chain as models/alpagasus/lineage.json
    assert last_json(proc.stdout)["arms"] == ["alpagasus"]

    parent = mlflow.get_run(run_id).data.tags["mlflow.parentRunId"]
    proc = lineage(repo, "--run-id", parent)
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc.stdout)["arms"] == sorted(ARMS)

    root = copy_repo(repo, tmp_path / "repo")  # the store travels with the copy
    path = root / "data/selected/alpagasus.parquet"
    frame = pd.read_parquet(path)
    path.unlink()
    frame.iloc[1:].to_parquet(path, index=False)
    proc = lineage(root, "--run-id", run_id, "--verify")
    assert proc.returncode == 1 and "selection: data/selected/alpagasus.parquet md5 " in proc.stderr


def test_lineage_errors_are_one_line(repo):
    for args, expected in ((["models/nope"], "models/nope/lineage.json: no lineage record"),
                           (["--run-id", "0123456789abcdef0123456789abcdef"], "MLflow run 0123456789abcdef"),
                           ([], "give a model directory")):
        proc = lineage(repo, *args)
        assert proc.returncode == 1, args
        (line,) = proc.stderr.strip().splitlines()
        assert expected in line, line
