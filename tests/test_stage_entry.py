"""One entry path per stage: `ift-select stage NAME [KEY]` runs the same body as `python stages/NAME.py [KEY]`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

from ift_select.cli import app

REPO = Path(__file__).resolve().parents[1]
ROWS = [{"instruction": "Add 2 and 3.", "input": "", "output": "5"},
        {"instruction": "Name a colour.", "input": "", "output": "Blue."}]


def _workdir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data/pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["pool"] = "data/pool.jsonl"
    params["mlflow"]["tracking_uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def test_cli_and_script_run_the_same_stage(tmp_path, monkeypatch):
    root = _workdir(tmp_path)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["stage", "prepare"])
    assert result.exit_code == 0, result.output
    by_cli = pd.read_parquet(root / "data/prepared/pool.parquet")
    assert json.loads((root / "metrics/prepare.json").read_text())["pool_rows"] == 2
    (root / "data/prepared/pool.parquet").unlink()
    done = subprocess.run([sys.executable, str(REPO / "stages/prepare.py")], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(root / "data/prepared/pool.parquet"), by_cli)


def test_stage_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(_workdir(tmp_path))
    unknown = CliRunner().invoke(app, ["stage", "nope"])
    assert unknown.exit_code == 1 and "error: stage nope: no stage named 'nope'" in unknown.output
    keyless = CliRunner().invoke(app, ["stage", "select"])
    assert keyless.exit_code == 1 and "runs once per item" in keyless.output
