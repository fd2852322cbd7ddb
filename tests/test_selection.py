import numpy as np
import pandas as pd
import pytest

from ift_select.core.params import ArmSpec, Params
from ift_select.core.errors import ConfigError
from ift_select.selection.arms import resolve, select, select_alpagasus, select_random


def _pool(n: int = 50) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"id{i:03d}" for i in range(n)]
    pool = pd.DataFrame({"id": ids, "instruction": ids, "input": "", "output": ids})
    scores = pd.DataFrame({"id": ids, "score": np.linspace(0, 5, n), "status": "ok"})
    scores.loc[3, ["score", "status"]] = [np.nan, "unparsed"]
    scores["score_expected"] = scores["score"]  # the column an alpagasus arm selects on by default
    return pool, scores


def test_alpagasus_keeps_scores_at_or_above_tau_and_never_nan():
    pool, scores = _pool()
    kept = select_alpagasus(pool, scores, tau=2.5)
    assert (kept["quality"] >= 2.5).all()
    assert len(kept) == int((scores["score"] >= 2.5).sum())
    assert "id003" not in set(kept["id"])


def test_empty_selection_names_tau():
    pool, scores = _pool()
    with pytest.raises(ConfigError, match="tau"):
        select_alpagasus(pool, scores, tau=5.0 + 1e-9)


ARMS = {"alpagasus": ArmSpec(method="alpagasus"), "random": ArmSpec(method="random", match="alpagasus"),
        "full": ArmSpec(method="full")}


def select_arm(name: str, params: Params, pool, scores):
    return select(resolve(params, name), pool, scores)


def test_random_arm_matches_alpagasus_size_and_is_seed_stable():
    pool, scores = _pool()
    params = Params(tau=3.0, seed=7, arms=ARMS)
    alp, _ = select_arm("alpagasus", params, pool, scores)
    r1, info = select_arm("random", params, pool, scores)
    r2, _ = select_arm("random", params, pool, scores)
    r3, _ = select_arm("random", Params(tau=3.0, seed=8, arms=ARMS), pool, scores)
    assert len(r1) == len(alp) == info["selected"]
    assert list(r1["id"]) == list(r2["id"])
    assert list(r1["id"]) != list(r3["id"])
    assert len(set(r1["id"])) == len(r1)


def test_random_size_outside_pool_is_an_error():
    pool, _ = _pool(5)
    with pytest.raises(ConfigError):
        select_random(pool, 6, seed=0)


def test_full_arm_is_every_row_and_unknown_arm_fails():
    pool, scores = _pool()
    full, info = select_arm("full", Params(arms=ARMS), pool, None)
    assert len(full) == len(pool) and info["fraction"] == 1.0
    with pytest.raises(ConfigError, match="arm"):
        select_arm("mystery", Params(arms=ARMS), pool, scores)


def test_missing_scores_are_an_error():
    pool, scores = _pool()
    with pytest.raises(Exception, match="no score"):
        select_alpagasus(pool, scores.iloc[:10], tau=1.0)
