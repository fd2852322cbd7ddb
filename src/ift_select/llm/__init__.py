"""LLM backends for graders and judges, registered by name; one request cache for all of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ift_select.core.errors import ConfigError
from ift_select.llm.base import Backend, ChatReply, ChatRequest
from ift_select.llm.cache import RequestCache
from ift_select.llm.runner import RunStats, run_requests

BackendFactory = Callable[..., Backend]
_REGISTRY: dict[str, BackendFactory] = {}


def register(name: str) -> Callable[[BackendFactory], BackendFactory]:
    def deco(factory: BackendFactory) -> BackendFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


@register("local")
def _local(model: str, batch_size: int = 8, precision: str = "auto", max_length: int = 1024, **_: Any) -> Backend:
    from ift_select.llm.local_hf import LocalBackend

    return LocalBackend(model, batch_size=batch_size, precision=precision, max_length=max_length)


def make_backend(name: str, **settings: Any) -> Backend:
    if name == "openai" and "openai" not in _REGISTRY:
        import ift_select.llm.openai_compat  # noqa: F401  (registers itself)
    if name not in _REGISTRY:
        raise ConfigError(f"backend: unknown backend {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name](**settings)


__all__ = ["Backend", "ChatReply", "ChatRequest", "RequestCache", "RunStats", "make_backend", "register",
           "run_requests"]
