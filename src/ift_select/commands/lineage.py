"""`ift-select lineage models/<arm> [--verify]`: the chain pool -> scores -> selection -> model."""

from __future__ import annotations

from pathlib import Path

import typer

from ift_select import lineage
from ift_select.cli_util import command
from ift_select.errors import IftSelectError


def register(app: typer.Typer) -> None:
    @app.command("lineage")
    @command
    def lineage_cmd(
        model_dir: Path = typer.Argument(..., help="A trained model directory, e.g. models/alpagasus"),
        verify: bool = typer.Option(False, "--verify", help="Exit non-zero if any recorded file changed"),
    ) -> dict:
        """Print which pool, scores, selection and base model produced a model."""
        record = lineage.load(model_dir)
        typer.echo(lineage.describe(record))
        problems = lineage.verify(record) if verify else []
        if problems:
            raise IftSelectError(f"lineage of {model_dir}: {problems[0]}" +
                                 (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
        return {"model": str(model_dir), "arm": record["arm"], "selection_rows": record["selection"]["rows"],
                "selection_md5": record["selection"]["md5"], "verified": verify, "mismatches": len(problems)}
