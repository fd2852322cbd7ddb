"""IQS as a probe: a frozen encoder's mean-pooled hidden layer(s) and a linear head fitted by ridge regression,
i.e. MSE on the labels (revised response 1, raw response under the revised instruction 0).

    ift-select iqs train --method probe --encoder smollm2-135m-instruct --labels … --valid … --out models/iqs

Pairs whose revised response is not the longer one weigh as much as all the others (``length_balance``), and the
ridge strength is chosen by 5-fold cross-validation over the training pairs on the mean of the overall and the
not-longer pairwise accuracy: the validation file is only measured, never used to choose. Without ``--layers``, which
layers and poolings are read is chosen the same way (``choose_features``): every third hidden layer, each pooled
by ``mean``, ``mean_response`` or both, then the best one's neighbours concatenated to it. The encoder is never
updated, so a run is one forward pass over the texts (every candidate layer read at once) plus least-squares
fits: minutes on a CPU, with no training-time activation memory.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from transformers import AutoConfig

from ift_select.core.devices import device
from ift_select.grading.iqs import IQSModel, build, encoder_dir, encoder_reference, run_batched, same_instruction
from ift_select.grading.iqs_data import (TrainSettings, load_training_data, pair_weights, revised_not_longer, save_dir,
                                        validate)

ALPHAS = (10.0, 100.0, 1000.0, 10000.0)
FOLDS = 5
SEARCH_POOLINGS = ("mean", "mean_response")  # the union read in one pass; candidates use one or both
LAYER_STEP = 3  # candidate layers: every third hidden layer, from the 6th to the third from the last


def _fit(pos: np.ndarray, neg: np.ndarray, weight: np.ndarray, alpha: float) -> Ridge:
    x = np.vstack([pos, neg])
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return Ridge(alpha=alpha).fit(x, y, sample_weight=np.r_[weight, weight])


def choose_alpha(pos: np.ndarray, neg: np.ndarray, weight: np.ndarray, not_longer: np.ndarray, balance: bool,
                 seed: int) -> tuple[float, list[dict[str, float]]]:
    """The ridge strength with the best cross-validated pairwise accuracy (with ``balance``: the mean of the
    overall and the not-longer accuracy), and the table of every candidate."""
    table = []
    for alpha in ALPHAS:
        folds = []
        for fit_idx, held in KFold(FOLDS, shuffle=True, random_state=seed).split(pos):
            coef = _fit(pos[fit_idx], neg[fit_idx], weight[fit_idx], alpha).coef_
            wins = (pos[held] - neg[held]) @ coef > 0
            folds.append((wins.mean(), wins[not_longer[held]].mean() if not_longer[held].any() else np.nan))
        overall, nl = np.nanmean(folds, axis=0)
        table.append({"alpha": alpha, "cv_pairwise_accuracy": round(float(overall), 4),
                      "cv_pairwise_accuracy_not_longer": round(float(nl), 4),
                      "criterion": round(float((overall + nl) / 2 if balance and not np.isnan(nl) else overall), 4)})
    best = max(table, key=lambda row: row["criterion"])
    return best["alpha"], table


@dataclass(frozen=True)
class Features:
    """Standardised pooled features of the training pairs, one block of ``width`` columns per (layer, pooling)."""

    pos: np.ndarray
    neg: np.ndarray
    layers: tuple[int, ...]
    pooling: tuple[str, ...]
    width: int

    def columns(self, layers: tuple[int, ...], pooling: tuple[str, ...]) -> np.ndarray:
        """Column indices of (layers, pooling) in the order ``IQSModel.features`` concatenates them."""
        blocks = [self.layers.index(layer) * len(self.pooling) + self.pooling.index(kind)
                  for layer in layers for kind in pooling]
        return np.concatenate([np.arange(b * self.width, (b + 1) * self.width) for b in blocks])


def candidate_layers(num_layers: int) -> tuple[int, ...]:
    return tuple(range(min(6, num_layers // 2), max(num_layers - 2, num_layers // 2 + 1), LAYER_STEP))


def choose_features(feats: Features, weight: np.ndarray, not_longer: np.ndarray, balance: bool, seed: int
                    ) -> tuple[tuple[int, ...], tuple[str, ...], float, list[dict[str, Any]]]:
    """(layers, pooling, alpha) with the best cross-validated criterion (``choose_alpha``): first each candidate
    layer alone under each pooling, then the best one with its neighbours (LAYER_STEP away) concatenated."""
    table: list[dict[str, Any]] = []

    def trial(layers: tuple[int, ...], pooling: tuple[str, ...]) -> None:
        cols = feats.columns(layers, pooling)
        alpha, by_alpha = choose_alpha(feats.pos[:, cols], feats.neg[:, cols], weight, not_longer, balance, seed)
        best = next(row for row in by_alpha if row["alpha"] == alpha)
        table.append({"layers": list(layers), "pooling": list(pooling), **best})

    poolings = [(kind,) for kind in feats.pooling] + ([feats.pooling] if len(feats.pooling) > 1 else [])
    for layer in feats.layers:
        for pooling in poolings:
            trial((layer,), pooling)
    single = max(table, key=lambda row: row["criterion"])
    (layer,), pooling = single["layers"], tuple(single["pooling"])
    near = [x for x in (layer - LAYER_STEP, layer + LAYER_STEP) if x in feats.layers]
    for layers in {tuple(sorted({layer, *near})), *(tuple(sorted((layer, x))) for x in near)}:
        if len(layers) > 1:
            trial(layers, pooling)
    best = max(table, key=lambda row: row["criterion"])
    return tuple(best["layers"]), tuple(best["pooling"]), best["alpha"], table


def fit_probe(labels_csv: str | Path, valid_csv: str | Path, encoder: str, out_dir: str | Path,
              cfg: TrainSettings) -> dict[str, Any]:
    """Fit the probe (see the module docstring) and write the model directory; returns the run's figures."""
    start = time.perf_counter()
    train, valid, pairs, identical, valid_pairs = load_training_data(labels_csv, valid_csv, cfg.max_rows)
    src = train["src"].tolist()
    path = encoder_dir(encoder)
    search = not cfg.layers
    read_layers = candidate_layers(AutoConfig.from_pretrained(path).num_hidden_layers) if search else cfg.layers
    read_pooling = SEARCH_POOLINGS if search else cfg.pooling
    reader = build(path, cfg.max_length, read_layers, read_pooling).to(device()).eval()
    pos_text = [src[hi] for _, hi in pairs]
    neg_text = [same_instruction(src[hi], src[lo]) for lo, hi in pairs]
    raw = run_batched(reader.features, pos_text + neg_text, 16, cfg.precision, "iqs features")
    mean, std = raw.mean(axis=0), raw.std(axis=0) + 1e-6
    feats = Features((raw[: len(pairs)] - mean) / std, (raw[len(pairs):] - mean) / std, read_layers, read_pooling,
                     reader.encoder.config.hidden_size)
    by_pair = pair_weights(pairs, src, cfg.length_balance)
    weight = np.array([by_pair[p] for p in pairs])
    by_length = revised_not_longer(pairs, src)
    not_longer = np.array([by_length[p] for p in pairs])
    if search:
        layers, pooling, alpha, table = choose_features(feats, weight, not_longer, cfg.length_balance, cfg.seed)
    else:
        layers, pooling = cfg.layers, cfg.pooling
        alpha, table = choose_alpha(feats.pos, feats.neg, weight, not_longer, cfg.length_balance, cfg.seed)
    cols = feats.columns(layers, pooling)
    ridge = _fit(feats.pos[:, cols], feats.neg[:, cols], weight, alpha)
    scale = ridge.coef_ / std[cols]  # the standardisation folded into the head: x @ scale + bias
    model = IQSModel(reader.encoder, reader.tokenizer, cfg.max_length, layers, pooling).to(device()).eval()
    linear = model.head[1]
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(scale, dtype=linear.weight.dtype)[None])
        linear.bias.fill_(float(ridge.intercept_ - (mean[cols] * scale).sum()))
    figures = {"alpha": alpha, "layers": list(layers), "pooling": list(pooling),
               **validate(model, valid, valid_pairs, cfg.precision)}
    seconds = time.perf_counter() - start
    out = Path(out_dir)
    size_mb = save_dir(model.cpu(), out, {"encoder": encoder, "labels": str(labels_csv), "valid": str(valid_csv),
                                          "best": figures, "cv": table, "settings": dataclasses.asdict(cfg)},
                       reference=encoder_reference(encoder))
    return {"out": str(out), "method": "probe", "train_rows": len(train), "train_pairs": len(pairs),
            "identical_pairs_dropped": len(identical), "valid_pairs": len(valid_pairs),
            "train_seconds": round(seconds, 1), "model_mb": size_mb, **figures}
