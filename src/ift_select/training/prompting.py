"""The Alpaca prompt (templates as files under prompts/) and the tokenisation shared by training and generation.

Training and generation must see the same prompt tokens, so both go through :func:`encode_prompt`:
the prompt is tokenised on its own (with the tokenizer's special tokens, e.g. a BOS), the response on its own
(no special tokens) followed by EOS. Generation continues from exactly the prompt ids training used.

Templates: ``prompts/alpaca_input.txt`` (rows with an input) and ``prompts/alpaca_no_input.txt`` (rows
without), the Stanford Alpaca wording. Placeholders ``{instruction}`` and ``{input}``; the file's final
newline is not part of the template.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Any

import torch

from ift_select.core.errors import ConfigError
from ift_select.core.paths import repo_root

WITH_INPUT = "alpaca_input.txt"
NO_INPUT = "alpaca_no_input.txt"
_PLACEHOLDER = re.compile(r"\{(instruction|input)\}")


def prompts_dir() -> Path:
    """``prompts/`` relative to the working directory, else at the repository root, else beside the sources."""
    for candidate in (Path("prompts"), repo_root() / "prompts", Path(__file__).resolve().parents[3] / "prompts"):
        if (candidate / WITH_INPUT).is_file() and (candidate / NO_INPUT).is_file():
            return candidate
    raise ConfigError(f"prompts/{WITH_INPUT} and prompts/{NO_INPUT} not found (run from the repository root)")


@functools.lru_cache(maxsize=4)
def _templates(directory: Path) -> tuple[str, str]:
    out = []
    for name in (WITH_INPUT, NO_INPUT):
        text = (directory / name).read_text(encoding="utf-8")
        text = text[:-1] if text.endswith("\n") else text
        if "{instruction}" not in text:
            raise ConfigError(f"{directory / name}: the Alpaca template needs an {{instruction}} placeholder")
        out.append(text)
    return out[0], out[1]


def templates() -> tuple[str, str]:
    """(with-input template, no-input template)."""
    return _templates(prompts_dir().resolve())


def template_hash() -> str:
    """Short hash of both templates, for lineage records."""
    return hashlib.sha256("\0".join(templates()).encode("utf-8")).hexdigest()[:12]


def alpaca_prompt(instruction: str, input: str | None = None) -> str:  # noqa: A002 - the data field's name
    """The Alpaca prompt for one row; the no-input variant when ``input`` is empty or missing."""
    with_input, no_input = templates()
    fields = {"instruction": instruction, "input": input if isinstance(input, str) else ""}
    template = with_input if fields["input"].strip() else no_input
    return _PLACEHOLDER.sub(lambda m: fields[m.group(1)], template)  # one pass: braces in the data stay as they are


def load_tokenizer(path: str, padding_side: str = "right") -> Any:
    """A tokenizer with a pad token (EOS when the model has none) and the requested padding side."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"{path}: the tokenizer has no EOS token; training appends EOS to every response")
    tokenizer.padding_side = padding_side
    return tokenizer


def encode_prompt(tokenizer: Any, instruction: str, input: str | None = None) -> list[int]:  # noqa: A002
    return list(tokenizer(alpaca_prompt(instruction, input), add_special_tokens=True)["input_ids"])


def encode_example(tokenizer: Any, instruction: str, input: str | None, output: str,
                   max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one training row: labels are -100 on the prompt, the response ids then EOS
    elsewhere; both truncated at ``max_length`` (a truncated response loses its EOS, as in Alpaca)."""
    prompt = encode_prompt(tokenizer, instruction, input)
    response = list(tokenizer(output, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
    ids = (prompt + response)[:max_length]
    labels = ([-100] * len(prompt) + response)[:max_length]
    return ids, labels


def pad_sequences(seqs: list[list[int]], pad_value: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """(padded tensor, attention mask) for token-id lists; ``side`` is where the padding goes."""
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, seq in enumerate(seqs):
        span = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        out[r, span] = torch.tensor(seq, dtype=torch.long)
        mask[r, span] = 1
    return out, mask
