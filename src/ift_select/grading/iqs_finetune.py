"""IQS ``--method finetune``: encoder + linear head trained end to end, MSE on the labels plus a margin ranking
term on the known (raw, revised) pairs; the checkpoint with the best validation pairwise accuracy is kept.
See ``ift_select.grading.iqs`` for the data and the measured figures.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ift_select.core.devices import autocast, device
from ift_select.data.car_text import RESPONSE
from ift_select.grading.iqs import build, encoder_dir, same_instruction
from ift_select.grading.iqs_data import TrainSettings, load_training_data, pair_weights, save_dir, validate


def _epoch_batches(groups: list[tuple[int, ...]], lengths: list[int], batch_pairs: int, rng: np.random.Generator) -> list[list[tuple[int, ...]]]:
    """One epoch of batches, shuffled, each cut from a length-sorted window of 32 batches (less padding)."""
    perm = rng.permutation(len(groups)).tolist()
    window = batch_pairs * 32
    batches = []
    for start in range(0, len(perm), window):
        part = sorted(perm[start : start + window], key=lambda i: lengths[i])
        batches += [[groups[i] for i in part[j : j + batch_pairs]] for j in range(0, len(part), batch_pairs)]
    return [batches[i] for i in rng.permutation(len(batches))]


def first_sentence(text: str) -> str:
    """The first sentence of a response text (after ``Response: ``), at most 300 characters."""
    body = text[text.find(RESPONSE) + len(RESPONSE):] if RESPONSE in text else text
    cut = min((i for i in (body.find(". "), body.find("\n")) if i > 0), default=len(body) - 1)
    return body[: cut + 1][:300].strip()


@dataclass
class Batch:
    """One training step: ``texts`` (the first ``len(targets)`` have MSE targets), ``rank`` (better, worse)
    positions with their weights, one or two per (raw, revised) pair."""

    texts: list[str]
    targets: list[float]
    rank: list[tuple[int, int]]
    rank_weights: list[float]


def _batch(groups: list[tuple[int, ...]], src: list[str], score: list[float],
           pair_weight: dict[tuple[int, ...], float], redundant: bool = False) -> Batch:
    """A batch of (raw, revised) pairs and single rows. The revised text is ranked above the raw response under
    the revised instruction (added as one more 0-label text when the instruction was rewritten). A pair's texts
    carry its ``pair_weight`` in the ranking term. With ``redundant``, the revised text is also ranked above itself
    followed by the raw response's first sentence: a longer, redundant answer (ranking term only)."""
    b = Batch([], [], [], [])
    extra: list[tuple[int, int, float]] = []
    for group in groups:
        w = pair_weight.get(group, 1.0)
        base = len(b.texts)
        b.texts += [src[i] for i in group]
        b.targets += [score[i] for i in group]
        if len(group) == 2:
            lo, hi = group
            swapped = same_instruction(src[hi], src[lo])
            if swapped != src[lo]:
                b.texts.append(swapped)
                b.targets.append(score[lo])
            b.rank.append((base + 1, len(b.texts) - 1 if swapped != src[lo] else base))
            b.rank_weights.append(w)
            extra.append((base + 1, lo, w))
    for hi, lo, w in extra if redundant else []:
        b.texts.append(b.texts[hi].rstrip() + " " + first_sentence(src[lo]))
        b.rank.append((hi, len(b.texts) - 1))
        b.rank_weights.append(w)
    return b


def _lr_schedule(optim: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first 10% of steps, then linear decay to 0."""
    warmup = max(1, total // 10)
    return torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))


def finetune(labels_csv: str | Path, valid_csv: str | Path, encoder: str, out_dir: str | Path,
             cfg: TrainSettings) -> dict[str, Any]:
    """Fine-tune encoder + head (MSE + rank_weight * margin ranking); keep the best-validating checkpoint."""
    start = time.perf_counter()
    train, valid, pairs, identical, valid_pairs = load_training_data(labels_csv, valid_csv, cfg.max_rows)
    src, score = train["src"].tolist(), train["score"].tolist()
    dropped = {i for p in identical for i in p}
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build(encoder_dir(encoder), cfg.max_length).to(device()).train()
    optim = torch.optim.AdamW([{"params": model.encoder.parameters(), "lr": cfg.lr},
                               {"params": model.head.parameters(), "lr": cfg.head_lr}], weight_decay=0.01)
    paired = {i for p in pairs for i in p}
    groups: list[tuple[int, ...]] = [*pairs, *[(i,) for i in range(len(train)) if i not in paired | dropped]]
    per_epoch = math.ceil(len(groups) / cfg.batch_pairs)
    total = max(1, math.ceil(cfg.epochs * per_epoch))
    sched = _lr_schedule(optim, total)
    evals = math.ceil(cfg.epochs * cfg.evals_per_epoch)
    eval_at = {min(total, math.ceil(per_epoch * e / cfg.evals_per_epoch)) for e in range(1, evals + 1)} | {total}
    lengths = [max(len(src[i]) for i in group) for group in groups]
    pair_weight = pair_weights(pairs, src, cfg.length_balance)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"valid_pairwise_accuracy": -1.0}
    queue: list[list[tuple[int, ...]]] = []
    for step in tqdm(range(1, total + 1), desc="iqs train", unit="step"):
        queue = queue or _epoch_batches(groups, lengths, cfg.batch_pairs, rng)
        b = _batch(queue.pop(), src, score, pair_weight, cfg.redundant_negatives)
        with autocast(cfg.precision):
            pred = model(b.texts)
        n = len(b.targets)
        loss = nn.functional.mse_loss(pred[:n], torch.tensor(b.targets, device=pred.device))
        if b.rank and cfg.rank_weight > 0:
            hi, lo = (torch.tensor(ix, device=pred.device) for ix in zip(*b.rank))
            rw = torch.tensor(b.rank_weights, device=pred.device)
            loss = loss + cfg.rank_weight * (rw * torch.relu(cfg.margin - (pred[hi] - pred[lo]))).sum() / rw.sum()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        if step in eval_at:
            entry = {"step": step, "epoch": round(step / per_epoch, 2), "loss": round(loss.item(), 4),
                     **validate(model, valid, valid_pairs, cfg.precision)}
            history.append(entry)
            tqdm.write(json.dumps(entry), file=sys.stderr)
            if entry["valid_pairwise_accuracy"] > best["valid_pairwise_accuracy"]:
                best = {**entry, "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    model.load_state_dict(best.pop("state"))
    seconds = time.perf_counter() - start
    out = Path(out_dir)
    size_mb = save_dir(model.cpu(), out, {"encoder": encoder, "labels": str(labels_csv), "valid": str(valid_csv), "best": best,
                                 "history": history, "settings": dataclasses.asdict(cfg)})
    return {"out": str(out), "train_rows": len(train), "train_pairs": len(pairs), "identical_pairs_dropped": len(identical),
            "valid_pairs": len(valid_pairs), "steps": total,
            "train_seconds": round(seconds, 1), "model_mb": size_mb, **{k: v for k, v in best.items() if k != "loss"}}
