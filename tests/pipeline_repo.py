"""A throwaway git + DVC repository holding this project's pipeline with a tiny configuration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COPIED = ("dvc.yaml", "params.yaml", "stages", "src", "prompts", "configs", "data/sample")
TINY = "tiny-random-llama"


def tiny_params(pool_rows: int = 36, test_items: int = 6) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(tau=0.0, n1=6, n2=1, base_model=TINY)
    # a second test set with reference answers (CoachLM's format) for the vs-reference pair
    params["data"].update(pool="data/tiny/pool.jsonl", test_sets={
        "tiny": {"path": "data/tiny/test.jsonl", "format": "auto"},
        "coach": {"path": "data/tiny/coach.json", "format": "coachlm"}})
    # min_prob_mass 0: a random model puts almost no mass on "0".."5"; renormalised, it still ranks rows.
    # fractions off: a random model spreads its mass over every digit, and each would be continued.
    params["score"].update(backend="local", model=TINY, batch_size=8, max_new_tokens=4, max_length=384,
                           min_prob_mass=0.0, fractions=False)
    params["select"]["alpagasus"]["column"] = "score_expected"  # it rarely writes a number: probabilities rank
    params["judge"].update(model=TINY, batch_size=8, max_new_tokens=4, max_length=384, min_prob_mass=0.0)
    params["judge"]["pairs"]["car_vs_ref"] = {"a": "car", "b": "reference"}
    params["judge"]["qualify"] = {"sets": {
        "constructed": {"path": "data/sample/judge_pairs.jsonl", "kind": "constructed", "sample": 12},
        "human": {"path": "data/tiny/human.json", "kind": "human"}}}
    params["train"].update(epochs=1, batch_size=4, max_length=64, checkpoint_steps=1000)
    params["generate"].update(batch_size=8, max_new_tokens=6)
    params["report"].update(bootstrap=50)
    params["_tiny"] = {"pool_rows": pool_rows, "test_items": test_items}
    return params


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def make_repo(root: Path, params: dict | None = None) -> Path:
    """Copy the pipeline into ``root``, write a tiny pool/test set, git init + commit."""
    root.mkdir(parents=True, exist_ok=True)
    params = params or tiny_params()
    tiny = params.pop("_tiny", {"pool_rows": 36, "test_items": 6})
    for name in COPIED:
        src = REPO / name
        dst = root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dst)
    sample = [json.loads(line) for line in (REPO / "data/sample/pool.jsonl").read_text().splitlines() if line]
    tests = [json.loads(line) for line in (REPO / "data/sample/test.jsonl").read_text().splitlines() if line]
    (root / "data/tiny").mkdir(parents=True, exist_ok=True)
    (root / "data/tiny/pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sample[: tiny["pool_rows"]]))
    (root / "data/tiny/test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tests[: tiny["test_items"]]))
    for fixture, name in (("coachlm.json", "coach.json"), ("pandalm_pairs.json", "human.json")):
        shutil.copy2(REPO / "tests/fixtures/data" / fixture, root / "data/tiny" / name)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = pipeline_env(root)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "test@example.com"],
                ["git", "config", "user.name", "test"], [sys.executable, "-m", "dvc", "init", "-q"],
                [sys.executable, "-m", "dvc", "config", "core.analytics", "false"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "tiny pipeline"]):
        run(cmd, root, env)
    return root


def pipeline_env(root: Path) -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1")
    env.pop("IFT_SELECT_ROOT", None)
    env.pop("IFT_SELECT_CACHE_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                             if p and not p.endswith("/src")]])
    return env


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], root, pipeline_env(root), check=check)


def ran_and_skipped(output: str) -> tuple[set[str], set[str]]:
    """Stage names DVC reports as run ('Running stage ...') and skipped ('Stage ... didn't change')."""
    import re

    ran = set(re.findall(r"Running stage '([^']+)'", output))
    skipped = set(re.findall(r"Stage '([^']+)' didn't change, skipping", output))
    return ran, skipped


GITIGNORE = "/mlflow.db\n/mlflow.db-*\n/mlartifacts/\n/.ift-cache/\n__pycache__/\n"


def commit_all(root: Path, message: str) -> None:
    """Commit dvc.lock, metrics and reports (what DVC keeps in git) as a user would after a run."""
    gitignore = root / ".gitignore"
    if GITIGNORE not in (gitignore.read_text() if gitignore.exists() else ""):
        with gitignore.open("a") as fh:
            fh.write(GITIGNORE)
    env = pipeline_env(root)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", message, "--allow-empty"], root, env)


def copy_repo(src: Path, dst: Path) -> Path:
    """A full copy (git, DVC cache, MLflow store, request cache) for a test that changes the repository."""
    shutil.copytree(src, dst, symlinks=True)
    return dst
