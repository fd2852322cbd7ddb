"""Training on the tiny random Llama: masking, loss, LoRA, resume after SIGKILL, the accelerate launch path."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from ift_select.training import launch
from ift_select.llm.models import model_dir
from ift_select.core.typed import build
from ift_select.core.params import GenerateParams, LoraParams, TrainParams
from ift_select.core.errors import ConfigError
from ift_select.core.io import write_parquet
from ift_select.training.generation import generate
from ift_select.training.prompting import encode_example, encode_prompt, load_tokenizer
from ift_select.training.batching import IGNORE, collate, plan_batches, token_loss
from ift_select.training.loop import train

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def tiny() -> str:
    return model_dir("tiny-random-llama")


def rows(n: int) -> pd.DataFrame:
    return pd.DataFrame([{"id": f"r{i}", "instruction": f"Add {i} and {i + 3}" + " please" * (i % 5),
                          "input": "" if i % 3 else f"numbers: {i}, {i + 3}", "output": f"The sum is {2 * i + 3}."}
                         for i in range(n)])


def small(**kw) -> TrainParams:
    base = {"epochs": 1, "lr": 1e-3, "batch_size": 4, "warmup_ratio": 0.0, "save_dtype": "float32",
            "checkpoint_steps": 0, "max_length": 64}
    return dataclasses.replace(build(TrainParams, base, "train"), **kw)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_labels_mask_prompt_and_padding(tiny):
    tok = load_tokenizer(tiny)
    prompt = encode_prompt(tok, "Name a colour.", "")
    ids, labels = encode_example(tok, "Name a colour.", "", "Blue.", max_length=256)
    assert ids[: len(prompt)] == prompt and labels[: len(prompt)] == [IGNORE] * len(prompt)
    assert labels[len(prompt):] == ids[len(prompt):] and ids[-1] == tok.eos_token_id  # response + EOS trained
    ids2, labels2 = encode_example(tok, "A much longer instruction " * 3, "with input", "Red.", max_length=256)
    batch = collate([0, 1], [ids, ids2], [labels, labels2], tok.pad_token_id)
    pad = batch["attention_mask"] == 0
    assert pad.any() and (batch["labels"][pad] == IGNORE).all()
    short_ids, short_labels = encode_example(tok, "Name a colour.", "", "Blue " * 50, max_length=20)
    assert len(short_ids) == len(short_labels) == 20


def test_loss_is_response_only(tiny):
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    ex = [encode_example(tok, f"Question {i}?" * (i + 1), "", f"Answer {i}.", 64) for i in range(3)]
    batch = collate([0, 1, 2], [e[0] for e in ex], [e[1] for e in ex], tok.pad_token_id)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.detach()
    logits.requires_grad_(True)
    loss, count = token_loss(logits, batch["labels"])

    by_hand, n = torch.zeros(()), 0  # -log p(label_{t+1} | ..t) over response positions only
    for r, (ids, labels) in enumerate(ex):
        for t in range(len(ids) - 1):
            if labels[t + 1] != IGNORE:
                by_hand -= torch.log_softmax(logits[r, t].detach(), -1)[labels[t + 1]]
                n += 1
    assert count == n == sum(len(tok(f"Answer {i}.")["input_ids"]) + 1 for i in range(3))
    torch.testing.assert_close(loss.detach(), by_hand, rtol=1e-5, atol=1e-4)

    loss.backward()  # predictions at prompt and padding positions do not reach the loss at all
    prompt_or_pad = torch.zeros_like(batch["labels"], dtype=torch.bool)
    prompt_or_pad[:, :-1] = batch["labels"][:, 1:] == IGNORE
    assert logits.grad[prompt_or_pad].abs().max() == 0 and logits.grad[~prompt_or_pad].abs().max() > 0
    changed = logits.detach().clone()
    changed[prompt_or_pad] = torch.randn_like(changed[prompt_or_pad]) * 10
    torch.testing.assert_close(token_loss(changed, batch["labels"])[0], loss.detach())
    trained_on_prompt = batch["input_ids"].clone()  # sanity: with prompt labels the loss would differ
    trained_on_prompt[batch["attention_mask"] == 0] = IGNORE
    assert token_loss(logits.detach(), trained_on_prompt)[0] > loss.detach()


def test_length_grouped_batches_carry_little_padding():
    lengths = [10 + (i * 37) % 200 for i in range(2000)]
    grouped, naive = plan_batches(lengths, 8, 0, True), plan_batches(lengths, 8, 0, False)
    assert sorted(i for b in grouped for i in b) == list(range(2000))
    pad = lambda bs: 1 - sum(lengths[i] for b in bs for i in b) / sum(len(b) * max(lengths[i] for i in b) for b in bs)
    assert pad(grouped) < 0.06 < 0.3 < pad(naive)
    assert plan_batches(lengths, 8, 0, True) == grouped  # deterministic in the seed


def test_loss_decreases_over_a_fixed_batch(tiny, tmp_path):
    params = small(epochs=8, batch_size=8, lr=1e-2, scheduler="constant")  # one batch of 8 rows, 8 times
    metrics = train(rows(8), tiny, tmp_path / "m", params, seed=0)
    assert metrics["steps"] == 8 and metrics["effective_batch"] == 8 and metrics["devices"] == 1
    assert metrics["losses"][-1] < 0.7 * metrics["losses"][0]
    assert (tmp_path / "m" / "config.json").exists() and (tmp_path / "m" / "tokenizer.json").exists()
    assert load_tokenizer(str(tmp_path / "m")).pad_token is not None
    assert not (tmp_path / ".m.ckpt").exists()


def test_lora_adapter_and_merged_outputs_train_and_generate(tiny, tmp_path):
    items = pd.DataFrame([{"id": "a", "test_set": "t", "instruction": "Add 2 and 5", "input": ""}])
    gen = GenerateParams(batch_size=2, max_new_tokens=4)
    base = weights(Path(tiny))
    for merge in (False, True):
        params = small(epochs=3, lr=5e-3, lora=LoraParams(enabled=True, r=4, alpha=8, merge=merge))
        out = tmp_path / f"lora_{merge}"
        metrics = train(rows(12), tiny, out, params, seed=0)
        assert metrics["losses"][-1] < metrics["losses"][0]
        if merge:
            assert not (out / "adapter_config.json").exists()
            merged = weights(out)
            q = "model.layers.0.self_attn.q_proj.weight"
            assert not torch.equal(merged[q], base[q])  # the adapter was merged in
            assert torch.equal(merged["model.layers.0.mlp.up_proj.weight"], base["model.layers.0.mlp.up_proj.weight"])
        else:
            config = json.loads((out / "adapter_config.json").read_text())
            assert config["base_model_name_or_path"] == tiny and (out / "adapter_model.safetensors").exists()
        answers = generate(str(out), items, gen, seed=0)
        assert answers.loc[0, "item_id"] == "a" and answers.loc[0, "tokens_out"] <= 4


def test_qlora_needs_cuda_and_bitsandbytes(tiny, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ConfigError, match="train.lora.qlora"):
        train(rows(4), tiny, tmp_path / "q", small(lora=LoraParams(enabled=True, qlora=True)), seed=0)


CHILD = """
import json, sys, time
from pathlib import Path
import pandas as pd
from ift_select.core.typed import build
from ift_select.core.params import TrainParams
from ift_select.training.loop import train
selection, base, out, stop_at, params = sys.argv[1:6]
def hook(step):
    if step == int(stop_at):
        print(f"REACHED {step}", flush=True)
        time.sleep(600)
metrics = train(pd.read_parquet(selection), base, Path(out), build(TrainParams, json.loads(params), "train"), 3,
                on_step=hook)
print(json.dumps(metrics), flush=True)
"""


@pytest.mark.timeout(300)
def test_killed_run_resumes_from_its_checkpoint(tiny, tmp_path):
    data = tmp_path / "sel.parquet"
    rows(24).to_parquet(data)
    cfg = {"epochs": 1, "lr": 1e-3, "batch_size": 4, "save_dtype": "float32", "checkpoint_steps": 2,
           "max_length": 128, "lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.1}}  # dropout: RNG restored
    reference = train(pd.read_parquet(data), tiny, tmp_path / "ref", build(TrainParams, cfg, "train"), 3)
    assert reference["steps"] == 6 and reference["rows"] == 24

    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / "out"
    args = [sys.executable, str(script), str(data), tiny, str(out)]
    child = subprocess.Popen([*args, "3", json.dumps(cfg)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, env=ENV)
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("REACHED 3"):
                break
        child.kill()  # SIGKILL after step 3: the last checkpoint is step 2
    finally:
        child.kill()
        child.wait(timeout=60)
    assert child.returncode == -9 and not out.exists()
    latest = json.loads((tmp_path / ".out.ckpt" / "latest.json").read_text())
    assert latest["step"] == 2

    done = subprocess.run([*args, "0", json.dumps(cfg)], capture_output=True, text=True, env=ENV, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads(done.stdout.strip().splitlines()[-1])
    assert resumed["resumed_from_step"] == 2 and resumed["steps"] == 6
    assert resumed["losses"][:2] == pytest.approx(latest["losses"], abs=1e-5)
    assert resumed["losses"] == pytest.approx(reference["losses"], rel=1e-4)
    a, b = weights(tmp_path / "ref"), weights(out)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert not (tmp_path / ".out.ckpt").exists()


def test_build_command_for_each_launcher(tmp_path):
    entry = ["-m", "ift_select.core.stage", "train", "full"]
    assert launch.build_command("train", "full", small()) == [sys.executable, *entry]
    cmd = launch.build_command("train", "full", small(launcher="accelerate"))
    assert cmd[1:4] == ["-m", "accelerate.commands.launch", "--config_file"] and cmd[-4:] == entry
    assert Path(cmd[4]) == REPO / "configs/accelerate/cpu.yaml"
    with pytest.raises(ConfigError, match="train.accelerate_config"):
        launch.build_command("train", "full", small(launcher="accelerate",
                                                   accelerate_config=str(tmp_path / "none.yaml")))


@pytest.mark.timeout(400)
def test_train_stage_runs_under_accelerate_launch_with_the_cpu_config(tiny, tmp_path):
    """stages/train.py with train.launcher: accelerate re-runs itself under `accelerate launch` (cpu.yaml)."""
    for sub in ("data/prepared", "data/selected", "models/base"):
        (tmp_path / sub).mkdir(parents=True)
    rows(8).to_parquet(tmp_path / "data/prepared/pool.parquet")
    write_parquet(tmp_path / "data/selected/full.parquet", rows(8),
                  record={"arm": "full", "spec": {"method": "full"}, "rule": "every row"})
    for item in Path(tiny).iterdir():
        shutil.copy2(item, tmp_path / "models/base" / item.name)
    params = {"train": {"seed": 1, "epochs": 1, "batch_size": 4, "max_length": 64, "launcher": "accelerate",
                        "accelerate_config": str(REPO / "configs/accelerate/cpu.yaml")},
              "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in ENV.items() if k not in (launch.MARKER, "ACCELERATE_MIXED_PRECISION", "LOCAL_RANK")}
    done = subprocess.run([sys.executable, str(REPO / "stages/train.py"), "full"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=380)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (f"accelerate.commands.launch --config_file {REPO / 'configs/accelerate/cpu.yaml'} "
            "-m ift_select.core.stage train full") in done.stderr
    metrics = json.loads((tmp_path / "metrics/train_full.json").read_text())
    assert metrics["accelerate_launch"] is True and metrics["devices"] == 1 and metrics["steps"] == 2
    assert (tmp_path / "models/full/model.safetensors").exists() and (tmp_path / "models/full/lineage.json").exists()
