"""Send requests through a backend behind the cache, with counts every command reports."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tqdm import tqdm

from ift_select.llm.base import Backend, ChatReply, ChatRequest
from ift_select.llm.cache import RequestCache, request_key
from ift_select.llm.claims import Claims


@dataclass
class RunStats:
    rows: int = 0
    requests: int = 0  # sent to the backend (cache misses)
    cache_hits: int = 0
    errors: int = 0
    not_sent: int = 0  # of the errors: requests the backend never sent (budget stop, batch still running)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0

    def add(self, other: RunStats) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["cost_usd"] = round(self.cost_usd, 6)
        data["seconds"] = round(self.seconds, 3)
        return data


def run_requests(
    backend: Backend,
    requests: Sequence[ChatRequest],
    cache: RequestCache | None,
    desc: str = "requests",
) -> tuple[list[ChatReply], RunStats]:
    """Answer ``requests`` in order. Cached replies are reused; each new "ok" reply is committed to the
    cache before it is counted, so a killed run re-sends at most the requests that were in flight. A request
    another run sharing the cache is sending is waited for, not sent again (``llm.claims``)."""
    start = time.perf_counter()
    stats = RunStats(rows=len(requests))
    identity = backend.identity()
    keys = [request_key(identity, r) for r in requests]
    replies: list[ChatReply | None] = [None] * len(requests)
    missing: list[int] = []
    for i, key in enumerate(keys):
        hit = cache.get(key) if cache else None
        if hit is not None:
            replies[i] = hit
            stats.cache_hits += 1
        else:
            missing.append(i)
    by_key: dict[str, list[int]] = {}  # a request asked twice is sent once
    for i in missing:
        by_key.setdefault(keys[i], []).append(i)

    bar = tqdm(total=len(missing), desc=desc, unit="req", disable=not missing, leave=False)

    def from_cache(done: Sequence[str]) -> None:  # answered by another run meanwhile
        for key in done:
            reply = cache.get(key) if cache is not None else None
            for i in by_key[key]:
                replies[i] = reply
                stats.cache_hits += reply is not None
            bar.update(len(by_key[key]))

    def send(todo: Sequence[str]) -> None:
        def on_reply(j: int, reply: ChatReply) -> None:
            key = todo[j]
            if cache is not None:
                cache.put(key, backend.name, reply)
            for i in by_key[key]:
                replies[i] = reply
            stats.requests += 1
            stats.tokens_in += reply.tokens_in
            stats.tokens_out += reply.tokens_out
            stats.cost_usd += reply.cost_usd
            stats.errors += (reply.status != "ok") * len(by_key[key])
            stats.cache_hits += len(by_key[key]) - 1
            bar.update(len(by_key[key]))

        backend.complete([requests[by_key[k][0]] for k in todo], on_reply)

    claims = Claims(cache.path) if cache is not None and by_key else None
    try:
        todo = list(by_key)
        while todo:  # without a cache: one round; with one, until no other run holds what is left
            if claims is None:
                send(todo)
                break
            mine, answered, theirs = claims.claim(todo)
            from_cache(answered)
            if mine:
                send(mine)
            answered, todo = claims.wait(theirs)
            from_cache(answered)
    finally:
        if claims is not None:
            claims.close()
    bar.close()
    for i in missing:
        if replies[i] is None:  # the backend stopped early (e.g. budget): record, never invent a reply
            replies[i] = ChatReply(text="", status="error", error="not sent")
            stats.errors += 1
            stats.not_sent += 1
    stats.seconds = time.perf_counter() - start
    return [r for r in replies if r is not None], stats
