"""What API calls cost: the price table from params (``pricing``), token counting and estimates.

``pricing`` in params.yaml maps a model name to USD per 1M tokens (``{input: 0.15, output: 0.60}``) plus
``batch_discount`` (the Batch API's price factor, 0.5 at OpenAI). A dated snapshot ("gpt-4o-mini-2024-07-18")
takes its family's price. Models not in the table cost nothing; a paid endpoint refuses them
(``openai_compat``). What was spent and the budget: ``llm.ledger``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ift_select.core.errors import ConfigError
from ift_select.llm.base import ChatRequest

PER_MESSAGE_TOKENS = 4  # role markers per message (OpenAI's chat format uses 3-4), plus 3 to prime the reply
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


@dataclass(frozen=True)
class Price:
    input: float  # USD per 1M prompt tokens
    output: float  # USD per 1M completion tokens


class PriceTable:
    def __init__(self, prices: Mapping[str, Price] | None = None, batch_discount: float = 0.5) -> None:
        self.prices = dict(prices or {})
        self.batch_discount = batch_discount

    @classmethod
    def from_params(cls, pricing: Mapping[str, Any] | PriceTable | None, where: str = "pricing") -> PriceTable:
        """Validate params.yaml's ``pricing`` section; errors name the setting."""
        if isinstance(pricing, PriceTable):
            return pricing
        prices: dict[str, Price] = {}
        discount = 0.5
        for name, value in (pricing or {}).items():
            if name == "batch_discount":
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                    raise ConfigError(f"{where}.batch_discount: expected a number in [0, 1], got {value!r}")
                discount = float(value)
                continue
            if not isinstance(value, Mapping) or set(value) != {"input", "output"}:
                raise ConfigError(f"{where}.{name}: expected {{input: USD per 1M tokens, output: USD per 1M tokens}}")
            for side in ("input", "output"):
                v = value[side]
                if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                    raise ConfigError(f"{where}.{name}.{side}: expected a non-negative number, got {v!r}")
            prices[str(name)] = Price(float(value["input"]), float(value["output"]))
        return cls(prices, discount)

    def price(self, model: str) -> Price | None:
        if model in self.prices:
            return self.prices[model]
        base = _SNAPSHOT.sub("", model)
        return self.prices.get(base)

    def cost(self, model: str, tokens_in: int, tokens_out: int, batch: bool = False) -> float:
        """USD for one call; 0 for models not in the table."""
        price = self.price(model)
        if price is None:
            return 0.0
        usd = (tokens_in * price.input + tokens_out * price.output) / 1e6
        return usd * self.batch_discount if batch else usd


# ---- token counting -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenCounter:
    method: str  # "tiktoken:o200k_base" | "hf:<path>" | "chars/4"
    count: Callable[[str], int]


def _chars4(text: str) -> int:
    return math.ceil(len(text) / 4)


@functools.lru_cache(maxsize=8)
def token_counter(model: str, tokenizer: str | None = None) -> TokenCounter:
    """Tokens of a text for ``model``: tiktoken when it knows the model (its BPE files must be cached or
    downloadable), else the HF tokenizer ``tokenizer`` (an alias, directory or hub id; defaults to
    ``model`` when that names a local model), else the chars/4 rule. ``method`` says which one counted."""
    if tokenizer is None:
        try:
            import tiktoken

            enc = tiktoken.encoding_for_model(model)
            enc.encode("probe")
            return TokenCounter(f"tiktoken:{enc.name}", lambda t: len(enc.encode(t, disallowed_special=())))
        except Exception:  # unknown model, or BPE file unavailable offline
            pass
    try:
        from ift_select.llm.models import identify, model_dir

        if tokenizer is None and identify(model).kind == "hub":  # never wait on the network for a count
            raise LookupError(model)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir(tokenizer or model))
        return TokenCounter(f"hf:{tokenizer or model}",
                            lambda t: len(tok.encode(t, add_special_tokens=False)))
    except Exception:
        return TokenCounter("chars/4", _chars4)


def prompt_tokens(request: ChatRequest, counter: TokenCounter) -> int:
    return sum(counter.count(content) + PER_MESSAGE_TOKENS for _, content in request.messages) + 3


def estimate(requests: Sequence[ChatRequest], model: str, pricing: PriceTable | Mapping[str, Any] | None,
             counter: TokenCounter | None = None, batch: bool = False) -> dict[str, Any]:
    """Price a run before it is made: prompt tokens as counted, completion tokens at their cap."""
    table = PriceTable.from_params(pricing)
    counter = counter or token_counter(model)
    tokens_in = sum(prompt_tokens(r, counter) for r in requests)
    tokens_out = sum(r.max_tokens for r in requests)
    price = table.price(model)
    return {
        "model": model,
        "requests": len(requests),
        "tokens_in": tokens_in,
        "max_tokens_out": tokens_out,
        "usd": round(table.cost(model, tokens_in, tokens_out, batch=batch), 6),
        "batch": batch,
        "priced": price is not None,
        "price_per_1m": None if price is None else {"input": price.input, "output": price.output},
        "token_count_method": counter.method,
    }
