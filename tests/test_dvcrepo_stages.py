"""provenance.dvcrepo.stages: DVC's own resolution of dvc.yaml, kept per content of dvc.yaml and the params files
it interpolates from, so that a change to any of them is seen by the next stage that asks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
