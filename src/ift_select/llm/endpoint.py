"""What every OpenAI-compatible mode shares (online, Batch API, the managed llama.cpp server): settings, the
API key, request bodies, reading replies (text, usage, logprobs), prompt windows and cost.

- Score tokens: requests with ``score_tokens`` ask for ``logprobs``/``top_logprobs``; ``token_probs`` sums the
  first token's probabilities over spellings ("4", " 4"). Servers that return none (``transformers serve``)
  leave it None and the grader parses the text. ``ChatRequest.logprobs > 0`` asks for that many alternatives
  per generated token and fills ``ChatReply.positions``.
- Prefill: Chat Completions cannot continue an assistant turn, so a trailing assistant message is dropped by
  default (``prefill="drop"``: the reply starts fresh, as the API-grader prompts expect) and, as the first
  token is then not the one the caller asked about, such a reply has no ``token_probs`` (its ``positions``
  describe the fresh reply). ``"send"`` sends it as-is (endpoints that continue it: llama.cpp, Anthropic-
  compatible ones); ``"continue"`` adds vLLM's ``continue_final_message``. The mode is part of ``identity()``.
  A server that echoes the prefill at the start of its reply (llama.cpp does) has it removed: the reply text
  is the continuation, as from the local backend.
  ``max_tokens=0`` (first-token probabilities only) is sent as 1 and replies with empty text.
- Window: with ``max_prompt_tokens`` a longer prompt has its cuttable spans shortened (``llm.truncate``),
  counted with the model's tokenizer as the pricing counts it; ``ChatReply.truncated`` says how many tokens.
- Paid endpoints (``paid``: auto = not on loopback or a private network) refuse models missing from
  ``pricing``; priced replies are recorded in the ledger (``llm.ledger``) wherever they ran.
- API key: read from the environment variable named by ``api_key_env`` when a client is built; never stored on
  the backend, never in ``identity()`` (the cache key) and scrubbed from every error text.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import openai

from ift_select.core.errors import ConfigError
from ift_select.llm.base import ChatReply, ChatRequest, Prefill
from ift_select.llm.ledger import Ledger, LedgerDB
from ift_select.llm.pricing import PriceTable, prompt_tokens, token_counter
from ift_select.llm.truncate import fit
from ift_select.llm.urls import endpoint_name, is_paid, public_url


class Unreadable(ValueError):
    """A 200 reply that is not a chat completion."""


def error_reply(message: str, attempts: int = 1, **extra: Any) -> ChatReply:
    return ChatReply(text="", status="error", error=message, attempts=attempts, extra=extra)


def _top(item: Any) -> list[tuple[str, float]]:
    pairs = []
    for alt in (item.get("top_logprobs") or []) if isinstance(item, dict) else []:
        try:
            pairs.append((str(alt["token"]), math.exp(float(alt["logprob"]))))
        except (TypeError, KeyError, ValueError):
            continue
    return pairs


def first_token_probs(logprobs: Any, score_tokens: Sequence[str]) -> dict[str, float] | None:
    """P(first reply token = t) for each score token, summed over spellings with surrounding spaces."""
    try:
        top = _top(logprobs["content"][0])
    except (TypeError, KeyError, IndexError):
        return None
    if not top:
        return None
    probs = dict.fromkeys(score_tokens, 0.0)
    for token, p in top:
        if token.strip() in probs:
            probs[token.strip()] += p
    return probs


def positions_of(logprobs: Any, alternatives: int) -> list[tuple[str, dict[str, float]]] | None:
    """Per generated token: its text and its ``alternatives`` most likely {token text: probability}."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content:
        return None
    out = []
    for item in content:
        alts: dict[str, float] = {}
        for token, p in sorted(_top(item), key=lambda tp: -tp[1]):
            if len(alts) < alternatives or token in alts:
                alts[token] = alts.get(token, 0.0) + p
        out.append((str(item.get("token", "")) if isinstance(item, dict) else "", alts))
    return out


def prefill_of(request: ChatRequest) -> str | None:
    return request.messages[-1][1] if request.messages and request.messages[-1][0] == "assistant" else None


class OpenAIEndpoint:
    """Settings, key, bodies, replies and cost of one OpenAI-compatible endpoint and model."""

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 60.0, max_retries: int = 6, temperature: float | None = None,
                 top_logprobs: int = 20, prefill: Prefill = "drop", pricing: Mapping[str, Any] | None = None,
                 max_cost_usd: float | None = None, ledger: Ledger | None = None, batch: bool = False,
                 paid: Literal["auto"] | bool = "auto", max_prompt_tokens: int | None = None,
                 ledger_path: str | Path | None = None) -> None:
        if prefill not in ("drop", "send", "continue"):
            raise ConfigError(f"prefill: {prefill!r} is not one of drop, send, continue")
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = base_url
        self.endpoint = endpoint_name(base_url)
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.temperature = temperature
        self.top_logprobs = top_logprobs
        self.prefill = prefill
        self.window = max_prompt_tokens
        table = PriceTable.from_params(pricing)
        self.paid = is_paid(paid, base_url)
        if self.paid and table.price(model) is None:
            raise ConfigError(
                f"pricing: no price for model {model!r}, and {self.endpoint} is a paid endpoint (openai.paid: "
                f"{paid}); add pricing.{model}: {{input: USD per 1M tokens, output: USD per 1M tokens}}, or set "
                "openai.paid: false if it costs nothing")
        self.ledger = ledger or Ledger(model, table, max_cost_usd, batch=batch, scope=f"{self.endpoint}|{model}",
                                       db=LedgerDB(ledger_path) if ledger_path else None)
        self._logprobs_ok = True
        self.api_key()  # fail early, naming the variable, when a key is needed and missing

    def identity(self) -> dict[str, Any]:
        identity = {"backend": "openai", "model": self.model, "base_url": public_url(self.base_url),
                    "temperature": self.temperature, "top_logprobs": self.top_logprobs, "prefill": self.prefill}
        if self.window is not None:  # only when set: earlier cache keys stay as they were
            identity["max_prompt_tokens"] = self.window
        return identity

    def api_key(self) -> str:
        key = os.environ.get(self.api_key_env or "")
        if key:
            return key
        if self.base_url is None:
            raise ConfigError(f"openai.api_key_env: environment variable {self.api_key_env!r} is not set "
                              f"(it holds the API key for {self.model})")
        return "not-needed"  # local servers (vLLM, transformers serve, llama.cpp) take any key

    def scrub(self, text: str, limit: int = 300) -> str:
        key = os.environ.get(self.api_key_env or "")
        if key and len(key) >= 6:  # shorter "keys" (EMPTY, x) are placeholders for local servers
            text = text.replace(key, "***")
        return text if len(text) <= limit else text[:limit] + "..."

    def client_options(self) -> dict[str, Any]:
        return {"api_key": self.api_key(), "base_url": self.base_url, "max_retries": 0,
                "timeout": openai.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s))}

    def count(self, request: ChatRequest) -> int:
        """Prompt tokens of ``request`` as the window counts them."""
        return prompt_tokens(request, token_counter(self.model))

    def limit(self, request: ChatRequest) -> int | None:
        """The most prompt tokens ``request`` may have (None: no window)."""
        return self.window

    def prepare(self, request: ChatRequest) -> tuple[ChatRequest, int]:
        """``request`` fitted to the window and the tokens cut; raises truncate.PromptTooLong."""
        limit = self.limit(request)
        return (request, 0) if limit is None else fit(request, self.count, limit)

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of /v1/chat/completions for ``request``."""
        messages = list(request.messages)
        body: dict[str, Any] = {}
        if self.dropped_prefill(request):
            messages = messages[:-1]
        elif prefill_of(request) is not None and self.prefill == "continue":
            body.update(continue_final_message=True, add_generation_prompt=False)
        body.update(model=self.model, messages=[{"role": r, "content": c} for r, c in messages],
                    max_tokens=max(1, request.max_tokens),
                    temperature=request.temperature if self.temperature is None else self.temperature)
        first = self.top_logprobs if request.score_tokens and not self.dropped_prefill(request) else 0
        top = max(first, request.logprobs)
        if top and self._logprobs_ok:
            body.update(logprobs=True, top_logprobs=top)
        return body

    def dropped_prefill(self, request: ChatRequest) -> bool:
        return self.prefill == "drop" and prefill_of(request) is not None

    def read(self, data: Any, request: ChatRequest) -> ChatReply:
        """A chat completion (parsed JSON) -> ChatReply with tokens and cost; Unreadable when it is none."""
        if not isinstance(data, dict):
            raise Unreadable("reply is not a JSON object")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise Unreadable("reply has no choices")
        message = choices[0].get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, (str, type(None))):
            raise Unreadable("reply content is not text")
        text = text or ""
        prefill = prefill_of(request)
        if prefill and not self.dropped_prefill(request) and text.startswith(prefill):
            text = text[len(prefill):]
        text = text if request.max_tokens > 0 else ""
        extra: dict[str, Any] = {"finish_reason": choices[0].get("finish_reason")}
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        tokens_in, tokens_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(tokens_in, int) or not isinstance(tokens_out, int):
            counter = token_counter(self.model)
            tokens_in, tokens_out = prompt_tokens(request, counter), counter.count(text)
            extra["usage"] = f"estimated ({counter.method})"
        logprobs = choices[0].get("logprobs")
        probs = (first_token_probs(logprobs, request.score_tokens)
                 if request.score_tokens and not self.dropped_prefill(request) else None)
        positions = positions_of(logprobs, request.logprobs) if request.logprobs > 0 else None
        return ChatReply(text=text, token_probs=probs, positions=positions, tokens_in=tokens_in,
                         tokens_out=tokens_out, cost_usd=self.ledger.cost(tokens_in, tokens_out), extra=extra)
