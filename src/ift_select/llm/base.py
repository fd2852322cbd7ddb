"""The request/reply types every LLM backend speaks, and the backend protocol."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

Status = Literal["ok", "error"]
Prefill = Literal["drop", "send", "continue"]  # what an endpoint does with a trailing assistant turn


Span = tuple[int, int, int]  # (message index, start, end): characters of a message's content


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion.

    ``score_tokens``: tokens whose first-position probabilities the caller wants (e.g. "0".."5" for a grader);
    backends that can read them fill ``ChatReply.token_probs``. ``logprobs``: how many alternatives per
    generated position the caller wants in ``ChatReply.positions`` (0: none). ``cuttable``: the spans of the
    messages (a response or answer field) a backend may shorten, from their middle, when the prompt is longer
    than the model's window; everything else (instruction, question, prefill) is kept whole."""

    messages: tuple[tuple[str, str], ...]  # (role, content)
    max_tokens: int = 24
    temperature: float = 0.0
    score_tokens: tuple[str, ...] = ()
    logprobs: int = 0
    cuttable: tuple[Span, ...] = ()

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "messages": [{"role": r, "content": c} for r, c in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "score_tokens": list(self.score_tokens),
        }
        if self.logprobs:  # only when asked: cache keys of earlier requests stay as they were
            data["logprobs"] = self.logprobs
        if self.cuttable:
            data["cuttable"] = [list(span) for span in self.cuttable]
        return data


@dataclass
class ChatReply:
    text: str
    status: Status = "ok"
    token_probs: dict[str, float] | None = None  # P(first token = t) for t in request.score_tokens
    # per generated token: its text and {alternative token text: probability} (request.logprobs of them)
    positions: list[tuple[str, dict[str, float]]] | None = None
    truncated: int = 0  # prompt tokens cut from the cuttable spans to fit the window
    attempts: int = 1  # requests sent for this reply (1 + retries)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cached: bool = False
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cached"}  # shallow: asdict copies
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ChatReply:
        data = json.loads(text)
        if data.get("positions") is not None:  # JSON has no tuples
            data["positions"] = [(token, alternatives) for token, alternatives in data["positions"]]
        return cls(**data, cached=True)


OnReply = Callable[[int, ChatReply], None]


class Backend(Protocol):
    """A grader/judge model. ``identity()`` goes into the cache key: everything that changes replies.
    ``endpoint``: where its requests go as users may see it (a public URL or a model; never a secret)."""

    name: str
    endpoint: str

    def identity(self) -> dict[str, Any]: ...

    def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply) -> None:
        """Answer every request, calling ``on_reply(index, reply)`` as each finishes (any order).
        A request that fails for good gets a reply with status "error", never an exception."""
        ...
