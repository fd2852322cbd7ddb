"""The ``openai`` backend: any OpenAI-compatible chat endpoint (OpenAI, Azure OpenAI's v1 API, vLLM, llama.cpp's
server, ``transformers serve``) through the openai SDK with ``base_url``.

- Concurrency: asyncio; ``concurrency`` workers share the request list, so at most that many are in flight.
- Retries are ours (the SDK's are switched off, so nothing retries twice): 408/409/429/5xx, timeouts, dropped
  connections and unreadable replies are retried up to ``max_retries`` times after a capped exponential backoff
  with jitter, or after the server's ``Retry-After``/``retry-after-ms`` when it sends one (a wait longer than
  ``max_retry_after_s`` gives up at once). Other 4xx fail at once; 401/403/404 also stop the run: later
  requests are not sent and ``fatal`` says why. A request that fails for good is ``ChatReply(status="error")``, never an
  exception and never a score.
- Window and truncation: a request is fitted to the endpoint's window (``OpenAIEndpoint.prepare``) before it is
  sent; one that cannot fit is an error reply saying by how much. Bodies, replies, logprobs, prefill modes,
  the key and cost: ``llm.endpoint``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import openai

try:
    import httpx2 as httpx  # the transport of openai SDKs >= 3
except ImportError:  # earlier SDKs
    import httpx  # type: ignore[no-redef]

from ift_select.core.errors import ConfigError, IftSelectError
from ift_select.llm.base import ChatReply, ChatRequest, OnReply
from ift_select.llm.endpoint import OpenAIEndpoint, error_reply
from ift_select.llm.truncate import PromptTooLong, byte_bound

RETRY_STATUS = frozenset({408, 409, 429})
FATAL_STATUS = frozenset({401, 403, 404})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 6
    base_s: float = 0.5
    cap_s: float = 30.0
    max_retry_after_s: float = 120.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After (plus up to 10% so waiters spread out), else equal-jitter backoff capped at ``cap_s``."""
        if retry_after is not None:
            return max(0.0, retry_after) * (1 + 0.1 * random.random())
        step = min(self.cap_s, self.base_s * 2**attempt)
        return step / 2 + random.uniform(0, step / 2)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) * scale
        except ValueError:
            date = email.utils.parsedate_tz(value)
            if date is not None:
                return max(0.0, email.utils.mktime_tz(date) - time.time())
    return None


class OpenAIBackend(OpenAIEndpoint):
    def __init__(self, model: str, concurrency: int = 16, **settings: Any) -> None:
        super().__init__(model, **settings)
        if concurrency < 1:
            raise ConfigError(f"openai.concurrency: {concurrency} must be at least 1")
        self.concurrency = concurrency
        self.retry = RetryPolicy(max_retries=self.max_retries)
        self.fatal: str | None = None  # set by 401/403/404: the endpoint refuses this run

    def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply) -> None:
        """Answer ``requests`` on an event loop of our own; ``on_reply`` runs on that loop's thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self._run(requests, on_reply))
            return
        worker = threading.Thread(target=asyncio.run, args=(self._run(requests, on_reply),))  # inside a loop
        worker.start()
        worker.join()

    async def _run(self, requests: Sequence[ChatRequest], on_reply: OnReply) -> None:
        todo = iter(enumerate(requests))
        async with openai.AsyncOpenAI(**self.client_options(), http_client=self._http_client()) as client:

            async def worker() -> None:
                for j, request in todo:  # one shared iterator: each request is taken by exactly one worker
                    hold = self.ledger.reserve([request]) if self.fatal is None else None
                    if hold is None:
                        continue  # over budget or after a fatal error: not sent (the runner records it)
                    reply = await self._fitted(client, request)
                    on_reply(j, reply)  # recorded (cache, ledger) before the hold goes: never under-counted
                    self.ledger.settle(hold, [reply])

            await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(requests)))))

    def _http_client(self) -> Any:
        """The SDK's aiohttp transport when aiohttp is installed (measured: ~25% less CPU per request than its
        default httpx transport, which is what limits throughput at short latencies on a small CPU)."""
        limits = httpx.Limits(max_connections=max(100, self.concurrency), max_keepalive_connections=self.concurrency)
        try:
            return openai.DefaultAioHttpClient(limits=limits)
        except (AttributeError, RuntimeError):  # aiohttp missing
            return openai.DefaultAsyncHttpxClient(limits=limits)

    async def _fitted(self, client: Any, request: ChatRequest) -> ChatReply:
        """Send ``request`` fitted to the window; ``truncated`` says how many prompt tokens were cut."""
        limit = self.limit(request)
        cut = 0
        if limit is not None and byte_bound(request) > limit:  # else it fits whatever the tokenizer
            try:
                request, cut = await asyncio.to_thread(self.prepare, request)
            except PromptTooLong as exc:
                return error_reply(f"prompt too long: {exc}", attempts=0)
            except IftSelectError as exc:  # the window could not be measured (the server went away)
                return error_reply(str(exc), attempts=0)
        reply = await self._send(client, request)
        reply.truncated = cut
        return reply

    async def _send(self, client: Any, request: ChatRequest) -> ChatReply:
        attempts, last = 0, ""
        while True:
            attempts += 1
            wait: float | None = None
            body = self.body(request)
            try:
                # the SDK's documented generic POST: its auth, errors and timeouts, without the per-call params
                # validation of chat.completions.create (measured: half the client CPU per request)
                response = await client.post("/chat/completions", body=body, cast_to=httpx.Response)
                reply = self.read(json.loads(response.content), request)
                reply.attempts = attempts
                return reply
            except openai.APIStatusError as exc:
                status = exc.status_code
                last = f"HTTP {status}: {self.scrub(str(exc.message))}"
                if status == 400 and "logprob" in last.lower() and "logprobs" in body:
                    self._logprobs_ok = False  # the server does not do logprobs: ask without, from now on
                    continue
                if status in FATAL_STATUS:
                    self.fatal = last
                    return error_reply(last, attempts=attempts)
                if status not in RETRY_STATUS and status < 500:
                    return error_reply(last, attempts=attempts)
                wait = parse_retry_after(exc.response.headers)
                if wait is not None and wait > self.retry.max_retry_after_s:
                    return error_reply(f"{last} (Retry-After {wait:.0f} s is over {self.retry.max_retry_after_s:.0f} s)",
                                       attempts=attempts)
            except openai.APITimeoutError:
                last = f"no reply within timeout_s = {self.timeout_s:g} (or the connection was lost)"
            except openai.APIConnectionError as exc:
                last = f"connection error: {self.scrub(str(exc.__cause__ or exc))}"
            except ValueError as exc:  # Unreadable, or a body that is not JSON
                last = f"unreadable reply: {self.scrub(str(exc), 120)}"
            except Exception as exc:  # anything else is a bug or a config problem: record it, do not retry
                return error_reply(f"{type(exc).__name__}: {self.scrub(str(exc))}", attempts=attempts)
            if attempts > self.retry.max_retries:
                return error_reply(f"gave up after {attempts} attempts: {last}", attempts=attempts)
            await asyncio.sleep(self.retry.delay(attempts - 1, wait))
