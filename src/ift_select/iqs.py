"""CaR's Instruction-pair Quality Scorer (IQS): a regression head on a sentence encoder.

    ift-select iqs train --labels ../shared/data/car_expert_revised_scores/APE_score_train.csv \
        --valid ../shared/data/car_expert_revised_scores/APE_score_valid.csv --out models/iqs
    ift-select iqs eval --model models/iqs --pairs ../shared/data/car_expert_revised_pairs/APE_valid.csv

Labels (CaR's ``APE_score_*.csv``): ``src`` = "Instruction: … [Input: …] Response: …", ``score`` = 0 for the raw
pair and 1 for the expert-revised pair; rows 2i (raw) and 2i+1 (revised) are the same item. Pairs (CaR's
``APE_*.csv``): ``src`` = "Instruction: … " (the revised instruction), ``pos`` / ``neg`` = "Response: …"
(revised / raw response); ``src + pos`` is the scored text.

Training: mean-pooled encoder + linear head, fine-tuned end to end with MSE on the 0/1 labels (CaR's loss) plus
a margin ranking term on the known (raw, revised) pairs. For that term the raw response is put under the
revised instruction -- exactly the text ``iqs eval`` scores for ``neg`` -- so the model learns to prefer the
revised response, not to spot a rewritten instruction. Pairs whose revised response is not the longer one (about
1 in 5) weigh as much in that term as all the others (``length_balance``), so length alone cannot fit it. The
checkpoint with the best validation pairwise accuracy (revised row above its raw row in ``--valid``) is kept.
Measured (2-core CPU, MiniLM, 3 epochs, ~40-90 min): 92.1% pairwise accuracy on APE_valid.csv, 76.5% on the pairs
whose expert response is not the longer one (checkpoint chosen on the same 254 pairs in label form).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ift_select.devices import autocast, device, use_bf16
from ift_select.embedding import MINILM, length_sorted_batches, transformer_dir
from ift_select.errors import ConfigError, DataError

FORMAT = "ift-select-iqs/1"
HEAD_FILE = "head.pt"
CONFIG_FILE = "iqs.json"
RESPONSE = "Response: "


def iqs_text(instruction: str, input: str | None, output: str) -> str:
    """A pool row in the labels' form: ``Instruction: {instruction} [Input: {input} ]Response: {output}``."""
    inp = (input or "").strip()
    return f"Instruction: {instruction.strip()} " + (f"Input: {inp} " if inp else "") + f"{RESPONSE}{output.strip()}"


def _read_csv(path: str | Path, columns: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found")
    frame = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} (expected {', '.join(columns)}; found {', '.join(frame.columns)})")
    return frame


def read_labels(path: str | Path) -> pd.DataFrame:
    frame = _read_csv(path, ("src", "score"))
    score = pd.to_numeric(frame["score"], errors="coerce")
    if score.isna().any():
        bad = int(np.flatnonzero(score.isna().to_numpy())[0])
        raise DataError(f"{path}: line {bad + 2}: score {frame['score'].iloc[bad]!r} is not a number")
    return pd.DataFrame({"src": frame["src"].astype(str), "score": score.astype(np.float32)})


def label_pairs(frame: pd.DataFrame) -> list[tuple[int, int]]:
    """(raw, revised) row positions: rows 2i and 2i+1 whose scores differ, lower score first."""
    s = frame["score"].to_numpy()
    return [(i, i + 1) if s[i] < s[i + 1] else (i + 1, i) for i in range(0, len(s) - 1, 2) if s[i] != s[i + 1]]


def same_instruction(revised: str, raw: str) -> str:
    """The raw response under the revised row's instruction (CaR's pairs form: ``src + neg``)."""
    i, j = revised.find(RESPONSE), raw.find(RESPONSE)
    return raw if i < 0 or j < 0 else revised[:i] + raw[j:]


class IQSModel(nn.Module):
    """Encoder -> mean pooling over tokens -> dropout -> linear: one quality score per text."""

    def __init__(self, encoder: nn.Module, tokenizer: Any, max_length: int) -> None:
        super().__init__()
        self.encoder, self.tokenizer, self.max_length = encoder, tokenizer, max_length
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(encoder.config.hidden_size, 1))
        nn.init.zeros_(self.head[1].bias)

    def forward(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = {k: v.to(self.head[1].weight.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled).squeeze(-1).float()

    def save(self, out: Path, record: dict[str, Any]) -> None:
        self.encoder.save_pretrained(out / "encoder")
        self.tokenizer.save_pretrained(out / "encoder")
        torch.save(self.head.state_dict(), out / HEAD_FILE)
        (out / CONFIG_FILE).write_text(json.dumps({"format": FORMAT, "max_length": self.max_length, **record}, indent=2) + "\n")


def _build(encoder_path: str, max_length: int) -> IQSModel:
    from transformers import AutoModel, AutoTokenizer

    return IQSModel(AutoModel.from_pretrained(encoder_path), AutoTokenizer.from_pretrained(encoder_path), max_length)


def load_iqs(model_dir: str | Path) -> IQSModel:
    model_dir = Path(model_dir)
    config_path = model_dir / CONFIG_FILE
    if not config_path.exists():
        raise ConfigError(f"{model_dir}: no {CONFIG_FILE}, not an IQS model directory (train one: ift-select iqs train)")
    config = json.loads(config_path.read_text())
    if config.get("format") != FORMAT:
        raise ConfigError(f"{config_path}: format {config.get('format')!r}, expected {FORMAT!r}")
    model = _build(str(model_dir / "encoder"), int(config["max_length"]))
    model.head.load_state_dict(torch.load(model_dir / HEAD_FILE, map_location="cpu"))
    return model.to(device()).eval()


def score_texts(model: IQSModel, texts: list[str], batch_size: int = 32, precision: str = "auto", progress: bool = False) -> np.ndarray:
    """Quality scores (float32, higher is better), row i for texts[i]; batches of length-sorted texts."""
    out = np.empty(len(texts), dtype=np.float32)
    was_training = model.training
    model.eval()
    batches = list(length_sorted_batches(texts, batch_size))
    with torch.inference_mode(), autocast(precision):
        for idx in tqdm(batches, desc="iqs", unit="batch", disable=not progress):
            out[idx] = model([texts[i] for i in idx]).cpu().numpy()
    model.train(was_training)
    return out


def score_rows(rows: pd.DataFrame, model_dir: str | Path, batch_size: int = 32, precision: str = "auto") -> np.ndarray:
    """IQS scores of pool rows (``instruction``, ``input``, ``output``), for the score stage's ``iqs`` column."""
    inputs = rows["input"] if "input" in rows else pd.Series("", index=rows.index)
    texts = [iqs_text(str(a), None if pd.isna(b) else str(b), str(c)) for a, b, c in zip(rows["instruction"], inputs, rows["output"])]
    return score_texts(load_iqs(model_dir), texts, batch_size, precision, progress=True)


def pairwise_figures(pos: np.ndarray, neg: np.ndarray, pos_len: np.ndarray, neg_len: np.ndarray) -> dict[str, Any]:
    """Share of pairs with pos scored strictly above neg; also on the pairs where pos is not the longer text."""
    wins, not_longer = pos > neg, pos_len <= neg_len
    return {
        "n": int(len(pos)),
        "pairwise_accuracy": round(float(wins.mean()), 4) if len(pos) else None,
        "n_not_longer": int(not_longer.sum()),
        "pairwise_accuracy_not_longer": round(float(wins[not_longer].mean()), 4) if not_longer.any() else None,
        "longer_wins_baseline": round(float((pos_len > neg_len).mean()), 4) if len(pos) else None,
    }


def pairwise_eval(model_dir: str | Path, pairs_csv: str | Path, precision: str = "auto") -> dict[str, Any]:
    """Score CaR-format pairs (``src``, ``pos``, ``neg``) as ``src + pos`` vs ``src + neg``.

    Lengths compare the responses (``pos`` vs ``neg``) in characters."""
    pairs = _read_csv(pairs_csv, ("src", "pos", "neg")).astype(str)
    scores = score_texts(load_iqs(model_dir), (pairs["src"] + pairs["pos"]).tolist() + (pairs["src"] + pairs["neg"]).tolist(), precision=precision, progress=True)
    n = len(pairs)
    result = pairwise_figures(scores[:n], scores[n:], pairs["pos"].str.len().to_numpy(), pairs["neg"].str.len().to_numpy())
    return {"model": str(model_dir), "pairs": str(pairs_csv), **result}


def _epoch_batches(groups: list[tuple[int, ...]], lengths: list[int], batch_pairs: int, rng: np.random.Generator) -> list[list[tuple[int, ...]]]:
    """One epoch of batches, shuffled, each cut from a length-sorted window of 32 batches (less padding)."""
    perm = rng.permutation(len(groups)).tolist()
    window = batch_pairs * 32
    batches = []
    for start in range(0, len(perm), window):
        part = sorted(perm[start : start + window], key=lambda i: lengths[i])
        batches += [[groups[i] for i in part[j : j + batch_pairs]] for j in range(0, len(part), batch_pairs)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _pair_weights(pairs: list[tuple[int, int]], src: list[str], balance: bool) -> dict[tuple[int, ...], float]:
    """Ranking-term weight per (raw, revised) pair. With ``balance``, pairs where the revised response is not the
    longer one weigh as much in total as the others (about 1 in 5 here), so length alone cannot fit the loss."""
    not_longer = {p: len(src[p[1]]) - len(same_instruction(src[p[1]], src[p[0]])) <= 0 for p in pairs}
    share = sum(not_longer.values()) / max(1, len(pairs))
    if not balance or share in (0.0, 1.0):
        return {p: 1.0 for p in pairs}
    return {p: 0.5 / share if nl else 0.5 / (1 - share) for p, nl in not_longer.items()}


def first_sentence(text: str) -> str:
    """The first sentence of a response text (after ``Response: ``), at most 300 characters."""
    body = text[text.find(RESPONSE) + len(RESPONSE):] if RESPONSE in text else text
    cut = min((i for i in (body.find(". "), body.find("\n")) if i > 0), default=len(body) - 1)
    return body[: cut + 1][:300].strip()


@dataclass
class Batch:
    """One training step: ``texts`` (the first ``len(targets)`` have MSE targets, weighted by ``weights``),
    ``rank`` (better, worse) positions with their weights, one or two per (raw, revised) pair."""

    texts: list[str]
    targets: list[float]
    weights: list[float]
    rank: list[tuple[int, int]]
    rank_weights: list[float]


def _batch(groups: list[tuple[int, ...]], src: list[str], score: list[float],
           pair_weight: dict[tuple[int, ...], float], redundant: bool = False) -> Batch:
    """A batch of (raw, revised) pairs and single rows. The revised text is ranked above the raw response under
    the revised instruction (added as one more 0-label text when the instruction was rewritten). A pair's texts
    carry its ``pair_weight`` in both terms. With ``redundant``, the revised text is also ranked above itself
    followed by the raw response's first sentence: a longer, redundant answer (ranking term only)."""
    b = Batch([], [], [], [], [])
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
        b.weights += [w] * (len(b.texts) - base)
    for hi, lo, w in extra if redundant else []:
        b.texts.append(b.texts[hi].rstrip() + " " + first_sentence(src[lo]))
        b.rank.append((hi, len(b.texts) - 1))
        b.rank_weights.append(w)
    return b


def _validate(model: IQSModel, valid: pd.DataFrame, pairs: list[tuple[int, int]], precision: str) -> dict[str, Any]:
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


def _save_dir(model: IQSModel, out: Path, record: dict[str, Any]) -> None:
    """Write the model directory beside ``out`` and swap it in, so ``out`` is never half written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save(tmp, record)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class TrainSettings:
    """``ift-select iqs train`` options; invalid values are ConfigErrors naming the option."""

    epochs: float = 3.0
    batch_pairs: int = 16  # (raw, revised) pairs per step
    lr: float = 5e-5  # encoder
    head_lr: float = 1e-3
    max_length: int = 384  # tokens per text (98.5% of the label texts fit); longer texts lose their end
    rank_weight: float = 1.0  # 0: CaR's MSE only
    margin: float = 0.5
    length_balance: bool = True  # see _pair_weights; measured +0.4 / +2 points (overall / not-longer) on valid
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


def _lr_schedule(optim: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first 10% of steps, then linear decay to 0."""
    warmup = max(1, total // 10)
    return torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))


def train_iqs(labels_csv: str | Path, valid_csv: str | Path, encoder: str = MINILM, out_dir: str | Path = "models/iqs",
              settings: TrainSettings | None = None, **overrides: Any) -> dict[str, Any]:
    """Fine-tune encoder + head (MSE + rank_weight * margin ranking); keep the best-validating checkpoint in
    ``out_dir``. ``overrides`` replace fields of ``settings``."""
    cfg = dataclasses.replace(settings or TrainSettings(), **overrides)
    start = time.perf_counter()
    train, valid = read_labels(labels_csv), read_labels(valid_csv)
    if cfg.max_rows is not None:
        train, valid = train.iloc[: cfg.max_rows], valid.iloc[: cfg.max_rows]
    pairs, valid_pairs = label_pairs(train), label_pairs(valid)
    src, score = train["src"].tolist(), train["score"].tolist()
    # Pairs whose expert "revision" left the response unchanged cannot be ranked: they are left out, and counted.
    identical = [(lo, hi) for lo, hi in pairs if same_instruction(src[hi], src[lo]) == src[hi]]
    pairs = [p for p in pairs if p not in set(identical)]
    dropped = {i for p in identical for i in p}
    if not valid_pairs:
        raise DataError(f"{valid_csv}: no (raw, revised) row pairs to validate on (rows 2i, 2i+1 with different scores)")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = _build(transformer_dir(encoder), cfg.max_length).to(device()).train()
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
    pair_weight = _pair_weights(pairs, src, cfg.length_balance)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"valid_pairwise_accuracy": -1.0}
    queue: list[list[tuple[int, ...]]] = []
    for step in tqdm(range(1, total + 1), desc="iqs train", unit="step"):
        queue = queue or _epoch_batches(groups, lengths, cfg.batch_pairs, rng)
        b = _batch(queue.pop(), src, score, pair_weight, cfg.redundant_negatives)
        with autocast(cfg.precision):
            pred = model(b.texts)
        n, w = len(b.targets), torch.tensor(b.weights, device=pred.device)
        loss = (w * (pred[:n] - torch.tensor(b.targets, device=pred.device)) ** 2).sum() / w.sum()
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
                     **_validate(model, valid, valid_pairs, cfg.precision)}
            history.append(entry)
            tqdm.write(json.dumps(entry), file=sys.stderr)
            if entry["valid_pairwise_accuracy"] > best["valid_pairwise_accuracy"]:
                best = {**entry, "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    model.load_state_dict(best.pop("state"))
    seconds = time.perf_counter() - start
    out = Path(out_dir)
    _save_dir(model.cpu(), out, {"encoder": encoder, "labels": str(labels_csv), "valid": str(valid_csv), "best": best,
                                 "history": history, "settings": dataclasses.asdict(cfg)})
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"out": str(out), "train_rows": len(train), "train_pairs": len(pairs), "identical_pairs_dropped": len(identical),
            "valid_pairs": len(valid_pairs), "steps": total,
            "train_seconds": round(seconds, 1), "model_mb": round(size / 2**20, 1), **{k: v for k, v in best.items() if k != "loss"}}
