"""``ift-select iqs train|eval``: CaR's Instruction-pair Quality Scorer (see ift_select.grading.iqs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ift_select.core.cli_util import command
from ift_select.core.errors import ConfigError
from ift_select.grading.iqs import pairwise_eval
from ift_select.grading.iqs_data import TrainSettings
from ift_select.grading.iqs_train import train_iqs

D = TrainSettings()  # the CLI's defaults are the library's


def train(
    labels: Path = typer.Option(..., help="CaR-format labels CSV (src, score: raw 0, expert-revised 1)"),
    valid: Path = typer.Option(..., help="validation labels CSV, same format (finetune: picks the best checkpoint; probe: measured only)"),
    out: Path = typer.Option(..., help="model directory to write"),
    encoder: str | None = typer.Option(None, help="sentence-transformers dir, HF encoder dir, base-model alias or hub id "
                                                   "[default: smollm2-135m-instruct for probe, all-minilm-l6-v2 for finetune]"),
    method: str = typer.Option(D.method, help="finetune: encoder + head end to end | probe: frozen encoder, ridge (MSE) head"),
    layers: str = typer.Option("", help="probe: comma-separated hidden layers to pool (default: layers and pooling "
                               "chosen by cross-validation on the training pairs)"),
    pooling: str = typer.Option(",".join(D.pooling), help="probe with --layers: comma-separated poolings per layer: "
                                "mean, mean_response, last"),
    epochs: float = typer.Option(D.epochs, min=0.01),
    batch_pairs: int = typer.Option(D.batch_pairs, min=1, help="(raw, revised) pairs per step"),
    lr: float = typer.Option(D.lr, help="encoder learning rate"),
    head_lr: float = typer.Option(D.head_lr, help="regression head learning rate"),
    max_length: int = typer.Option(D.max_length, min=8, help="tokens per text (longer texts are cut at the end)"),
    rank_weight: float = typer.Option(D.rank_weight, min=0.0, help="weight of the margin ranking term (0: MSE only)"),
    margin: float = typer.Option(D.margin, min=0.0),
    length_balance: bool = typer.Option(D.length_balance, help="weigh pairs whose revised response is not longer as much as the rest"),
    redundant_negatives: bool = typer.Option(D.redundant_negatives, help="also rank each revised text above itself + the raw response's first sentence"),
    evals_per_epoch: int = typer.Option(D.evals_per_epoch, min=1, help="validations (checkpoint candidates) per epoch"),
    precision: str = typer.Option("auto", help="auto | bf16 | fp32"),
    seed: int = typer.Option(D.seed),
    max_rows: int | None = typer.Option(None, min=2, help="use only the first N rows of each CSV (smoke runs)"),
) -> dict[str, Any]:
    """Train IQS: a regression head fitted with MSE on an encoder (probe: frozen encoder; finetune: end to end)."""
    try:
        layer_ids = tuple(int(x) for x in layers.split(",") if x.strip())
    except ValueError as exc:
        raise ConfigError(f"iqs train: --layers = {layers!r} is not a comma-separated list of integers") from exc
    settings = TrainSettings(
        method=method, layers=layer_ids, pooling=tuple(p.strip() for p in pooling.split(",") if p.strip()),
        epochs=epochs, batch_pairs=batch_pairs, lr=lr, head_lr=head_lr, max_length=max_length, rank_weight=rank_weight,
        margin=margin, length_balance=length_balance, redundant_negatives=redundant_negatives,
        evals_per_epoch=evals_per_epoch, precision=precision, seed=seed, max_rows=max_rows,
    )
    return train_iqs(labels, valid, encoder, out, settings)


def evaluate(
    model: Path = typer.Option(..., help="directory written by `ift-select iqs train`"),
    pairs: Path = typer.Option(..., help="CaR-format pairs CSV (src, pos, neg)"),
    precision: str = typer.Option("auto", help="auto | bf16 | fp32"),
) -> dict[str, Any]:
    """Pairwise accuracy of an IQS model: pos must score above neg (overall and where pos is not longer)."""
    return pairwise_eval(model, pairs, precision)


def register(app: typer.Typer) -> None:
    iqs_app = typer.Typer(no_args_is_help=True, help="CaR's Instruction-pair Quality Scorer (IQS).")
    iqs_app.command("train")(command(train))
    iqs_app.command("eval")(command(evaluate))
    app.add_typer(iqs_app, name="iqs")
