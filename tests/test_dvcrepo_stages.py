"""provenance.dvcrepo.stages: DVC's own resolution of dvc.yaml, kept per content of dvc.yaml and the params files
it interpolates from, so that a change to any of them is seen by the next stage that asks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ift_select.provenance import dvcrepo

PIPELINE = {"vars": ["extra.yaml"], "stages": {
    "make": {"foreach": "${items}", "do": {"cmd": "echo ${item}", "deps": ["in_${item}.txt"],
                                           "params": ["items"], "outs": ["out_${item}.txt"]}},
    "sum": {"foreach": "${extras}", "do": {"cmd": "echo ${item}", "outs": ["sum_${item}.txt"]}}}}


@pytest.fixture
def dvc_repo(tmp_path: Path) -> Path:
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"items": ["a", "b"]}))
    (tmp_path / "extra.yaml").write_text(yaml.safe_dump({"extras": ["x"]}))
    return tmp_path


def resolved(root: Path) -> dict[str, dvcrepo.StageSpec]:
    dvcrepo._repo.cache_clear()  # a stage process asks once; here one process asks after each edit
    return dvcrepo.stages(root)


def test_stages_follow_every_file_the_resolution_reads(dvc_repo: Path):
    first = resolved(dvc_repo)
    assert set(first) == {"make@a", "make@b", "sum@x"}
    assert first["make@a"].deps == ["in_a.txt"] and first["make@a"].params == ["items"]
    assert first["make@b"].outs == ["out_b.txt"]
    memo = list((dvc_repo / ".dvc" / "tmp" / "ift-select-stages").glob("*.json"))
    assert len(memo) == 1
    assert resolved(dvc_repo) == first  # answered from the kept resolution

    (dvc_repo / "params.yaml").write_text(yaml.safe_dump({"items": ["a", "c"]}))
    assert set(resolved(dvc_repo)) == {"make@a", "make@c", "sum@x"}
    (dvc_repo / "extra.yaml").write_text(yaml.safe_dump({"extras": ["x", "y"]}))  # a `vars` file
    assert set(resolved(dvc_repo)) == {"make@a", "make@c", "sum@x", "sum@y"}
    pipeline = yaml.safe_load((dvc_repo / "dvc.yaml").read_text())
    pipeline["stages"]["make"]["do"]["deps"].append("shared.txt")
    (dvc_repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    assert resolved(dvc_repo)["make@c"].deps == ["in_c.txt", "shared.txt"]


def test_an_unreadable_kept_resolution_is_resolved_again(dvc_repo: Path):
    first = resolved(dvc_repo)
    (memo,) = (dvc_repo / ".dvc" / "tmp" / "ift-select-stages").glob("*.json")
    memo.write_text('{"make@a": {"name": "make@a", "unknown_field": 1}}')
    assert resolved(dvc_repo) == first


CHECK = ("from ift_select.provenance.dvcrepo import check_declared; "
         "check_declared({'score.iqs_model': 'models/iqs', 'score.model': 'not-a-path'})")


def test_dvc_repro_refuses_a_file_a_setting_names_until_the_stage_declares_it(dvc_repo: Path):
    """Real `dvc repro`: DVC names the running stage (DVC_STAGE); a setting's file outside its deps fails the
    stage naming the setting; declared, the stage runs, and a change to the file makes it stale."""
    (dvc_repo / "models" / "iqs").mkdir(parents=True)
    (dvc_repo / "models" / "iqs" / "head.pt").write_text("v1")
    pipeline = {"stages": {"score": {"cmd": f'{sys.executable} -c "{CHECK}"', "deps": ["params.yaml"]}}}
    (dvc_repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline))

    def repro() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=dvc_repo, capture_output=True,
                              text=True)

    refused = repro()
    assert refused.returncode != 0
    assert ("score.iqs_model: models/iqs is read by stage score but is not one of its deps" in refused.stderr +
            refused.stdout)
    pipeline["stages"]["score"]["deps"].append("models/iqs")
    (dvc_repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    assert repro().returncode == 0
    (dvc_repo / "models" / "iqs" / "head.pt").write_text("v2")
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "score"], cwd=dvc_repo, capture_output=True,
                            text=True, check=True).stdout
    assert "modified:" in status and "models/iqs" in status


def test_the_score_stage_checks_its_setting_files_before_any_request(dvc_repo: Path, monkeypatch):
    from ift_select.core.config import load_params
    from ift_select.core.errors import ConfigError
    from ift_select.grading.stage import grade_all

    (dvc_repo / "models" / "iqs").mkdir(parents=True)
    (dvc_repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"score": {"cmd": "true", "deps": ["params.yaml"]}}}))
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    params.score.iqs_model = "models/iqs"
    params.score.openai.base_url = "http://127.0.0.1:9/v1"  # nothing listens: a request would fail differently
    params.score.backend = "openai"
    monkeypatch.chdir(dvc_repo)
    monkeypatch.setenv("DVC_STAGE", "score")
    monkeypatch.setenv("DVC_ROOT", str(dvc_repo))
    dvcrepo._repo.cache_clear()
    with pytest.raises(ConfigError, match="score.iqs_model: models/iqs is read by stage score"):
        grade_all(pd.DataFrame({"id": ["a"], "instruction": ["x"], "input": [""], "output": ["y"]}), params)
