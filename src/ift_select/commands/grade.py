"""``ift-select grade agreement``: how well the configured graders agree with labels, beside output length.

    ift-select grade agreement --pairs ../shared/data/car_expert_revised_pairs/APE_valid.csv
    ift-select grade agreement --pairs labelled.jsonl          # rows with instruction, input, output, label 0/1

The graders are params.yaml's ``score`` section (primary, extra graders, IQS column), replies through the
request cache shared with the score stage. The last stdout line is JSON: ``pairwise_accuracy`` (pairs) or
``auc`` (labels) of ``--column``, ``n``, ``length_baseline`` (the same figure for "the longer output is
better"), and every grader column's figures under ``columns``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ift_select.core.cli_util import command
from ift_select.core.config import load_params
from ift_select.core.errors import ConfigError


def agreement(
    pairs: Path = typer.Option(..., "--pairs", help="CaR-style src,pos,neg CSV, or JSONL rows with a 0/1 label"),
    column: str | None = typer.Option(None, "--column", help="grader column reported at top level "
                                      "[select.alpagasus.column]"),
    max_rows: int | None = typer.Option(None, "--max-rows", min=1, help="only the first N pairs / rows"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> dict[str, Any]:
    """Run the configured graders on labelled pairs or rows; pairwise accuracy or AUC beside length's."""
    from ift_select.grading.stage import measure

    params = load_params(params_file)
    column = column or params.select.alpagasus.column
    figures = measure(pairs, params, max_rows)
    if column not in figures["columns"]:
        raise ConfigError(f"--column {column!r}: not a grader column here ({', '.join(figures['columns'])})")
    return {figures["metric"]: figures["columns"][column][figures["metric"]], "column": column, **figures}


def register(app: typer.Typer) -> None:
    grade_app = typer.Typer(no_args_is_help=True, help="Measure the configured graders against labels.")
    grade_app.command("agreement")(command(agreement))
    app.add_typer(grade_app, name="grade")
