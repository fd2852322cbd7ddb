"""Embeddings with the real shipped all-MiniLM-L6-v2: shape, batched == one at a time, order, ids on disk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ift_select.core.params import EmbedParams
from ift_select.embedding.encoder import MINILM, embed_pool, embed_texts, load_model, model_path, row_text
from ift_select.embedding.store import load_embeddings
from ift_select.core.errors import ConfigError

pytestmark = pytest.mark.slow

ROWS = pd.DataFrame(
    {
        "id": ["b1", "a2", "c3", "d4", "e5", "f6"],
        "instruction": [
            "Give three tips for staying healthy.",
            "Translate the sentence into French.",
            "Write a haiku about autumn leaves falling slowly onto a quiet river in the early morning light.",
            "What is 2 + 2?",
            "Summarise the paragraph.",
            "Name a prime number.",
        ],
        "input": ["", "The cat sleeps.", "", "", "Cells are the basic unit of life. " * 12, None],
        "output": ["Eat well, sleep, exercise.", "Le chat dort.", "Leaves drift and fall", "4", "Cells build life.", "7"],
    }
)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_row_text_joins_non_empty_fields() -> None:
    texts = row_text(ROWS)
    assert texts[0] == "Give three tips for staying healthy.\nEat well, sleep, exercise."
    assert texts[1] == "Translate the sentence into French.\nThe cat sleeps.\nLe chat dort."
    assert texts[5] == "Name a prime number.\n7"


def test_alias_resolves_to_shipped_dir_and_bad_spec_is_named() -> None:
    assert (model_path(MINILM) and load_model(MINILM).get_embedding_dimension() == 384)
    with pytest.raises(ConfigError, match="embed.model"):
        model_path("not-a-model")


def test_batched_bf16_matches_one_at_a_time_fp32_in_order() -> None:
    texts = row_text(ROWS)
    batched = embed_texts(texts, MINILM, batch_size=4, precision="auto", progress=False)
    assert batched.shape == (len(texts), 384) and batched.dtype == np.float32
    single = np.concatenate([embed_texts([t], MINILM, 1, "fp32", progress=False) for t in texts])
    assert cosine(batched, single).min() >= 0.999
    reversed_ = embed_texts(texts[::-1], MINILM, batch_size=4, precision="fp32", progress=False)
    assert cosine(reversed_[::-1], single).min() >= 0.9999  # order restored after the length sort


def test_embed_pool_writes_ids_aligned(tmp_path) -> None:
    metrics = embed_pool(ROWS, EmbedParams(batch_size=4, precision="fp32"), tmp_path / "emb")
    assert metrics["rows"] == len(ROWS) and metrics["dim"] == 384 and metrics["model"] == MINILM
    vectors, ids = load_embeddings(tmp_path / "emb")
    assert ids == ROWS["id"].tolist() == json.loads((tmp_path / "emb" / "ids.json").read_text())
    alone = embed_texts(row_text(ROWS.iloc[[4]]), MINILM, 1, "fp32", progress=False)
    assert cosine(vectors[[4]], alone)[0] >= 0.9999
    assert not [p for p in (tmp_path / "emb").iterdir() if p.name.startswith(".")]  # no temp files left
