"""Stage embed: sentence embeddings of every pool row (CaR's diversity step) -> data/embeddings/pool.npy and
ids.json, metrics/embed.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ift_select.core.io import read_parquet
from ift_select.core.params import Params
from ift_select.core.stage import Stage
from ift_select.embedding.encoder import embed_pool
from ift_select.provenance.dvcrepo import check_declared


def embed(params: Params, key: str) -> dict[str, Any]:
    check_declared({"embed.model": params.embed.model})
    return embed_pool(read_parquet("data/prepared/pool.parquet"), params.embed, Path("data/embeddings"))


STAGES = {"embed": Stage("embed", embed)}
