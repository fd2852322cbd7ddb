"""What IQS training shares across methods: the training labels as pairs, their weights, the validation figures,
saving a model directory, and the settings dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ift_select.core.devices import use_bf16
from ift_select.core.errors import ConfigError, DataError
from ift_select.core.io import atomic_dir

from ift_select.grading.iqs import (POOLINGS, IQSModel, label_pairs, pairwise_figures, read_labels,
                                   same_instruction, score_texts)


def revised_not_longer(pairs: list[tuple[int, int]], src: list[str]) -> dict[tuple[int, int], bool]:
    """Per (raw, revised) pair: is the revised text no longer than the raw response under the revised instruction?"""
    return {p: len(src[p[1]]) <= len(same_instruction(src[p[1]], src[p[0]])) for p in pairs}


def pair_weights(pairs: list[tuple[int, int]], src: list[str], balance: bool) -> dict[tuple[int, ...], float]:
    """Weight per (raw, revised) pair. With ``balance``, pairs where the revised response is not the longer one
    weigh as much in total as the others (about 1 in 5 here), so length alone cannot fit the loss."""
    not_longer = revised_not_longer(pairs, src)
    share = sum(not_longer.values()) / max(1, len(pairs))
    if not balance or share in (0.0, 1.0):
        return {p: 1.0 for p in pairs}
    return {p: 0.5 / share if nl else 0.5 / (1 - share) for p, nl in not_longer.items()}


def validate(model: IQSModel, valid: pd.DataFrame, pairs: list[tuple[int, int]], precision: str) -> dict[str, Any]:
    """Pairwise accuracy on the valid labels (revised row above its raw row, rows as given: the selection
    criterion) and on the same pairs in CaR's pairs form (raw response under the revised instruction)."""
    src = valid["src"].tolist()
    swapped = [same_instruction(src[hi], src[lo]) for lo, hi in pairs]
    unique = list(dict.fromkeys(src + swapped))
    by_text = dict(zip(unique, score_texts(model, unique, precision=precision)))
    row, neg = np.array([by_text[t] for t in src]), np.array([by_text[t] for t in swapped])
    his, los = np.array([hi for _, hi in pairs]), np.array([lo for lo, _ in pairs])
    figures = pairwise_figures(row[his], neg, np.array([len(src[i]) for i in his]), np.array([len(t) for t in swapped]))
    return {
        "valid_pairwise_accuracy": round(float((row[his] > row[los]).mean()), 4),
        "valid_pairs_form_accuracy": figures["pairwise_accuracy"],
        "valid_pairs_form_accuracy_not_longer": figures["pairwise_accuracy_not_longer"],
    }


def save_dir(model: IQSModel, out: Path, record: dict[str, Any], reference: dict[str, str] | None = None) -> float:
    """Write the model directory beside ``out`` and swap it in, so ``out`` is never half written; returns its
    size in MB. ``reference``: the frozen encoder, named instead of saved (``iqs.encoder_reference``)."""
    with atomic_dir(out) as tmp:
        model.save(tmp, record, reference)
    return round(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20, 1)


@dataclass(frozen=True)
class TrainSettings:
    """``ift-select iqs train`` options; invalid values are ConfigErrors naming the option."""

    method: str = "probe"  # probe: frozen encoder, ridge head (iqs_probe) | finetune: encoder + head end to end
    layers: tuple[int, ...] = ()  # probe: hidden layers pooled (empty: the middle layer)
    pooling: tuple[str, ...] = ("mean",)  # probe: how each layer is pooled (iqs.POOLINGS), concatenated
    epochs: float = 3.0
    batch_pairs: int = 16  # (raw, revised) pairs per step
    lr: float = 5e-5  # encoder
    head_lr: float = 1e-3
    max_length: int = 384  # tokens per text (98.5% of the label texts fit); longer texts lose their end
    rank_weight: float = 1.0  # 0: CaR's MSE only
    margin: float = 0.5
    length_balance: bool = True  # see pair_weights; finetune: +0.4 / +2 points (overall / not-longer) on valid
    redundant_negatives: bool = False  # also rank each revised text above itself + a sentence of the raw response
    evals_per_epoch: int = 2
    precision: str = "auto"
    seed: int = 42
    max_rows: int | None = None  # first N rows of each CSV (smoke runs)

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_pairs", "lr", "head_lr", "max_length", "evals_per_epoch")
        bad = [n for n in positive if getattr(self, n) <= 0] + [n for n in ("rank_weight", "margin") if getattr(self, n) < 0]
        if bad:
            raise ConfigError(f"iqs train: --{bad[0].replace('_', '-')} = {getattr(self, bad[0])} is out of range")
        use_bf16(self.precision)  # raises on an unknown precision
        if not self.pooling or set(self.pooling) - set(POOLINGS):
            raise ConfigError(f"iqs train: --pooling = {','.join(self.pooling)!r}: expected one or more of "
                              f"{', '.join(POOLINGS)}")
        if self.method not in ("finetune", "probe"):
            raise ConfigError(f"iqs train: --method = {self.method!r} must be finetune or probe")


def load_training_data(labels_csv: str | Path, valid_csv: str | Path, max_rows: int | None
                       ) -> tuple[pd.DataFrame, pd.DataFrame, list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]]:
    """(train, valid, train pairs, identical train pairs, valid pairs). Pairs whose expert "revision" left the
    response unchanged cannot be ranked: they are left out of the train pairs, and returned to be counted."""
    train, valid = read_labels(labels_csv), read_labels(valid_csv)
    if max_rows is not None:
        train, valid = train.iloc[:max_rows], valid.iloc[:max_rows]
    pairs, valid_pairs = label_pairs(train), label_pairs(valid)
    if not valid_pairs:
        raise DataError(f"{valid_csv}: no (raw, revised) row pairs to validate on (rows 2i, 2i+1 with different scores)")
    src = train["src"].tolist()
    identical = [(lo, hi) for lo, hi in pairs if same_instruction(src[hi], src[lo]) == src[hi]]
    return train, valid, [p for p in pairs if p not in set(identical)], identical, valid_pairs
