"""The ``openai`` backend: any OpenAI-compatible chat endpoint (OpenAI, Azure OpenAI's v1 API, vLLM, llama.cpp's
server, ``transformers serve``) at ``base_url``.

- Transport: one aiohttp session posting to ``<base_url>/chat/completions`` with the headers the openai SDK
  sends (bearer key; ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID`` read as the SDK reads them).
  The proxy (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, as the SDK honours them) is looked up once per run:
  aiohttp's ``trust_env`` would look it up, and read ``~/.netrc``, on a thread hop per request.
  Measured on a 2-core CPU against a loopback server with 200 ms latency at concurrency 64 (bound 320 req/s), a
  bare loop of the SDK's chat.completions.create reached 234 req/s and a bare aiohttp loop 308: the SDK's
  request layers (httpx over the same aiohttp) were the client's limit. The Batch API goes through the SDK
  (``llm.batch``).
- Concurrency: asyncio; ``concurrency`` workers share the request list, so at most that many are in flight.
- Retries: 408/409/429/5xx, timeouts, dropped connections and unreadable replies are retried up to
  ``max_retries`` times after a capped exponential backoff with jitter, or after the server's
  ``Retry-After``/``retry-after-ms`` when it sends one (a wait longer than ``max_retry_after_s`` gives up at
  once). Other 4xx fail at once; 401/403/404 also stop the run: later requests are not sent and ``fatal`` says
  why. A request that fails for good is ``ChatReply(status="error")``, never an exception and never a score.
- Window and truncation: a request is fitted to the endpoint's window (``OpenAIEndpoint.prepare``) before it is
  sent; one that cannot fit is an error reply saying by how much. Bodies, replies, logprobs, prefill modes,
  the key and cost: ``llm.endpoint``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from ift_select.core.errors import ConfigError, IftSelectError
from ift_select.llm.base import ChatReply, ChatRequest, OnReply
from ift_select.llm.endpoint import OpenAIEndpoint, error_reply
from ift_select.llm.ledger import Hold
from ift_select.llm.truncate import PromptTooLong, byte_bound

RETRY_STATUS = frozenset({408, 409, 429})
FATAL_STATUS = frozenset({401, 403, 404})
OPENAI_URL = "https://api.openai.com/v1"


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
        self._proxy_kwargs: dict[str, Any] = {}

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
        """``concurrency`` workers on one loop. SQLite work (``on_reply``'s cache and ledger commits, the budget's
        holds) runs one call at a time on a thread of its own, one hop per request, so the loop keeps sending
        and reading meanwhile."""
        todo = iter(enumerate(requests))
        loop = asyncio.get_running_loop()
        self._proxy_kwargs = self._proxy()

        def step(done: tuple[int, ChatReply, Hold] | None, request: ChatRequest | None) -> Hold | None:
            """Record the worker's last reply, then hold the budget for its next request."""
            if done is not None:
                j, reply, hold = done
                on_reply(j, reply)  # recorded (cache, ledger) before the hold goes: never under-counted
                self.ledger.settle(hold, [reply])
            if request is None or self.fatal is not None:
                return None  # after a fatal error: not sent (the runner records it)
            return self.ledger.reserve([request])  # None over budget

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ift-select-ledger") as sqlite_thread:
            async with self._session() as session:

                async def worker() -> None:
                    done: tuple[int, ChatReply, Hold] | None = None
                    for j, request in todo:  # one shared iterator: each request is taken by exactly one worker
                        hold = await loop.run_in_executor(sqlite_thread, step, done, request)
                        done = None
                        if hold is not None:
                            done = (j, await self._fitted(session, request), hold)
                    if done is not None:
                        await loop.run_in_executor(sqlite_thread, step, done, None)

                await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(requests)))))

    def _session(self) -> aiohttp.ClientSession:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "Authorization": f"Bearer {self.api_key()}", "User-Agent": "ift-select (OpenAI-compatible)"}
        for header, variable in (("OpenAI-Organization", "OPENAI_ORG_ID"), ("OpenAI-Project", "OPENAI_PROJECT_ID")):
            if os.environ.get(variable):
                headers[header] = os.environ[variable]
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, self.timeout_s), sock_read=self.timeout_s)
        connector = aiohttp.TCPConnector(limit=max(100, self.concurrency))
        return aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector)

    def _proxy(self) -> dict[str, Any]:
        """``proxy``/``proxy_auth`` for ``session.post`` from the environment, for this run's URL."""
        try:
            proxy, auth = get_env_proxy_for_url(URL(self._url()))
        except LookupError:  # no proxy set for the scheme, or NO_PROXY covers the host
            return {}
        return {"proxy": proxy, "proxy_auth": auth}

    def _url(self) -> str:
        return (self.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/") + "/chat/completions"

    async def _fitted(self, session: aiohttp.ClientSession, request: ChatRequest) -> ChatReply:
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
        reply = await self._send(session, request)
        reply.truncated = cut
        return reply

    async def _send(self, session: aiohttp.ClientSession, request: ChatRequest) -> ChatReply:
        attempts, last, url = 0, "", self._url()
        while True:
            attempts += 1
            wait: float | None = None
            body = self.body(request)
            try:
                async with session.post(url, data=json.dumps(body), **self._proxy_kwargs) as response:
                    status, headers, raw = response.status, response.headers, await response.read()
            except TimeoutError:
                status, last = 0, f"no reply within timeout_s = {self.timeout_s:g} (or the connection was lost)"
            except aiohttp.ClientError as exc:  # refused, reset, closed mid-reply
                status, last = 0, f"connection error: {self.scrub(str(exc) or type(exc).__name__)}"
            except Exception as exc:  # anything else is a bug or a config problem: record it, do not retry
                return error_reply(f"{type(exc).__name__}: {self.scrub(str(exc))}", attempts=attempts)
            if 200 <= status < 300:
                try:
                    reply = self.read(json.loads(raw), request)
                    reply.attempts = attempts
                    return reply
                except ValueError as exc:  # a body that is not JSON, or not a chat completion
                    last = f"unreadable reply: {self.scrub(str(exc), 120)}"
            elif status:
                last = f"HTTP {status}: {self.scrub(error_message(raw))}"
                if status == 400 and "logprob" in last.lower() and "logprobs" in body:
                    self._logprobs_ok = False  # the server does not do logprobs: ask without, from now on
                    continue
                if status in FATAL_STATUS:
                    self.fatal = last
                    return error_reply(last, attempts=attempts)
                if status not in RETRY_STATUS and status < 500:
                    return error_reply(last, attempts=attempts)
                wait = parse_retry_after(headers)
                if wait is not None and wait > self.retry.max_retry_after_s:
                    return error_reply(f"{last} (Retry-After {wait:.0f} s is over {self.retry.max_retry_after_s:.0f} s)",
                                       attempts=attempts)
            if attempts > self.retry.max_retries:
                return error_reply(f"gave up after {attempts} attempts: {last}", attempts=attempts)
            await asyncio.sleep(self.retry.delay(attempts - 1, wait))


def error_message(raw: bytes) -> str:
    """What an error reply says: its JSON ``error.message`` (OpenAI's shape) or ``message``, else its text."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text or "(empty body)"
    error = data.get("error", data) if isinstance(data, dict) else data
    message = error.get("message") if isinstance(error, dict) else error
    return str(message) if message else text
