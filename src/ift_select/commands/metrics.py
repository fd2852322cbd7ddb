"""``ift-select metrics JUDGMENTS``: win/tie/lose, WS/WR/QS, bootstrap CI and consistency from any judgments file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ift_select.core.cli_util import command, emit
from ift_select.evaluation.metrics import read_judgments, summarize_pairs


def _line(name: str, s: dict[str, Any]) -> str:
    ci = s["ws_ci"] or [None, None]
    return (f"  {name:<28} n={s['n']:<4} win={s['win']:<4} tie={s['tie']:<4} lose={s['lose']:<4} "
            f"WS={s['ws']} [{ci[0]}, {ci[1]}] WR={s['wr']} QS={s['qs']} consistency={s['consistency']} "
            f"incomplete={s['incomplete']}")


def metrics(
    judgments: Path = typer.Argument(..., help="Judgments (Parquet or JSONL) in the DESIGN.md schema: test_set, "
                                     "item_id, order (ab|ba), and verdict (a|b|tie) or score_a/score_b."),
    bootstrap: int = typer.Option(1000, min=0, help="Bootstrap resamples for the WS confidence interval (0: none)."),
    ci: float = typer.Option(0.95, min=0.5, max=0.999, help="Confidence level of the interval."),
    seed: int = typer.Option(0, help="Bootstrap seed (same file and seed: same interval)."),
    tie_margin: float = typer.Option(0.5, min=0.0, help="Scores closer than this are a tie."),
) -> None:
    """Recompute the paper's figures from a judgments file. The last line is JSON keyed by test set (by pair,
    then test set, when the file holds several pairs); nothing else is mixed into it."""
    frame = read_judgments(judgments)
    kwargs = dict(bootstrap=bootstrap, ci=ci, seed=seed, tie_margin=tie_margin)
    pairs = summarize_pairs(frame, **kwargs)
    for pair, by_set in pairs.items():
        typer.echo(pair)
        for name, s in by_set.items():
            typer.echo(_line(name, s))
    emit(next(iter(pairs.values())) if len(pairs) == 1 else dict(pairs))


def register(app: typer.Typer) -> None:
    app.command("metrics")(command(metrics))
