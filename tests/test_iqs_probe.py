"""IQS as a probe: frozen encoder features, a ridge (MSE) head chosen by cross-validation on the training pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import pandas as pd
from typer.testing import CliRunner

import ift_select.grading.iqs as iqs
from ift_select.core.errors import ConfigError
from ift_select.grading import iqs_data, iqs_probe
from test_iqs import LABELS, PAIRS, VALID, cli


def test_choose_alpha_balances_the_not_longer_pairs():
    """Quality is in feature 0; length is in feature 1 and agrees with quality except on the 1 in 5 not-longer
    pairs. Length-balanced weights keep the head on quality; uniform weights let length win those pairs."""
    rng = np.random.default_rng(0)
    n = 400
    not_longer = rng.random(n) < 0.2
    pos = rng.normal(size=(n, 4))
    neg = pos + rng.normal(scale=0.5, size=(n, 4))
    pos[:, 0] += 0.6  # quality
    pos[:, 1] += np.where(not_longer, -0.8, 2.0)  # length
    weight = np.where(not_longer, 0.5 / not_longer.mean(), 0.5 / (1 - not_longer.mean()))
    alpha, table = iqs_probe.choose_alpha(pos, neg, weight, not_longer, balance=True, seed=0)
    assert alpha in iqs_probe.ALPHAS and len(table) == len(iqs_probe.ALPHAS)
    for row in table:
        assert abs(row["criterion"] - (row["cv_pairwise_accuracy"] + row["cv_pairwise_accuracy_not_longer"]) / 2) < 1e-3
    balanced = max(table, key=lambda r: r["criterion"])
    assert balanced["alpha"] == alpha
    _, plain = iqs_probe.choose_alpha(pos, neg, np.ones(n), not_longer, balance=False, seed=0)
    uniform = max(plain, key=lambda r: r["criterion"])
    assert uniform["criterion"] == uniform["cv_pairwise_accuracy"]
    assert balanced["cv_pairwise_accuracy_not_longer"] > uniform["cv_pairwise_accuracy_not_longer"] + 0.2
    assert iqs_probe._fit(pos, neg, weight, alpha).coef_[0] > 0


def test_choose_features_finds_the_block_that_carries_quality():
    """Eight candidate layers x two poolings, 3 columns each; quality sits in layer 12's response-mean block and,
    more weakly, in layer 15's: the search picks that block, then tries it with its neighbours."""
    rng = np.random.default_rng(1)
    n, width, layers, pooling = 300, 3, iqs_probe.candidate_layers(30), iqs_probe.SEARCH_POOLINGS
    pos = rng.normal(size=(n, len(layers) * len(pooling) * width))
    neg = pos + rng.normal(scale=1.0, size=pos.shape)
    feats = iqs_probe.Features(pos, neg, layers, pooling, width)
    pos[:, feats.columns((12,), ("mean_response",))[0]] += 1.5
    pos[:, feats.columns((15,), ("mean_response",))[0]] += 0.5
    not_longer = rng.random(n) < 0.2
    layers_, pooling_, alpha, table = iqs_probe.choose_features(feats, np.ones(n), not_longer, False, 0)
    assert "mean_response" in pooling_ and 12 in layers_ and alpha in iqs_probe.ALPHAS
    single = max(table[:-3], key=lambda r: r["criterion"])
    assert single["layers"] == [12] and "mean_response" in single["pooling"]
    assert len(table) == len(layers) * 3 + 3  # each layer under mean, mean_response, both; then 3 concatenations
    assert {tuple(r["layers"]) for r in table[-3:]} == {(9, 12), (12, 15), (9, 12, 15)}
    assert list(feats.columns((9, 12), ("mean",))) == [6, 7, 8, 12, 13, 14]


def test_probe_cli_on_a_slice_of_the_real_labels(shared_data, tmp_path):
    out = tmp_path / "probe"
    args = ["iqs", "train", "--method", "probe", "--labels", str(shared_data(LABELS)), "--valid", str(shared_data(VALID)),
            "--out", str(out), "--encoder", "all-minilm-l6-v2", "--max-rows", "48", "--max-length", "96"]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout.strip().splitlines()[-1])
    # MiniLM has 6 layers: the one candidate is the middle one, under each pooling and both
    assert trained["method"] == "probe" and trained["layers"] == [3]
    assert trained["alpha"] in iqs_probe.ALPHAS
    record = json.loads((out / "iqs.json").read_text())
    assert record["layers"] == [3] and [row["pooling"] for row in record["cv"]] == \
        [["mean"], ["mean_response"], ["mean", "mean_response"]]
    assert record["pooling"] == trained["pooling"] in [row["pooling"] for row in record["cv"]]
    # the saved model (standardisation folded into the head) reproduces the recorded validation figure
    model = iqs.load_iqs(out)
    assert model.layers == (3,)
    valid = iqs.read_labels(shared_data(VALID)).iloc[:48]
    assert iqs_data.validate(model, valid, iqs.label_pairs(valid), "auto")["valid_pairs_form_accuracy"] == \
        trained["valid_pairs_form_accuracy"]
    pairs = pd.read_csv(shared_data(PAIRS)).iloc[:8]
    pos = iqs.score_texts(model, (pairs["src"] + pairs["pos"]).tolist())
    neg = iqs.score_texts(model, (pairs["src"] + pairs["neg"]).tolist())
    assert np.isfinite(pos).all() and np.isfinite(neg).all() and not np.allclose(pos, neg)

    # stored as its head and a checked reference to the shipped encoder, not a copy of it
    assert not (out / "encoder").exists() and sum(p.stat().st_size for p in out.iterdir()) < 100_000
    assert record["format"] == "ift-select-iqs/2" and record["encoder_ref"] == iqs.encoder_reference("all-minilm-l6-v2")
    record["encoder_ref"]["hash"] = "0" * 32  # a different encoder file than the head was fitted on
    (out / "iqs.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="encoder all-minilm-l6-v2 is now [0-9a-f]+.*, the head was fitted on 0{32}"):
        iqs.load_iqs(out)


def test_poolings_read_the_response_tokens_and_the_last_token():
    import torch

    from ift_select.llm.models import model_dir

    model = iqs.build(model_dir("tiny-random-llama"), 64, layers=(1, 2), pooling=("mean", "mean_response", "last"))
    texts = ["Instruction: Say hi. Response: Hi there!", "Instruction: Add 2 and 2. Input: numbers Response: 4"]
    with torch.inference_mode():
        feats = model.features(texts)
        alone = model.features(texts[1:])
    width = model.encoder.config.hidden_size
    assert feats.shape == (2, 2 * 3 * width)
    mean, response, last = feats[:, :width], feats[:, width:2 * width], feats[:, 2 * width:3 * width]
    assert not torch.allclose(mean, response) and not torch.allclose(response, last)
    assert torch.allclose(feats[1], alone[0], atol=1e-5)  # padding changes nothing
    with pytest.raises(ConfigError, match="iqs pooling"):
        iqs.build(model_dir("tiny-random-llama"), 64, pooling=("max",))
