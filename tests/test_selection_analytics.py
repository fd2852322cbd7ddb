"""Selection analytics: keyword groups (AlpaGasus' coding check), kept shares per group, cluster coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ift_select.selection import analytics as sa
from ift_select.selection.car import pool_clusters, select_car
from ift_select.core.params import CarParams


@pytest.mark.parametrize("text, group", [
    ("Write a Python function that reverses a list.", "coding"),  # coding wins over writing
    ("Fix the bug in this SQL query", "coding"),
    ("What is 67 - 37?", "math"),
    ("Calculate the area of a circle of radius 3.", "math"),
    ("Write a short poem about autumn.", "writing"),
    ("Summarize the paragraph below.", "writing"),
    ("Classify the sentiment of this review.", "classification"),
    ("Name three fruits that are red.", "lists and ideas"),
    ("Explain photosynthesis to a child.", "explain"),
    ("Hello there.", "other"),
])
def test_keyword_group(text, group):
    assert sa.keyword_group(text) == group


def test_balance_counts_kept_rows_per_group_and_overall():
    pool = pd.DataFrame({"id": [f"r{i}" for i in range(6)], "input": "",
                         "instruction": ["Write Python code", "Debug this function", "What is 2 + 2?",
                                         "Compute 3 * 4", "Write a poem", "Hello"]})
    groups = sa.keyword_groups(pool)
    assert groups.to_dict() == {"r0": "coding", "r1": "coding", "r2": "math", "r3": "math", "r4": "writing",
                                "r5": "other"}
    table = sa.balance(groups, {"strict": {"r2", "r3", "r4"}, "all": set(pool["id"])}, sa.GROUP_ORDER)
    rows = table.set_index("group")
    assert list(rows.index) == ["coding", "math", "writing", "other", "all"]  # empty groups are left out
    assert rows.loc["coding", "strict"] == 0 and rows.loc["coding", "strict share"] == 0.0
    assert rows.loc["math", "strict share"] == 1.0
    assert rows.loc["all", "pool"] == 6 and rows.loc["all", "strict"] == 3 and rows.loc["all", "strict share"] == 0.5
    assert (rows["all share"] == 1.0).all()


def test_coverage_matches_the_car_arm_and_counts_clusters():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(6, 16)) * 10
    x = np.concatenate([c + rng.normal(size=(20, 16)) for c in centers]).astype(np.float32)
    ids = [f"r{i:03d}" for i in range(len(x))]
    pool = pd.DataFrame({"id": ids, "instruction": "q", "input": "", "output": "a"})
    params = CarParams(k=6)
    labels, info = pool_clusters(ids, x, ids, params, seed=1)
    assert info["k"] == 6 and len(set(labels)) == 6
    labels = pd.Series(labels, index=ids)
    quality = pd.Series(rng.uniform(0, 5, len(ids)), index=ids)
    car, metrics = select_car(pool, quality, x, ids, n1=3, n2=1, params=params, seed=1)
    one_cluster = set(labels[labels == labels.iloc[0]].index)
    covered = sa.coverage(labels, {"car": set(car["id"]), "full": set(ids), "one": one_cluster})
    assert covered == {"car": metrics["clusters_covered"], "full": 6, "one": 1}
