"""The figures experiments are compared on, gathered from the stages' metrics files (``dvc exp show``,
the experiment's MLflow run, ``ift-select compare``)."""

from __future__ import annotations

import json
from pathlib import Path

from ift_select.core.params import Params
from ift_select.provenance.mlflow_store import key_name


def configured_stages(params: Params) -> set[str]:
    """The metrics-file stems of the stages ``params`` configures (a removed arm's old files are not)."""
    stems = {"prepare", "score", "embed", "base_model", "report", "qualify", "qualify_grader"}
    stems |= {f"qualify_pairs_{name}" for name in params.qualify_grader.pairs}
    for arm in params.arms:
        stems |= {f"select_{arm}", f"train_{arm}", f"generate_{arm}"}
    return stems | {f"judge_{pair}" for pair in params.judge.pairs}


def experiment_metrics(metrics_dir: str | Path = "metrics", params: Params | None = None) -> dict[str, float]:
    """The figures experiments are compared on, from the stages' metrics files: ``selected.<arm>``,
    ``ws|wr|qs|consistency.<pair>.<test set>``, ``cost.{score,judge,total}_usd``,
    ``tokens.{score,judge}_{in,out}``, ``requests.*``, ``cache_hits.*``, ``pool.*``, ``seconds.<stage>``.
    With ``params``, only the files of the stages it configures count."""
    out: dict[str, float] = {}
    totals = {"cost.score_usd": 0.0, "cost.judge_usd": 0.0}
    keep = configured_stages(params) if params is not None and params.arms else None
    for path in sorted(Path(metrics_dir).glob("*.json")):
        if keep is not None and path.stem not in keep:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        stage = path.stem
        if isinstance(data.get("seconds"), (int, float)):
            out[f"seconds.{stage}"] = float(data["seconds"])
        if stage == "prepare":
            pool = data.get("pool") or {}
            for key in ("duplicates", "skipped"):
                if isinstance(pool.get(key), (int, float)):
                    out[f"pool.{key}"] = float(pool[key])
            if isinstance(data.get("pool_rows"), (int, float)):
                out["pool.rows"] = float(data["pool_rows"])
        elif stage.startswith("select_") and isinstance(data.get("selected"), (int, float)):
            out[f"selected.{stage[len('select_'):]}"] = float(data["selected"])
        elif stage in ("score", "qualify") or stage.startswith(("judge_", "qualify_pairs_")):
            kind = "judge" if stage == "qualify" or stage.startswith("judge_") else "score"  # who was paid
            totals[f"cost.{kind}_usd"] += float(data.get("cost_usd") or 0.0)
            for src, dst in (("tokens_in", f"tokens.{kind}_in"), ("tokens_out", f"tokens.{kind}_out"),
                             ("requests", f"requests.{kind}"), ("cache_hits", f"cache_hits.{kind}")):
                out[dst] = out.get(dst, 0.0) + float(data.get(src) or 0)
            if stage.startswith("judge_"):
                pair = data.get("pair") or stage[len("judge_"):]
                for test_set, figures in (data.get("by_test_set") or {}).items():
                    for name in ("ws", "wr", "qs", "consistency"):
                        value = (figures or {}).get(name)
                        if isinstance(value, (int, float)) and not isinstance(value, bool):
                            out[key_name(f"{name}.{pair}.{test_set}")] = float(value)
    out.update({k: round(v, 6) for k, v in totals.items()})
    out["cost.total_usd"] = round(totals["cost.score_usd"] + totals["cost.judge_usd"], 6)
    return out
