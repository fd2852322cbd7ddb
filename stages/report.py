"""Stage report: reports/report.md + report.html with plots, reports/summary.json (DVC metrics), MLflow.

    python stages/report.py       (dvc repro report)
"""

from pathlib import Path

from ift_select import stage
from ift_select.config import Params
from ift_select.reporting import ReportInputs, build_report
from ift_select.tracking import experiment_metrics

OUT = Path("reports")


def main(params: Params) -> dict:
    inputs = ReportInputs(
        pool=Path("data/prepared/pool.parquet"),
        scores=Path("data/scores/scores.parquet"),
        selections={arm: Path(f"data/selected/{arm}.parquet") for arm in params.arms},
        judgments={pair: Path(f"data/judgments/{pair}.parquet") for pair in params.judge.pairs},
        metrics={p.stem: p for p in sorted(Path("metrics").glob("*.json"))},
        params=params,
        embeddings=Path("data/embeddings"),
    )
    summary = build_report(inputs, OUT)
    # The columns `dvc exp show` compares experiments on (params tau/n1/n2/base_model come from params.yaml):
    # selection sizes and costs from the stages' metrics, beside the report's WS per pair and test set.
    figures = experiment_metrics(params=params)
    summary.setdefault("selected", {k[9:]: int(v) for k, v in figures.items() if k.startswith("selected.")})
    summary.setdefault("cost", {k[5:]: v for k, v in figures.items() if k.startswith("cost.")})
    return summary


if __name__ == "__main__":
    stage.run("report", main, artifacts=lambda p: [OUT / "report.md", OUT / "report.html", OUT / "summary.json",
                                                  OUT / "selection_analytics.json"],
              parent_metrics=True, metrics_path=OUT / "summary.json")
