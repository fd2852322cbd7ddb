"""dvc.yaml tells the truth, proven on a traced run.

The tiny pipeline runs once under IFT_SELECT_AUDIT_DIR (every stage re-runs itself under strace and logs the
params keys its body reads; see ift_select.core.audit). Then, with the stages as DVC reads them:

- every module, file and params key a stage read is covered by its deps / params (tests/dvc_audit.py);
- the checker catches each kind of gap dvc.yaml once had (prompt templates, llm/, test-set files, seed);
- appending a blank line to a prompt template or to the module that parses the judge's verdicts or the
  grader's scores makes `dvc status` list exactly the stages whose trace read that file.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from dvc_audit import readers, stage_reads, undeclared

pytestmark = pytest.mark.slow

PARSERS = ("src/ift_select/evaluation/parse.py", "src/ift_select/grading/alpagasus.py")


def _specs(root):
    from ift_select.provenance.dvcrepo import stages

    return stages(root)


def test_every_stage_declares_what_it_reads(audited_pipeline):
    root, audit_dir = audited_pipeline
    specs = _specs(root)
    assert {"prepare", "score", "embed", "arms", "report"} <= set(specs)
    problems = undeclared(root, audit_dir, specs)
    assert not problems, "dvc.yaml misses what stages read:\n" + "\n".join(problems)
    train = stage_reads(audit_dir, "train@full", root)
    assert {"prompts/alpaca_input.txt", "prompts/alpaca_no_input.txt"} & train.files  # the trace sees them
    assert "src/ift_select/training/loop.py" in train.files and "train.lr" in train.params


def test_checker_names_each_kind_of_missing_declaration(audited_pipeline, tmp_path):
    """The gaps dvc.yaml had before this test existed, put back one by one into a copy: each is named."""
    root, audit_dir = audited_pipeline
    copy = tmp_path / "repo"
    shutil.copytree(root, copy, symlinks=True, ignore=shutil.ignore_patterns("models", "mlartifacts"))
    pipeline = yaml.safe_load((copy / "dvc.yaml").read_text())
    stages = pipeline["stages"]
    stages["train"]["do"]["deps"] = [d for d in stages["train"]["do"]["deps"] if not d.startswith("prompts/")]
    stages["judge"]["do"]["deps"].remove("src/ift_select/llm")
    stages["judge"]["do"]["params"].remove("seed")
    stages["testset"]["do"]["deps"].remove("${item.path}")
    (copy / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    problems = "\n".join(undeclared(root, audit_dir, _specs(copy)))
    assert "train@full: file prompts/alpaca_input.txt is read but not in deps" in problems
    assert "judge@alpagasus_vs_full: module src/ift_select/llm/" in problems
    assert "judge@alpagasus_vs_full: params key seed is read but not among its params" in problems
    assert "testset@tiny: file data/tiny/test.jsonl is read but not in deps" in problems


def _changed_stages(root) -> set[str]:
    """What `dvc status` lists, asked in this process (a fresh Repo each time: nothing DVC read is reused)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        status = repo.status()
    return {name.split(":")[-1] for name in status}


def test_touching_a_read_file_dirties_exactly_its_readers(audited_pipeline, tmp_path):
    root, audit_dir = audited_pipeline
    copy = tmp_path / "repo"
    shutil.copytree(root, copy, symlinks=True)
    specs = _specs(copy)
    assert _changed_stages(copy) == set(), "the finished run is not up to date"
    touched = sorted(p.relative_to(copy).as_posix() for p in (copy / "prompts").glob("*.txt")) + list(PARSERS)
    for path in touched:
        original = (copy / path).read_bytes()
        (copy / path).write_bytes(original + b"\n")
        try:
            expected = readers(root, audit_dir, specs, path)
            assert _changed_stages(copy) == expected, f"appending a blank line to {path}"
        finally:
            (copy / path).write_bytes(original)
    assert readers(root, audit_dir, specs, "src/ift_select/evaluation/parse.py") >= {"judge@car_vs_full"}
