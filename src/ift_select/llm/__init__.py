"""LLM backends for graders and judges: the request/reply types, the request cache, the runner, and the
registry of backends by name (``registry.make_backend``)."""

from __future__ import annotations

from ift_select.llm.base import Backend, ChatReply, ChatRequest
from ift_select.llm.cache import RequestCache
from ift_select.llm.registry import make_backend, register
from ift_select.llm.runner import RunStats, run_requests

__all__ = ["Backend", "ChatReply", "ChatRequest", "RequestCache", "RunStats", "make_backend", "register",
           "run_requests"]
