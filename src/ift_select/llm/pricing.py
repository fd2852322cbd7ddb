"""What API calls cost: the price table from params (``pricing``), token counting, estimates and the budget.

``pricing`` in params.yaml maps a model name to USD per 1M tokens (``{input: 0.15, output: 0.60}``) plus
``batch_discount`` (the Batch API's price factor, 0.5 at OpenAI). A dated snapshot ("gpt-4o-mini-2024-07-18")
takes its family's price. Models not in the table (local models, your own vLLM) cost nothing.

Budget (``max_cost_usd``): before a request is sent the :class:`Ledger` reserves its worst case (estimated
prompt tokens with a margin + ``max_tokens``); after the reply it keeps the real cost (usage from the server).
A request whose reservation would take spent + reserved over the budget is not sent, and nor is any later one:
the run stops cleanly with everything finished saved, and ``Ledger.stopped`` says why.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ift_select.core.errors import BudgetExceeded, ConfigError
from ift_select.llm.base import ChatReply, ChatRequest

PER_MESSAGE_TOKENS = 4  # role markers per message (OpenAI's chat format uses 3-4), plus 3 to prime the reply
PROMPT_MARGIN = 1.10  # worst-case reservations add 10% to estimated prompt tokens
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


# ---- budget ---------------------------------------------------------------------------------------------


class Ledger:
    """Tokens and USD of every call of one backend, and the ``max_cost_usd`` budget (None: no cap)."""

    def __init__(self, model: str, pricing: PriceTable | Mapping[str, Any] | None = None,
                 max_cost_usd: float | None = None, counter: TokenCounter | None = None,
                 batch: bool = False) -> None:
        self.model = model
        self.table = PriceTable.from_params(pricing)
        self.max_cost_usd = max_cost_usd
        self.batch = batch
        if max_cost_usd is not None and self.table.price(model) is None:
            raise ConfigError(f"pricing: no price for model {model!r}, so max_cost_usd = {max_cost_usd} cannot "
                              "be enforced; add it to pricing in params.yaml")
        # counted before the run starts (a tokenizer may take a moment to load), only when there is a budget
        self._counter = counter or (token_counter(model) if max_cost_usd is not None else None)
        self._lock = threading.Lock()
        self.calls = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.spent = 0.0
        self.reserved = 0.0
        self.refused = 0
        self.stopped: BudgetExceeded | None = None

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return self.table.cost(self.model, tokens_in, tokens_out, batch=self.batch)

    def worst_case(self, requests: Sequence[ChatRequest]) -> float:
        counter = self._counter or token_counter(self.model)
        tokens_in = sum(math.ceil(prompt_tokens(r, counter) * PROMPT_MARGIN) for r in requests)
        return self.cost(tokens_in, sum(r.max_tokens for r in requests))

    def reserve(self, requests: Sequence[ChatRequest]) -> float | None:
        """Reserve the worst case of sending ``requests``; None (and ``stopped`` set) when the budget refuses.
        Once refused, every later reservation is refused too, so a run stops instead of trickling on."""
        if self.max_cost_usd is None:
            return 0.0
        need = self.worst_case(requests)
        with self._lock:
            if self.stopped is None and self.spent + self.reserved + need > self.max_cost_usd:
                self.stopped = BudgetExceeded(
                    f"max_cost_usd = {self.max_cost_usd}: spent ${self.spent:.6g}, in flight ${self.reserved:.6g}; "
                    f"the next request could cost up to ${need:.6g}, so it and the rest were not sent "
                    "(raise max_cost_usd and rerun: finished replies are cached)")
            if self.stopped is not None:
                self.refused += len(requests)
                return None
            self.reserved += need
            return need

    def settle(self, reserved: float, replies: Sequence[ChatReply]) -> None:
        """Replace a reservation by what the replies cost (their ``cost_usd``, already set by the backend)."""
        with self._lock:
            self.reserved -= reserved
            for reply in replies:
                self.calls += 1
                self.tokens_in += reply.tokens_in
                self.tokens_out += reply.tokens_out
                self.spent += reply.cost_usd

    def summary(self) -> dict[str, Any]:
        return {"calls": self.calls, "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "cost_usd": round(self.spent, 6), "max_cost_usd": self.max_cost_usd, "refused": self.refused,
                "budget_exceeded": None if self.stopped is None else str(self.stopped)}
