"""Training batches: encode rows (loss on response tokens only), plan length-grouped micro-batches with a fixed
seed (every process builds the same plan), collate them, and the summed token loss."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ift_select.core.params import TrainParams
from ift_select.training.prompting import encode_example, pad_sequences

IGNORE = -100
MEGABATCH = 50  # batches per length-sorted chunk of the shuffled rows (as HF's LengthGroupedSampler)
Batch = list[int]  # row indices


def encode_rows(tokenizer: Any, frame: pd.DataFrame, max_length: int) -> tuple[list[list[int]], list[list[int]]]:
    pairs = [encode_example(tokenizer, row.instruction, getattr(row, "input", ""), row.output, max_length)
             for row in frame.itertuples(index=False)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plan_batches(lengths: Sequence[int], batch_size: int, seed: int, group_by_length: bool) -> list[Batch]:
    """One epoch of batches. Grouped: shuffle, sort chunks of ``MEGABATCH`` batches by length, cut, shuffle the
    batches; naive: shuffle and cut. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)).tolist()
    if group_by_length:
        chunk = batch_size * MEGABATCH
        order = [i for s in range(0, len(order), chunk)
                 for i in sorted(order[s:s + chunk], key=lambda i: -lengths[i])]
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def padding_stats(batches: Sequence[Batch], lengths: Sequence[int]) -> tuple[int, int]:
    """(real tokens, token slots) when every batch is padded to its longest row."""
    real = sum(lengths[i] for b in batches for i in b)
    slots = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return real, slots


def collate(rows: Batch, ids: Sequence[list[int]], labels: Sequence[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors: padding has attention 0 and label -100."""
    input_ids, mask = pad_sequences([ids[i] for i in rows], pad_id)
    label_ids, _ = pad_sequences([labels[i] for i in rows], IGNORE)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": label_ids}


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(summed next-token cross-entropy over positions whose label is not -100, number of such positions)."""
    shift_logits = logits[:, :-1].float().reshape(-1, logits.size(-1))
    shift_labels = labels[:, 1:].reshape(-1)
    loss = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE, reduction="sum")
    return loss, int((shift_labels != IGNORE).sum())


def label_count(rows: Batch, labels: Sequence[list[int]]) -> int:
    return sum(sum(1 for t in labels[i][1:] if t != IGNORE) for i in rows)


def microbatch_plan(lengths: Sequence[int], params: TrainParams, seed: int, per_step: int) -> tuple[list[Batch], int]:
    """All micro-batches of the run in order (``per_step`` = processes x grad_accum per optimizer step) and the
    number of optimizer steps. Each epoch's batches wrap around to fill its last step (as DistributedSampler)."""
    first = plan_batches(lengths, params.batch_size, seed, params.group_by_length)
    steps_per_epoch = math.ceil(len(first) / per_step)
    total = max(1, math.ceil(params.epochs * steps_per_epoch))
    plan: list[Batch] = []
    for epoch in range(math.ceil(total / steps_per_epoch)):
        batches = first if epoch == 0 else plan_batches(lengths, params.batch_size, seed + epoch, params.group_by_length)
        plan += [batches[k % len(batches)] for k in range(steps_per_epoch * per_step)]
    return plan[: total * per_step], total
