"""Send requests through a backend behind the cache, with counts every command reports, and the check that
turns a run of failed requests into a message a user can act on."""

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
    attempts: int = 0  # HTTP requests those took, retries included
    retries: int = 0
    cache_hits: int = 0
    errors: int = 0
    not_sent: int = 0  # of the errors: requests the backend never sent (budget stop, batch still running)
    truncated: int = 0  # replies (cached ones too) whose prompt was cut to fit the model's window
    truncated_tokens: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0  # spent by this run
    results_cost_usd: float = 0.0  # what these replies cost when first paid, cached ones included (the ledger)
    seconds: float = 0.0

    def add(self, other: RunStats) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("cost_usd", "results_cost_usd"):
            data[key] = round(data[key], 6)
        data["seconds"] = round(self.seconds, 3)
        return data


def _not_sent(backend: Backend) -> str:
    ledger = getattr(backend, "ledger", None)
    why = getattr(ledger, "stopped", None) or getattr(backend, "fatal", None)
    if why:
        return f"not sent: {why}"
    if getattr(backend, "pending", None):
        return "not sent: its batch is still running at the provider (rerun to collect it)"
    return "not sent: the backend stopped before this request"


def run_requests(
    backend: Backend,
    requests: Sequence[ChatRequest],
    cache: RequestCache | None,
    desc: str = "requests",
) -> tuple[list[ChatReply], RunStats]:
    """Answer ``requests`` in order. Cached replies are reused; each new "ok" reply is committed to the
    cache (and a paid one's charge to the ledger) before it is counted, so a killed run re-sends at most the
    requests that were in flight. A request asked twice is sent once, and one that another run sharing the
    cache is sending is waited for, not sent again (``llm.claims``)."""
    start = time.perf_counter()
    stats = RunStats(rows=len(requests))
    identity = backend.identity()
    keys = [request_key(identity, r) for r in requests]
    ledger = getattr(backend, "ledger", None)
    scope, db = getattr(ledger, "scope", None), getattr(ledger, "db", None)
    batch = bool(getattr(ledger, "batch", False))
    replies: list[ChatReply | None] = [None] * len(requests)
    missing: list[int] = []
    for i, key in enumerate(keys):
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            replies[i] = hit
            stats.cache_hits += 1
        else:
            missing.append(i)
    by_key: dict[str, list[int]] = {}
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
                cache.put(key, backend.name, reply, charge_scope=scope, batch=batch)
            elif db is not None and scope is not None and reply.cost_usd > 0:
                db.record(key, scope, reply, batch)
            for i in by_key[key]:
                replies[i] = reply
            stats.requests += 1
            stats.attempts += reply.attempts
            stats.retries += max(0, reply.attempts - 1)
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
            replies[i] = ChatReply(text="", status="error", error=_not_sent(backend), attempts=0)
            stats.errors += 1
            stats.not_sent += 1
    done = [r for r in replies if r is not None]
    stats.truncated = sum(r.truncated > 0 for r in done)
    stats.truncated_tokens = sum(r.truncated for r in done)
    ok_keys = [k for k, r in zip(keys, done) if r.status == "ok"]
    source = cache if cache is not None else db
    stats.results_cost_usd = source.cost_of(ok_keys) if source is not None and scope is not None else \
        sum(r.cost_usd for r in done if r.status == "ok")
    stats.seconds = time.perf_counter() - start
    return done, stats


def failure_message(statuses: Sequence[str], errors: Sequence[str | None], max_error_rate: float, endpoint: str,
                    setting: str, unit: str, nothing_ok: str | None = None) -> str | None:
    """Why a run must fail, or None when it may stand: the share of ``statuses`` that are "error" is over
    ``max_error_rate`` (named as ``setting``), every one failed, or, when ``nothing_ok`` is given (the message for
    it), none is "ok". The message names ``endpoint`` (a public URL or model, never a key) and the first error."""
    n = len(statuses)
    reasons = [e if isinstance(e, str) and e else None for e in errors]  # NaN/None: no reason
    failed = [reason for status, reason in zip(statuses, reasons) if status == "error"]
    ok = sum(status == "ok" for status in statuses)
    over = len(failed) == n > 0 or len(failed) > max_error_rate * n
    if not over and (ok or nothing_ok is None):  # with ``nothing_ok``, no rows at all fail too
        return None
    first = next((r for r in failed if r), None) or next((r for r in reasons if r), None) or \
        ("no rows" if not n else "no reason given")
    if nothing_ok is not None and not ok:
        what = nothing_ok
    elif len(failed) == n:
        what = f"every one of the {n} {unit} failed"
    else:
        what = f"{len(failed)} of {n} {unit} failed ({len(failed) / n:.0%} > {setting} = {max_error_rate:g})"
    return f"{endpoint}: {what}; first error: {first}"
