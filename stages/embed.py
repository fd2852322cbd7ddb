"""Stage embed: sentence embeddings of every pool row (CaR's diversity step).

    python stages/embed.py        (dvc repro embed)
Writes data/embeddings/pool.npy + ids.json and metrics/embed.json.
"""

from pathlib import Path

from ift_select import stage
from ift_select.config import Params
from ift_select.embedding import embed_pool
from ift_select.io import read_parquet


def main(params: Params) -> dict:
    return embed_pool(read_parquet("data/prepared/pool.parquet"), params.embed, Path("data/embeddings"))


if __name__ == "__main__":
    stage.run("embed", main, stage_params=lambda p: {"embed": p.embed.__dict__})
