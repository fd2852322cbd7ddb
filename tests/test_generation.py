"""Generation and the Alpaca prompt on a tiny random Llama (weights spread wide so answers differ per prompt)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from ift_select.llm.models import model_dir
from ift_select.core.params import GenerateParams
from ift_select.core.errors import ConfigError
from ift_select.training.generation import COLUMNS, _decode, generate
from ift_select.training.prompting import alpaca_prompt, load_tokenizer, prompts_dir


@pytest.fixture(scope="module")
def spiky(tmp_path_factory) -> str:
    """The tiny Llama re-initialised with large weights: greedy answers vary token by token and per prompt."""
    from transformers import AutoConfig, AutoModelForCausalLM

    tiny = model_dir("tiny-random-llama")
    config = AutoConfig.from_pretrained(tiny)
    config.initializer_range = 0.5
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("spiky")
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    load_tokenizer(tiny).save_pretrained(out)
    return str(out)


def items(n: int) -> pd.DataFrame:
    return pd.DataFrame([{"id": f"q{i}", "test_set": "vicuna" if i % 2 else "koala",
                          "instruction": "Tell me about " + "the sea " * (1 + i * 3 % 7),
                          "input": "" if i % 3 else f"context {i}"} for i in range(n)])


def test_alpaca_prompt_variants_and_braces():
    no_input = alpaca_prompt("Name {three} colours.", "")
    assert no_input.startswith("Below is an instruction that describes a task. Write a response")
    assert no_input.endswith("### Instruction:\nName {three} colours.\n\n### Response:")
    with_input = alpaca_prompt("Summarise {input}.", "A {instruction} text.")
    assert "paired with an input" in with_input
    assert "### Instruction:\nSummarise {input}.\n\n### Input:\nA {instruction} text.\n\n### Response:" in with_input
    assert alpaca_prompt("x", "   ") == alpaca_prompt("x", None) == alpaca_prompt("x")
    assert (prompts_dir() / "alpaca_input.txt").is_file()


def test_batched_and_one_at_a_time_greedy_agree(spiky):
    """fp32: left padding, masks and positions must not change a greedy answer (bf16 kernels round differently
    for different batch shapes, so bf16 answers may diverge; see bench/generate.py)."""
    test = items(10)
    batched = generate(spiky, test, GenerateParams(batch_size=5, max_new_tokens=12, precision="fp32"), seed=0)
    single = generate(spiky, test, GenerateParams(batch_size=1, max_new_tokens=12, precision="fp32"), seed=0)
    assert list(batched.columns) == COLUMNS
    assert batched["item_id"].tolist() == test["id"].tolist()  # the items' order, not the length order
    assert batched["test_set"].tolist() == test["test_set"].tolist()
    assert batched["output"].nunique() > 5  # real, varied answers
    pd.testing.assert_frame_equal(batched, single)


def test_sampling_follows_the_seed(spiky):
    params = GenerateParams(batch_size=4, max_new_tokens=8, do_sample=True, temperature=0.95, top_p=0.7, top_k=50)
    first = generate(spiky, items(4), params, seed=1)
    assert first.equals(generate(spiky, items(4), params, seed=1))
    assert not first["output"].equals(generate(spiky, items(4), params, seed=2)["output"])


def test_finish_reason_and_token_count(spiky):
    tok = load_tokenizer(spiky)
    ids = tok("hello world", add_special_tokens=False)["input_ids"]
    eos = tok.eos_token_id
    assert _decode(tok, [*ids, eos, eos], [eos]) == ("hello world", len(ids), "eos")
    assert _decode(tok, ids, [eos]) == ("hello world", len(ids), "length")
    out = generate(spiky, items(2), GenerateParams(max_new_tokens=5), seed=0)
    assert set(out["finish"]) <= {"eos", "length"} and (out["tokens_out"] <= 5).all()


def test_vllm_engine_needs_vllm_and_cuda(spiky):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available():
        pytest.skip("vLLM and CUDA present")
    with pytest.raises(ConfigError, match="generate.engine"):
        generate(spiky, items(1), GenerateParams(engine="vllm"), seed=0)


def test_adapter_dir_without_its_base_is_a_clear_error(tmp_path: Path):
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "no/such-base-dir"}')
    with pytest.raises(ConfigError, match="base model"):
        generate(str(tmp_path), items(1), GenerateParams(), seed=0)


def test_an_over_long_prompt_is_cut_inside_its_input(spiky):
    """The instruction and "### Response:" stay; the input loses its middle; the cut is counted."""
    from ift_select.training.generation import fit_prompt

    tokenizer = load_tokenizer(spiky)
    instruction, context = "Summarise the report below in one line.", "Start of the report. " + "Filler words. " * 300 + "The end."
    ids, cut = fit_prompt(tokenizer, instruction, context, max_length=120)
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert len(ids) <= 120 and cut > 0
    assert "### Instruction:\nSummarise the report below in one line." in text
    assert text.endswith("### Response:") and "Start of the report." in text and "The end." in text and "[...]" in text
    long_instruction = "Explain " + "why the sky is blue and " * 100 + "answer briefly."
    ids, cut = fit_prompt(tokenizer, long_instruction, "", max_length=80)  # no input: the instruction's middle
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert len(ids) <= 80 and cut > 0 and "Explain" in text and text.endswith("answer briefly.\n\n### Response:")
    assert fit_prompt(tokenizer, "Short.", "", max_length=120)[1] == 0
    test = pd.DataFrame([{"id": "long", "test_set": "t", "instruction": instruction, "input": context},
                         {"id": "short", "test_set": "t", "instruction": "Say hi.", "input": ""}])
    answers = generate(spiky, test, GenerateParams(max_new_tokens=2, max_prompt_length=120, precision="fp32"), seed=0)
    assert answers["prompt_cut_tokens"].tolist()[1] == 0 and answers["prompt_cut_tokens"].tolist()[0] > 0
    assert answers["input"].tolist()[0] == context  # the frame keeps the item as it was
