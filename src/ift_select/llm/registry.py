"""Backends registered by name (alpaca_eval style): ``make_backend("openai", **settings)``.

``local``: an in-process transformers model; ``openai``: any OpenAI-compatible endpoint (OpenAI, Azure, vLLM,
llama.cpp's server, ``transformers serve``), online or through the Batch API; ``llamacpp``: a GGUF model
served by a llama.cpp server the backend starts on loopback, spoken to as ``openai``. ``register`` adds another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from ift_select.core.errors import ConfigError
from ift_select.llm.base import Backend, Prefill
from ift_select.llm.ledger import Ledger

BackendFactory = Callable[..., Backend]


def _local(model: str, batch_size: int = 8, precision: str = "auto", max_length: int = 1024, **_: Any) -> Backend:
    from ift_select.llm.local_hf import LocalBackend

    return LocalBackend(model, batch_size=batch_size, precision=precision, max_length=max_length)


def _openai(model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
            concurrency: int = 16, timeout_s: float = 60.0, max_retries: int = 6,
            temperature: float | None = None, max_cost_usd: float | None = None, batch_api: bool = False,
            pricing: Mapping[str, Any] | None = None, ledger: Ledger | None = None, top_logprobs: int = 20,
            prefill: Prefill = "drop", batch_state: str | None = None, poll_s: float = 30.0,
            max_wait_s: float | None = None, paid: Literal["auto"] | bool = "auto",
            max_prompt_tokens: int | None = None, ledger_path: str | Path | None = None,
            **_local_only: Any) -> Backend:
    """``make_backend("openai", **settings)``: params' ``openai`` section plus ``model`` and ``pricing``;
    ``ledger_path``: the cache database that holds the cost ledger (None: this run's spend only).
    Local-only settings (batch_size, precision, max_length) are accepted and ignored."""
    common = dict(base_url=base_url, api_key_env=api_key_env, timeout_s=timeout_s, max_retries=max_retries,
                  temperature=temperature, top_logprobs=top_logprobs, prefill=prefill, pricing=pricing,
                  max_cost_usd=max_cost_usd, ledger=ledger, paid=paid, max_prompt_tokens=max_prompt_tokens,
                  ledger_path=ledger_path)
    if batch_api:
        from ift_select.llm.batch import BatchBackend

        return BatchBackend(model, state_path=batch_state, poll_s=poll_s, max_wait_s=max_wait_s, **common)
    from ift_select.llm.openai_compat import OpenAIBackend

    return OpenAIBackend(model, concurrency=concurrency, **common)


def _llamacpp(model: str, **settings: Any) -> Backend:
    """``make_backend("llamacpp", model=<GGUF spec>, **params' llamacpp section)``."""
    from ift_select.llm.llamacpp import LlamaCppBackend

    return LlamaCppBackend(model, **settings)


_REGISTRY: dict[str, BackendFactory] = {"local": _local, "openai": _openai, "llamacpp": _llamacpp}


def register(name: str) -> Callable[[BackendFactory], BackendFactory]:
    def deco(factory: BackendFactory) -> BackendFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


def make_backend(name: str, **settings: Any) -> Backend:
    if name not in _REGISTRY:
        raise ConfigError(f"backend: unknown backend {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name](**settings)
