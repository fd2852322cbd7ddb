"""``ift-select stage NAME [KEY]``: run one pipeline stage through the same entry path as ``dvc repro``."""

from __future__ import annotations

import typer

from ift_select.core import stage as stages


def register(app: typer.Typer) -> None:
    @app.command("stage")
    def run_stage(
        name: str = typer.Argument(..., help=f"stage name: {', '.join(stages.MODULES)}"),
        key: str = typer.Argument("", help="the item of a foreach stage: an arm, a pair or a test set"),
    ) -> None:
        """Run one stage in the current directory, exactly as its DVC command does (outputs, metrics, MLflow).
        DVC does not record it: use `dvc repro <stage>` to keep dvc.lock true."""
        stages.main(name, [key] if key else [])
