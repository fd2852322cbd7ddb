"""Report section: the experiments recorded in MLflow so far, WS with its interval against tau (AlpaGasus'
threshold ablation). It reads the MLflow store, which DVC does not track: the section shows the experiments
recorded before this report was made (``ift-select compare`` redraws it at any time)."""

from __future__ import annotations

from pathlib import Path

from ift_select.core.params import Params
from ift_select.core.paths import default_tracking_uri
from ift_select.reporting import compare
from ift_select.reporting.render import Block, Figure, Heading, Para, Table

PARAM = "tau"


def experiments_section(params: Params, plot_dir: Path) -> list[Block]:
    """Empty unless at least two experiments in the store have WS for the same pair and test set."""
    try:
        runs = compare.experiment_runs(params.mlflow.tracking_uri or default_tracking_uri(), params.mlflow.experiment)
    except Exception:  # noqa: BLE001 -- no store yet, or one this report cannot read: the section is left out
        return []
    combos = compare.pairs_of(runs)
    if not combos:
        return []
    pair, test_set = combos[0]
    found = compare.points(runs, PARAM, pair, test_set)
    if len(found) < 2:
        return []
    compare.frame(found).to_csv(plot_dir / f"compare_{PARAM}.csv", index=False)
    return [Heading("Experiments compared"),
            Para(f"Every DVC experiment recorded in MLflow before this report, WS of {pair} on {test_set} against "
                 f"{PARAM} (the latest run of each experiment; `ift-select compare --param {PARAM}` redraws it)."),
            Table(["experiment", PARAM, "WS", "95% CI"], compare.table(found, PARAM)),
            Figure(f"compare_{PARAM}.png", f"WS against {PARAM} across experiments",
                   compare.ws_figure(found, PARAM, pair, test_set))]
