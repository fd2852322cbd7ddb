"""CaR's Instruction-pair Quality Scorer (IQS): a regression head on an encoder.

    ift-select iqs train --labels ../shared/data/car_expert_revised_scores/APE_score_train.csv \
        --valid ../shared/data/car_expert_revised_scores/APE_score_valid.csv --out models/iqs
    ift-select iqs eval --model models/iqs --pairs ../shared/data/car_expert_revised_pairs/APE_valid.csv

Labels (CaR's ``APE_score_*.csv``): ``src`` = "Instruction: … [Input: …] Response: …", ``score`` = 0 for the raw
pair and 1 for the expert-revised pair; rows 2i (raw) and 2i+1 (revised) are the same item. Pairs (CaR's
``APE_*.csv``): ``src`` = "Instruction: … " (the revised instruction), ``pos`` / ``neg`` = "Response: …"
(revised / raw response); ``src + pos`` is the scored text. The raw response is put under the revised
instruction for training too -- exactly the text ``iqs eval`` scores for ``neg`` -- so the model learns to prefer
the revised response, not to spot a rewritten instruction. Pairs whose revised response is not the longer one
(about 1 in 5) weigh as much as all the others (``length_balance``), so length alone cannot fit the labels, and
the 24 training pairs whose response the expert left unchanged are dropped (counted).

Two methods (``--method``), both a mean-pooled encoder + linear head fitted with MSE on those labels:
- ``probe`` (default; ``iqs_probe``): the encoder stays frozen (default SmolLM2-135M-Instruct, its middle layer);
  a ridge head, strength chosen by cross-validation on the training pairs. Measured on APE_valid.csv (254 pairs,
  2-core CPU): 92.1% pairwise accuracy, 80.4% (41/51) on the pairs whose expert response is not the longer one;
  9 min, peak RSS 4.1 GB, 516.5 MB model.
- ``finetune``: encoder + head trained end to end (plus a margin ranking term on the pairs); the checkpoint with
  the best validation pairwise accuracy (revised row above its raw row in ``--valid``) is kept. Measured with
  MiniLM (3 epochs, ~40 min, peak RSS 14 GB): 92.1% / 76.5% (39/51), the checkpoint chosen on the same pairs (a
  run that also kept the 24 unchanged pairs; the redundant-negatives variant ran out of memory and was not measured).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ift_select.llm import models as base_models
from ift_select.core.devices import autocast, device
from ift_select.embedding.encoder import MINILM, length_sorted_batches, transformer_dir
from ift_select.core.errors import ConfigError, DataError
from ift_select.core.io import md5_path
from ift_select.data.car_text import RESPONSE, join_src

FORMAT = "ift-select-iqs/2"  # /1 also loads: the encoder saved in the directory
FORMATS = ("ift-select-iqs/1", FORMAT)
HEAD_FILE = "head.pt"
CONFIG_FILE = "iqs.json"
DEFAULT_ENCODER = {"probe": base_models.SMOLLM2, "finetune": MINILM}


def iqs_text(instruction: str, input: str | None, output: str) -> str:
    """A pool row in the labels' form: ``Instruction: {instruction} [Input: {input} ]Response: {output}``."""
    return join_src(instruction, input, output)


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


POOLINGS = ("mean", "mean_response", "last")  # over all tokens | over the response's tokens | the last token


class IQSModel(nn.Module):
    """Encoder -> pooled hidden states -> dropout -> linear: one quality score per text. ``layers`` (probe
    models) pools those hidden layers instead of the last hidden state; ``pooling`` says how (``POOLINGS``, one
    or more, concatenated per layer)."""

    def __init__(self, encoder: nn.Module, tokenizer: Any, max_length: int, layers: tuple[int, ...] = (),
                 pooling: tuple[str, ...] = ("mean",)) -> None:
        super().__init__()
        unknown = [p for p in pooling if p not in POOLINGS]
        if unknown or not pooling:
            raise ConfigError(f"iqs pooling {unknown or list(pooling)}: expected one or more of {', '.join(POOLINGS)}")
        self.encoder, self.tokenizer, self.max_length = encoder, tokenizer, max_length
        self.layers, self.pooling = tuple(layers), tuple(pooling)
        if tokenizer.pad_token is None:  # decoder LMs (SmolLM2, Llama) ship without one; the mask hides it anyway
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        width = encoder.config.hidden_size * max(1, len(self.layers)) * len(self.pooling)
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(width, 1))
        nn.init.zeros_(self.head[1].bias)

    def features(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt",
                               return_offsets_mapping="mean_response" in self.pooling)
        offsets = batch.pop("offset_mapping", None)
        batch = {k: v.to(self.head[1].weight.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        out = self.encoder(**batch, output_hidden_states=bool(self.layers))
        mask = batch["attention_mask"]
        masks = {"mean": mask}
        if offsets is not None:  # tokens from "Response: " on (the whole text when it has none)
            starts = torch.tensor([max(0, t.find(RESPONSE)) for t in texts], device=mask.device)
            response = (offsets[:, :, 0].to(mask.device) >= starts[:, None]) & mask.bool()
            masks["mean_response"] = torch.where(response.any(1, keepdim=True), response, mask.bool()).long()
        last = mask.sum(1) - 1  # right padding: the last real token
        states = [out.hidden_states[i] for i in self.layers] if self.layers else [out.last_hidden_state]
        pooled = []
        for h in states:
            for kind in self.pooling:
                if kind == "last":
                    pooled.append(h[torch.arange(len(texts), device=h.device), last])
                else:
                    m = masks[kind].unsqueeze(-1).to(h.dtype)
                    pooled.append((h * m).sum(1) / m.sum(1).clamp(min=1))
        return torch.cat(pooled, dim=-1)

    def forward(self, texts: list[str]) -> torch.Tensor:
        return self.head(self.features(texts)).squeeze(-1).float()

    def save(self, out: Path, record: dict[str, Any], reference: dict[str, str] | None = None) -> None:
        """The head and settings; the encoder too unless ``reference`` names it (a frozen, shipped encoder)."""
        if reference is None:
            self.encoder.save_pretrained(out / "encoder")
            self.tokenizer.save_pretrained(out / "encoder")
        torch.save(self.head.state_dict(), out / HEAD_FILE)
        settings = {"format": FORMAT, "max_length": self.max_length, "layers": list(self.layers),
                    "pooling": list(self.pooling)}
        if reference is not None:
            settings["encoder_ref"] = reference
        (out / CONFIG_FILE).write_text(json.dumps({**settings, **record}, indent=2) + "\n")


def encoder_dir(spec: str) -> str:
    """An encoder for IQS: a base-model alias (smollm2-135m-instruct, …) or .gguf -> its converted HF directory;
    otherwise the embed stage's resolution (the shipped MiniLM alias, a sentence-transformers dir, a hub id)."""
    if spec in base_models.ALIASES or spec.endswith(".gguf"):
        return base_models.model_dir(spec)
    return transformer_dir(spec)


def encoder_reference(spec: str) -> dict[str, str]:
    """How a model directory names a frozen encoder: its spec and the hash of the file(s) behind it."""
    if spec in base_models.ALIASES or spec.endswith(".gguf"):
        return {"spec": spec, "hash": base_models.source_hash(spec)}
    path = Path(transformer_dir(spec))
    return {"spec": spec, "hash": md5_path(path) if path.is_dir() else f"hub:{spec}"}


def build(encoder_path: str, max_length: int, layers: tuple[int, ...] = (), pooling: tuple[str, ...] = ("mean",)) -> IQSModel:
    from transformers import AutoModel, AutoTokenizer

    return IQSModel(AutoModel.from_pretrained(encoder_path), AutoTokenizer.from_pretrained(encoder_path), max_length,
                    layers, pooling)


def load_iqs(model_dir: str | Path) -> IQSModel:
    model_dir = Path(model_dir)
    config_path = model_dir / CONFIG_FILE
    if not config_path.exists():
        raise ConfigError(f"{model_dir}: no {CONFIG_FILE}, not an IQS model directory (train one: ift-select iqs train)")
    config = json.loads(config_path.read_text())
    if config.get("format") not in FORMATS:
        raise ConfigError(f"{config_path}: format {config.get('format')!r}, expected {FORMAT!r}")
    path = str(model_dir / "encoder")
    if "encoder_ref" in config:
        ref = config["encoder_ref"]
        found = encoder_reference(ref["spec"])["hash"]
        if found != ref["hash"]:
            raise ConfigError(f"{config_path}: encoder {ref['spec']} is now {found}, the head was fitted on "
                              f"{ref['hash']}: retrain it (ift-select iqs train)")
        path = encoder_dir(ref["spec"])
    model = build(path, int(config["max_length"]), tuple(config.get("layers") or ()), tuple(config.get("pooling") or ("mean",)))
    model.head.load_state_dict(torch.load(model_dir / HEAD_FILE, map_location="cpu"))
    return model.to(device()).eval()


def run_batched(fn: Callable[[list[str]], torch.Tensor], texts: list[str], batch_size: int, precision: str,
                desc: str, progress: bool = True) -> np.ndarray:
    """``fn`` over length-sorted batches of ``texts`` (inference mode, autocast): float32, row i for texts[i]."""
    out = np.empty(0, dtype=np.float32)
    with torch.inference_mode(), autocast(precision):
        for idx in tqdm(list(length_sorted_batches(texts, batch_size)), desc=desc, unit="batch", disable=not progress):
            values = fn([texts[i] for i in idx]).float().cpu().numpy()
            if not out.size:
                out = np.empty((len(texts), *values.shape[1:]), dtype=np.float32)
            out[idx] = values
    return out


def score_texts(model: IQSModel, texts: list[str], batch_size: int = 32, precision: str = "auto", progress: bool = False) -> np.ndarray:
    """Quality scores (float32, higher is better), row i for texts[i]; batches of length-sorted texts."""
    was_training = model.training
    model.eval()
    out = run_batched(model, texts, batch_size, precision, "iqs", progress)
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
    # pos == neg: no scorer can put one above the other; these pairs count as misses (all of them are not-longer)
    result["n_identical"] = int((pairs["pos"] == pairs["neg"]).sum())
    return {"model": str(model_dir), "pairs": str(pairs_csv), **result}
