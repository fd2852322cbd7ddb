"""MLflow records of a real `dvc repro` (and of `dvc exp run --temp`) in a tiny pipeline repository: one
parent run per experiment, a nested run per stage, params flattened from params.yaml, metrics, datasets whose
digests equal the md5s in dvc.lock, and tags with the git commit, the experiment name and the output hashes."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
import yaml

from audit_repo import ARMS, PAIR, baseline, copy_repo, dvc, git, lock_md5
from ift_select.core.config import flatten
from ift_select.provenance import dvcrepo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root, _ = baseline(tmp_path_factory)
    return root


def client_for(root):
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    return mlflow.MlflowClient()


def runs_of(root, filter_string: str = "") -> list:
    client_for(root)
    return mlflow.search_runs(experiment_names=["ift-select"], filter_string=filter_string, output_format="list")


def parents(root) -> list:
    return runs_of(root, "tags.`ift_select.kind` = 'experiment'")


def children(root, parent) -> dict:
    runs = runs_of(root, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return {r.info.run_name: r for r in runs}


def lock(root) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def lock_hashes(root) -> dict[str, str]:
    return {o["path"]: o["md5"] for body in lock(root).values() for o in body.get("outs", [])}


@pytest.fixture(scope="module")
def workspace_run(repo):
    (parent,) = parents(repo)
    return parent, children(repo, parent)


def test_one_parent_run_with_a_nested_run_per_stage(repo, workspace_run):
    parent, stages = workspace_run
    commit = git(repo, "rev-parse", "HEAD~1").strip()  # the commit `dvc repro` ran at
    assert parent.info.run_name.startswith(f"workspace@{commit[:10]}+")
    assert set(stages) == set(dvcrepo.stages(repo))
    for run in stages.values():
        assert run.info.status == "FINISHED"
        assert run.data.tags["stage"] == run.info.run_name
        assert run.data.tags["ift_select.exp"] == parent.info.run_name


def test_params_flattened_from_params_yaml(repo, workspace_run):
    parent, stages = workspace_run
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    flat = {k: v for k, v in flatten(raw).items()}
    logged = parent.data.params
    for key in ("tau", "n1", "n2", "seed", "base_model", "train.lr", "train.lora.r", "score.openai.concurrency",
                "data.test_sets.tiny.path", "arms.alpagasus.method", "judge.pairs.alpagasus_vs_full.a"):
        assert logged[key] == str(flat[key]), key
    assert logged["train.lora.target_modules"] == json.dumps(flat["train.lora.target_modules"])
    assert len(logged) == len(flat)
    # each stage: exactly the params.yaml keys it declares in dvc.yaml
    # arms resolves each arm (tau, select.alpagasus.column); select@<arm> records the arm it selected for
    assert set(stages["arms"].data.params) >= {"tau", "select.alpagasus.column", "arms.alpagasus.method"}
    assert set(stages["select@alpagasus"].data.params) >= {"arm.method", "arm.tau", "arm.column"}
    assert "n1" not in stages["select@alpagasus"].data.params
    assert stages["train@full"].data.params["train.lr"] == str(raw["train"]["lr"])


def test_metrics_sizes_scores_costs_tokens_seconds(repo, workspace_run):
    parent, stages = workspace_run
    m = parent.data.metrics
    for arm in ARMS:
        selected = json.loads((repo / f"metrics/select_{arm}.json").read_text())["selected"]
        assert m[f"selected.{arm}"] == selected
        assert stages[f"select@{arm}"].data.metrics["selected"] == selected
        assert m[f"seconds.train_{arm}"] > 0 and m[f"seconds.generate_{arm}"] > 0
    judge = json.loads((repo / f"metrics/judge_{PAIR}.json").read_text())
    for name in ("ws", "wr", "qs"):
        assert m[f"{name}.{PAIR}.tiny"] == pytest.approx(judge["by_test_set"]["tiny"][name])
    score = json.loads((repo / "metrics/score.json").read_text())
    assert m["cost.score_usd"] == pytest.approx(score["cost_usd"]) and score["cost_usd"] > 0
    qualify = json.loads((repo / "metrics/qualify.json").read_text())  # the judge's qualification is paid too
    judged = judge["cost_usd"] + qualify["cost_usd"]
    assert m["cost.judge_usd"] == pytest.approx(judged) and judge["cost_usd"] > 0 and qualify["cost_usd"] > 0
    assert m["cost.total_usd"] == pytest.approx(score["cost_usd"] + judged, abs=1e-6)
    assert m["tokens.score_in"] == score["tokens_in"] > 0
    assert m["tokens.judge_out"] == judge["tokens_out"] + qualify["tokens_out"] > 0
    assert stages["score"].data.metrics["seconds"] > 0 and stages["score"].data.metrics["requests"] == 36


def test_datasets_carry_the_dvc_md5(repo, workspace_run):
    parent, stages = workspace_run
    hashes = lock_hashes(repo)

    def inputs(run) -> dict[str, tuple[str, str]]:
        out = {}
        for d in run.inputs.dataset_inputs:
            tags = {t.key: t.value for t in d.tags}
            out[d.dataset.name] = (d.dataset.digest, tags["mlflow.data.context"], tags["path"])
        return out

    logged = inputs(parent)
    expected = {"pool": "data/prepared/pool.parquet", "scores": "data/scores/scores.parquet",
                **{f"tests_{t}": f"data/prepared/tests/{t}.parquet"
                   for t in yaml.safe_load((repo / "params.yaml").read_text())["data"]["test_sets"]},
                **{f"selection_{a}": f"data/selected/{a}.parquet" for a in ARMS}}
    assert set(logged) == set(expected)
    for name, path in expected.items():
        assert logged[name][0] == hashes[path] and logged[name][2] == path
    select = inputs(stages["select@alpagasus"])
    assert select["scores"][:2] == (hashes["data/scores/scores.parquet"], "input")
    assert select["selection_alpagasus"][:2] == (hashes["data/selected/alpagasus.parquet"], "output")
    assert inputs(stages["train@full"])["selection_full"][:2] == (hashes["data/selected/full.parquet"], "training")
    assert inputs(stages["generate@full"])["tests"][1] == "evaluation"
    assert inputs(stages["generate@full"])["tests"][0].endswith(".dir")  # DVC's directory hash
    pool = next(d.dataset for d in parent.inputs.dataset_inputs if d.dataset.name == "pool")
    assert json.loads(pool.profile)["num_rows"] == len(pd.read_parquet(repo / "data/prepared/pool.parquet"))


def test_tags_commit_and_output_hashes(repo, workspace_run):
    parent, stages = workspace_run
    commit = git(repo, "rev-parse", "HEAD~1").strip()
    assert parent.data.tags["git_commit"] == commit == parent.data.tags["mlflow.source.git.commit"]
    hashes = lock_hashes(repo)
    tagged = {k[len("dvc.out."):]: v for k, v in parent.data.tags.items() if k.startswith("dvc.out.")}
    assert tagged == hashes  # every output of every stage, as dvc.lock records it
    for name, run in stages.items():
        own = {k[len("dvc.out."):]: v for k, v in run.data.tags.items() if k.startswith("dvc.out.")}
        assert own == {o["path"]: o["md5"] for o in lock(repo)[name]["outs"]}, name
    train = stages["train@alpagasus"].data.tags
    assert train["lineage.selection.md5"] == hashes["data/selected/alpagasus.parquet"]
    assert train["lineage.base_model.md5"] == hashes["models/base"]


def test_report_artifacts_on_the_parent(repo, workspace_run):
    parent, _ = workspace_run
    client = client_for(repo)
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.md", "report.html", "summary.json"} <= names
    assert (repo / "mlartifacts").is_dir()


def test_exp_run_temp_lands_in_the_main_repository(repo, tmp_path):
    root = copy_repo(repo, tmp_path / "repo")
    scores = pd.read_parquet(root / "data/scores/scores.parquet")
    tau = float(scores["score_expected"].median())  # the tiny pipeline selects on score_expected
    out = dvc(root, "exp", "run", "--temp", "-S", f"tau={tau}")
    assert "Running stage 'select@alpagasus'" in out.stdout + out.stderr
    (name,) = exp_names(root)
    (parent,) = [p for p in parents(root) if p.info.run_name == name]
    assert parent.data.tags["dvc_exp_name"] == name
    assert parent.data.tags["git_commit"] == git(root, "rev-parse", "HEAD").strip()  # the baseline commit
    assert parent.data.params["tau"] == str(tau)
    stages = children(root, parent)
    # (the judge reruns only if the tiny model's answers changed)
    assert {"arms", "select@alpagasus", "train@alpagasus", "generate@alpagasus", "report"} <= set(stages)
    assert set(stages) <= {"arms", "select@alpagasus", "train@alpagasus", "generate@alpagasus", f"judge@{PAIR}",
                           "qualify_grader", "report"}  # qualify_grader measures the selections
    # the experiment's own dvc.lock (in its git commit) matches what its runs recorded
    exp_lock = yaml.safe_load(git(root, "show", f"{_exp_ref(root, name)}:dvc.lock"))["stages"]
    sel = next(o["md5"] for o in exp_lock["select@alpagasus"]["outs"] if o["path"] == "data/selected/alpagasus.parquet")
    assert stages["select@alpagasus"].data.tags["dvc.out.data/selected/alpagasus.parquet"] == sel
    assert parent.data.tags["dvc.out.data/selected/alpagasus.parquet"] == sel
    assert sel != lock_md5(root, "select@alpagasus", "data/selected/alpagasus.parquet")
    # nothing went to the temporary copy: stores and artifacts are the main repository's
    assert not list((root / ".dvc/tmp").rglob("mlflow.db")) and not list((root / ".dvc/tmp").rglob("mlartifacts"))
    artifacts = {a.path for a in client_for(root).list_artifacts(stages["train@alpagasus"].info.run_id)}
    assert "lineage.json" in artifacts
    assert list((root / "mlartifacts").rglob("lineage.json"))


def exp_names(root) -> list[str]:
    """Experiment names in `dvc exp show --json` (a list of baselines, each with its experiments)."""
    table = json.loads(dvc(root, "exp", "show", "--json").stdout)
    return [exp["name"] for base in table for exp in (base.get("experiments") or [])]


def _exp_ref(root, name: str) -> str:
    refs = git(root, "for-each-ref", "--format=%(refname)", "refs/exps").split()
    return next(r for r in refs if r.endswith(f"/{name}"))


def test_dvc_exp_show_has_the_comparison_columns(repo):
    # The rich table hides columns that do not fit any terminal; --md prints every column untruncated.
    shown = dvc(repo, "exp", "show", "--md").stdout
    header = [cell.strip() for cell in shown.splitlines()[0].split("|")]
    for column in ("tau", "n1", "n2", "base_model"):
        assert column in header, (column, header)
    table = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    data = table[0]["data"]  # the workspace
    summary = data["metrics"]["reports/summary.json"]["data"]
    params = data["params"]["params.yaml"]["data"]
    assert {"tau", "n1", "n2", "base_model"} <= set(params)
    assert set(summary["selected"]) == set(ARMS)
    assert "ws" in summary["judge"][PAIR]["tiny"]
    assert summary["cost"]["total_usd"] > 0
    csv = dvc(repo, "exp", "show", "--csv").stdout.splitlines()[0].split(",")
    for column in ("tau", "n1", "n2", "base_model", "selected.alpagasus", "selected.full",
                   f"judge.{PAIR}.tiny.ws", "cost.total_usd"):
        assert column in csv, column
