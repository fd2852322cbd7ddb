"""`ift-select lineage models/<arm> | --run-id RUN_ID [--verify]`: the chain pool -> scores -> selection -> model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ift_select.provenance import lineage
from ift_select.provenance.mlflow_store import tracking_uri_for
from ift_select.core.cli_util import command
from ift_select.core.errors import IftSelectError


def register(app: typer.Typer) -> None:
    @app.command("lineage")
    @command
    def lineage_cmd(
        model_dir: Optional[Path] = typer.Argument(None, help="A trained model directory, e.g. models/alpagasus"),
        run_id: Optional[str] = typer.Option(None, "--run-id", help="An MLflow run id instead: a train stage's "
                                             "run, or an experiment's parent run (every arm trained in it)"),
        verify: bool = typer.Option(False, "--verify", help="Exit non-zero, naming the first file whose hash "
                                    "no longer matches the record (paths are read from the current directory)"),
        tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store for --run-id "
                                                   "(default: params.yaml mlflow.tracking_uri, else "
                                                   "sqlite:///<repo root>/mlflow.db)"),
    ) -> dict:
        """Print which pool, scores, selection and base model produced a model."""
        if (model_dir is None) == (run_id is None):
            raise IftSelectError("lineage: give a model directory (models/<arm>) or --run-id RUN_ID, not both")
        if run_id:
            records = lineage.load_from_run(run_id, tracking_uri_for(tracking_uri))
        else:
            records = [(str(model_dir), lineage.load(model_dir))]
        checked = []
        for label, record in records:
            if run_id:
                typer.echo(f"# {label}")
            typer.echo(lineage.describe(record))
            problems = lineage.verify(record) if verify else []
            if problems:
                where = f"lineage of {model_dir}" if model_dir else f"lineage of {record.get('arm')} ({label})"
                raise IftSelectError(f"{where}: {problems[0]}" +
                                     (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
            checked.append({"arm": record.get("arm"), "selection_rows": (record.get("selection") or {}).get("rows"),
                            "selection_md5": (record.get("selection") or {}).get("md5")})
        result = {"verified": verify, "mismatches": 0, "models": len(checked)}
        if model_dir is not None:
            result.update(model=str(model_dir), **checked[0])
        else:
            result.update(run_id=run_id, arms=[c["arm"] for c in checked], chains=checked)
        return result
