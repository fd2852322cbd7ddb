"""Stage report: reports/report.md + report.html with figures, reports/plots/*.csv (DVC plots),
reports/summary.json (DVC metrics) and the experiment's figures on its MLflow run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ift_select.core.params import Params
from ift_select.core.stage import Stage
from ift_select.provenance.experiment import experiment_metrics
from ift_select.reporting.report import ANALYTICS_FILE, ReportInputs, build_report

OUT = Path("reports")


def report(params: Params, key: str) -> dict[str, Any]:
    inputs = ReportInputs(
        pool=Path("data/prepared/pool.parquet"),
        scores=Path("data/scores/scores.parquet"),
        arms={arm: json.loads(p.read_text()) for arm in params.arms if (p := Path(f"data/arms/{arm}.json")).exists()},
        selections={arm: Path(f"data/selected/{arm}.parquet") for arm in params.arms},
        judgments={pair: Path(f"data/judgments/{pair}.parquet") for pair in params.judge.pairs},
        metrics={p.stem: p for p in sorted(Path("metrics").glob("*.json"))},
        params=params,
        embeddings=Path("data/embeddings"),
        qualify=Path("metrics/qualify.json"),
    )
    summary = build_report(inputs, OUT)
    # The columns `dvc exp show` compares experiments on (params tau/n1/n2/base_model come from params.yaml):
    # selection sizes and costs from the stages' metrics, beside the report's WS per pair and test set.
    figures = experiment_metrics(params=params)
    summary.setdefault("selected", {k[9:]: int(v) for k, v in figures.items() if k.startswith("selected.")})
    summary.setdefault("cost", {k[5:]: v for k, v in figures.items() if k.startswith("cost.")})
    return summary


STAGES = {"report": Stage("report", report, metrics_path=str(OUT / "summary.json"), experiment=True,
                          artifacts=tuple(str(OUT / n) for n in ("report.md", "report.html", ANALYTICS_FILE)))}
