"""``ift-select data ...``: look at input files the way the pipeline will read them."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer

from ift_select.core.cli_util import command
from ift_select.data import inspect_file
from ift_select.data.common import locate


class Kind(str, Enum):
    pool = "pool"
    test = "test"


class OnInvalid(str, Enum):
    error = "error"
    skip = "skip"


@command
def inspect(
    path: Path = typer.Argument(..., help="A pool or test-set file."),
    kind: Kind = typer.Option(Kind.pool, "--kind", help="Read it as a training pool or a test set."),
    format: str = typer.Option("auto", "--format", help="Force a format (pool: alpaca_json, jsonl, csv, "
                               "parquet, dolly; test: vicuna, koala, wizardlm, selfinstruct, pandalm, "
                               "coachlm, mtbench, generic)."),
    on_invalid: OnInvalid = typer.Option(OnInvalid.error, "--on-invalid", help="Error on an invalid row, or "
                                         "skip and count it (data.on_invalid)."),
) -> dict[str, Any]:
    """Detected format, field mapping and row counts of PATH; the last line is the same as JSON."""
    info = inspect_file(path, kind=kind.value, format=format, on_invalid=on_invalid.value)
    mapping = ", ".join(f"{k} <- {v}" for k, v in info["field_map"].items())
    typer.echo(f"{info['path']}: {info['kind']} file, format {info['format']}")
    typer.echo(f"  fields:     {mapping}")
    if info["wrapper_key"] is not None:
        typer.echo(f"  wrapper:    records read from the list under key {info['wrapper_key']!r}")
    typer.echo(f"  records:    {info['records']}  kept: {info['kept']}  duplicates: {info['duplicates']}  "
               f"skipped: {info['skipped']}")
    for reason in info["skipped_reasons"][:5]:
        typer.echo(f"    {locate(**reason)}")
    if info["skipped"] > 5:
        typer.echo(f"    ... {info['skipped'] - 5} more skipped (skipped_reasons in the JSON line)")
    typer.echo(f"  columns:    {', '.join(info['columns'])}")
    return info


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(no_args_is_help=True, help="Inspect input data files.")
    data_app.command("inspect")(inspect)
    app.add_typer(data_app, name="data")
