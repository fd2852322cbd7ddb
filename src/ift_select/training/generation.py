"""Answer test items with a fine-tuned model: batched, left-padded, Alpaca prompt, greedy or sampled.

Prompts are sorted by length so each batch carries little padding, and answers are returned in the items'
order. ``model_dir`` may be a full HF directory (a merged model) or a peft adapter directory; an adapter is
loaded onto the base its ``adapter_config.json`` names and merged for speed. ``engine: vllm`` uses vLLM
when it is installed and a GPU is present.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ift_select.core.params import GenerateParams
from ift_select.core.devices import autocast, device
from ift_select.core.errors import ConfigError, DataError
from ift_select.core.paths import repo_root
from ift_select.training.prompting import encode_prompt, load_tokenizer, pad_sequences

COLUMNS = ["test_set", "item_id", "instruction", "input", "output", "tokens_out", "finish", "prompt_cut_tokens"]
ELLIPSIS = " [...] "


def adapter_base(model_dir: str | Path) -> str | None:
    """The base model an adapter directory was trained on (None for a full model directory)."""
    config = Path(model_dir) / "adapter_config.json"
    if not config.is_file():
        return None
    base = json.loads(config.read_text())["base_model_name_or_path"]
    for candidate in (Path(base), repo_root() / base):
        if (candidate / "config.json").is_file():
            return str(candidate)
    raise ConfigError(f"{config}: base model {base!r} not found (the adapter needs the model it was trained on)")


def load_model(model_dir: str, dtype: torch.dtype = torch.float32) -> Any:
    """A causal LM from a full model directory, or base + adapter merged from an adapter directory."""
    from transformers import AutoModelForCausalLM

    base = adapter_base(model_dir)
    if base is None:
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    from peft import PeftModel

    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    return PeftModel.from_pretrained(model, model_dir).merge_and_unload()


def _stop_ids(tokenizer: Any, model: Any) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    return sorted(i for i in ids if i is not None)


def _decode(tokenizer: Any, new: list[int], stops: list[int]) -> tuple[str, int, str]:
    """(text, tokens before the stop token, finish) for one generated continuation."""
    end = next((k for k, t in enumerate(new) if t in stops), None)
    kept = new if end is None else new[:end]
    return tokenizer.decode(kept, skip_special_tokens=True).strip(), len(kept), "length" if end is None else "eos"


def _middle_cut(tokenizer: Any, text: str, drop: int) -> str:
    """``text`` without ``drop`` tokens from its middle (its start and end kept, joined by ``ELLIPSIS``)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    keep = max(0, len(ids) - drop)
    head, tail = ids[: (keep + 1) // 2], ids[len(ids) - keep // 2:] if keep // 2 else []
    return tokenizer.decode(head).rstrip() + ELLIPSIS + tokenizer.decode(tail).lstrip()


def fit_prompt(tokenizer: Any, instruction: str, input: str, max_length: int) -> tuple[list[int], int]:  # noqa: A002
    """Prompt ids within ``max_length`` and how many tokens were cut: from the middle of the input field
    first, then of the instruction; the template ("### Response:") always stays. A template longer than
    ``max_length`` on its own keeps its end."""
    ids = encode_prompt(tokenizer, instruction, input)
    full = len(ids)
    for field in ("input", "instruction"):
        while len(ids) > max_length:
            text = input if field == "input" else instruction
            n = len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text.strip() else 0
            if n == 0:
                break
            over = len(ids) - max_length + len(tokenizer(ELLIPSIS, add_special_tokens=False)["input_ids"])
            shorter = _middle_cut(tokenizer, text, over) if over < n else ""
            trial = (instruction, shorter) if field == "input" else (shorter, input)
            shorter_ids = encode_prompt(tokenizer, *trial)
            if len(shorter_ids) >= len(ids):  # re-tokenising gained nothing: drop the field's text
                trial = (instruction, "") if field == "input" else ("", input)
                shorter_ids = encode_prompt(tokenizer, *trial)
            (instruction, input), ids = trial, shorter_ids
    return ids[-max_length:], full - min(len(ids), max_length)


def _prompts(tokenizer: Any, items: pd.DataFrame, max_length: int) -> tuple[list[str], list[list[int]], list[int]]:
    """(inputs, prompt ids, tokens cut per prompt); see :func:`fit_prompt`."""
    missing = [c for c in ("id", "test_set", "instruction") if c not in items.columns]
    if missing:
        raise DataError(f"generation items: missing column(s) {', '.join(missing)}")
    inputs = items["input"].fillna("").astype(str).tolist() if "input" in items.columns else [""] * len(items)
    fitted = [fit_prompt(tokenizer, ins, inp, max_length) for ins, inp in zip(items["instruction"].astype(str), inputs)]
    return inputs, [ids for ids, _ in fitted], [cut for _, cut in fitted]


def generate(model_dir: str, items: pd.DataFrame, params: GenerateParams, seed: int) -> pd.DataFrame:
    """One answer per item (columns ``COLUMNS``), in the items' order."""
    if params.engine == "vllm":
        return _generate_vllm(model_dir, items, params, seed)
    from tqdm import tqdm
    from transformers import GenerationConfig

    model = load_model(model_dir).to(device()).eval()
    tokenizer = load_tokenizer(model_dir, padding_side="left")
    inputs, prompts, cut = _prompts(tokenizer, items, params.max_prompt_length)
    stops = _stop_ids(tokenizer, model)
    sampling = {"temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k} if params.do_sample else {}
    config = GenerationConfig(max_new_tokens=params.max_new_tokens, do_sample=params.do_sample,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=stops, **sampling)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    results: list[tuple[str, int, str]] = [("", 0, "length")] * len(prompts)
    torch.manual_seed(seed)
    for start in tqdm(range(0, len(order), params.batch_size), desc="generate", unit="batch", file=sys.stderr):
        rows = order[start:start + params.batch_size]
        input_ids, mask = pad_sequences([prompts[i] for i in rows], tokenizer.pad_token_id, side="left")
        with torch.no_grad(), autocast(params.precision):
            out = model.generate(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                                 generation_config=config)
        for r, i in enumerate(rows):
            results[i] = _decode(tokenizer, out[r, input_ids.shape[1]:].tolist(), stops)
    return _frame(items, inputs, results, cut)


def _frame(items: pd.DataFrame, inputs: list[str], results: list[tuple[str, int, str]], cut: list[int]) -> pd.DataFrame:
    return pd.DataFrame({
        "test_set": items["test_set"].astype(str).tolist(), "item_id": items["id"].astype(str).tolist(),
        "instruction": items["instruction"].astype(str).tolist(), "input": inputs,
        "output": [r[0] for r in results], "tokens_out": [r[1] for r in results],
        "finish": [r[2] for r in results], "prompt_cut_tokens": cut}, columns=COLUMNS)


def _generate_vllm(model_dir: str, items: pd.DataFrame, params: GenerateParams, seed: int) -> pd.DataFrame:
    if importlib.util.find_spec("vllm") is None or not torch.cuda.is_available():
        raise ConfigError("generate.engine: vllm needs the vllm package and a CUDA GPU; set generate.engine: hf")
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    base = adapter_base(model_dir)
    lora: dict[str, Any] = {}
    if base is not None:
        rank = json.loads((Path(model_dir) / "adapter_config.json").read_text()).get("r", 16)
        lora = {"enable_lora": True, "max_lora_rank": max(16, int(rank))}
    inputs, ids, cut = _prompts(load_tokenizer(model_dir), items, params.max_prompt_length)
    llm = LLM(model=base or model_dir, tokenizer=model_dir, seed=seed, **lora)
    prompts = [{"prompt_token_ids": p} for p in ids]
    sampling = (SamplingParams(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                               max_tokens=params.max_new_tokens, seed=seed)
                if params.do_sample else SamplingParams(temperature=0.0, max_tokens=params.max_new_tokens))
    request = LoRARequest("adapter", 1, str(model_dir)) if base is not None else None
    outs = llm.generate(prompts, sampling, lora_request=request)
    results = [(o.outputs[0].text.strip(), len(o.outputs[0].token_ids) - (o.outputs[0].finish_reason == "stop"),
                "eos" if o.outputs[0].finish_reason == "stop" else "length") for o in outs]
    return _frame(items, inputs, results, cut)
