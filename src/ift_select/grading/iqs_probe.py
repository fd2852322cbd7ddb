"""IQS as a probe: a frozen encoder's mean-pooled hidden layer(s) and a linear head fitted by ridge regression,
i.e. MSE on the labels (revised response 1, raw response under the revised instruction 0).

    ift-select iqs train --method probe --encoder smollm2-135m-instruct --labels … --valid … --out models/iqs

Pairs whose revised response is not the longer one weigh as much as all the others (``length_balance``), and the
ridge strength is chosen by 5-fold cross-validation over the training pairs on the mean of the overall and the
not-longer pairwise accuracy: the validation file is only measured, never used to choose. The encoder is never
updated, so a run is one forward pass over the texts plus a few least-squares fits: minutes on a CPU, with no
training-time activation memory.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from transformers import AutoConfig

from ift_select.core.devices import device
from ift_select.grading.iqs import build, encoder_dir, encoder_reference, run_batched, same_instruction
from ift_select.grading.iqs_data import (TrainSettings, load_training_data, pair_weights, revised_not_longer, save_dir,
                                        validate)

ALPHAS = (10.0, 100.0, 1000.0, 10000.0)
FOLDS = 5


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


def fit_probe(labels_csv: str | Path, valid_csv: str | Path, encoder: str, out_dir: str | Path,
              cfg: TrainSettings) -> dict[str, Any]:
    """Fit the probe (see the module docstring) and write the model directory; returns the run's figures."""
    start = time.perf_counter()
    train, valid, pairs, identical, valid_pairs = load_training_data(labels_csv, valid_csv, cfg.max_rows)
    src = train["src"].tolist()
    path = encoder_dir(encoder)
    layers = cfg.layers or (AutoConfig.from_pretrained(path).num_hidden_layers // 2,)
    model = build(path, cfg.max_length, layers, cfg.pooling).to(device()).eval()
    pos_text = [src[hi] for _, hi in pairs]
    neg_text = [same_instruction(src[hi], src[lo]) for lo, hi in pairs]
    feats = run_batched(model.features, pos_text + neg_text, 16, cfg.precision, "iqs features")
    mean, std = feats.mean(axis=0), feats.std(axis=0) + 1e-6
    pos, neg = (feats[: len(pairs)] - mean) / std, (feats[len(pairs):] - mean) / std
    by_pair = pair_weights(pairs, src, cfg.length_balance)
    weight = np.array([by_pair[p] for p in pairs])
    by_length = revised_not_longer(pairs, src)
    not_longer = np.array([by_length[p] for p in pairs])
    alpha, table = choose_alpha(pos, neg, weight, not_longer, cfg.length_balance, cfg.seed)
    ridge = _fit(pos, neg, weight, alpha)
    scale = ridge.coef_ / std  # the standardisation folded into the head: x @ scale + bias
    linear = model.head[1]
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(scale, dtype=linear.weight.dtype)[None])
        linear.bias.fill_(float(ridge.intercept_ - (mean * scale).sum()))
    figures = {"alpha": alpha, "layers": list(layers), "pooling": list(cfg.pooling),
               **validate(model, valid, valid_pairs, cfg.precision)}
    seconds = time.perf_counter() - start
    out = Path(out_dir)
    size_mb = save_dir(model.cpu(), out, {"encoder": encoder, "labels": str(labels_csv), "valid": str(valid_csv),
                                          "best": figures, "cv": table, "settings": dataclasses.asdict(cfg)},
                       reference=encoder_reference(encoder))
    return {"out": str(out), "method": "probe", "train_rows": len(train), "train_pairs": len(pairs),
            "identical_pairs_dropped": len(identical), "valid_pairs": len(valid_pairs),
            "train_seconds": round(seconds, 1), "model_mb": size_mb, **figures}
