"""``ift-select compare``: WS with its interval against a param, across the experiments in MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ift_select.core.cli_util import command
from ift_select.core.errors import IftSelectError
from ift_select.core.io import write_with
from ift_select.provenance.mlflow_store import tracking_uri_for
from ift_select.reporting import compare as cmp


@command
def compare_cmd(
    param: str = typer.Option("tau", "--param", help="the params.yaml key on the x axis (flattened: train.lr)"),
    pair: str | None = typer.Option(None, "--pair", help="judged pair (default: the one most runs have)"),
    test_set: str | None = typer.Option(None, "--test-set", help="test set of that pair (default: most common)"),
    out: Path = typer.Option(Path("reports/compare.png"), "--out", help="the figure (a CSV is written beside it)"),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="default: params.yaml's, else mlflow.db"),
    experiment: str = typer.Option("ift-select", "--experiment", help="MLflow experiment name"),
) -> dict[str, Any]:
    """Print each experiment's WS and interval against --param, draw them, end with one JSON line."""
    runs = cmp.experiment_runs(tracking_uri_for(tracking_uri), experiment)
    combos = cmp.pairs_of(runs)
    if not combos:
        raise IftSelectError("no experiment in MLflow has a judged pair yet (run dvc repro through the report)")
    chosen = next(((p, t) for p, t in combos if (pair is None or p == pair) and (test_set is None or t == test_set)),
                  None)
    if chosen is None:
        raise IftSelectError(f"no experiment has WS for pair {pair!r} / test set {test_set!r} "
                             f"(known: {', '.join(f'{p}/{t}' for p, t in combos)})")
    found = cmp.points(runs, param, *chosen)
    if not found:
        raise IftSelectError(f"no experiment records param {param!r} beside WS of {chosen[0]} (params are "
                             "flattened: e.g. tau, n1, train.lr)")
    for row in cmp.table(found, param):
        typer.echo("  ".join(str(c) for c in row))
    write_with(out, lambda tmp: tmp.write_bytes(cmp.ws_figure(found, param, *chosen)))
    cmp.frame(found).to_csv(out.with_suffix(".csv"), index=False)
    return {"param": param, "pair": chosen[0], "test_set": chosen[1], "experiments": len(found), "figure": str(out),
            "points": [{"experiment": p.experiment, param: p.value, "ws": p.ws, "ws_low": p.ws_low,
                        "ws_high": p.ws_high} for p in found]}


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)
