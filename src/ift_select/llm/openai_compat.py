"""The ``openai`` backend: any OpenAI-compatible chat endpoint (OpenAI, Azure OpenAI's v1 API, vLLM, llama.cpp's
server, ``transformers serve``) through the openai SDK with ``base_url``.

- Concurrency: asyncio; ``concurrency`` workers share the request list, so at most that many are in flight.
- Retries are ours (the SDK's are switched off, so nothing retries twice): 408/409/429/5xx, timeouts, dropped
  connections and unreadable replies are retried up to ``max_retries`` times after a capped exponential backoff
  with jitter, or after the server's ``Retry-After``/``retry-after-ms`` when it sends one (a wait longer than
  ``max_retry_after_s`` gives up at once). Other 4xx fail at once; 401/403/404 also stop the run: later
  requests are not sent and ``fatal`` says why. A request that fails for good is ``ChatReply(status="error")``, never an
  exception and never a score.
- Score tokens: requests with ``score_tokens`` ask for ``logprobs``/``top_logprobs``; ``token_probs`` sums the
  first token's probabilities over spellings ("4", " 4"). Servers that return none (``transformers serve``)
  leave it None and the grader parses the text; a server that rejects the parameter (HTTP 400 naming it) is
  asked again without it for the rest of the run.
- Prefill: Chat Completions cannot continue an assistant turn, so a trailing assistant message is dropped by
  default (``prefill="drop"``: the reply starts fresh, as the API-grader prompts expect) and, as the first
  token is then not the one the caller asked about, such a reply has no ``token_probs`` (the text is parsed).
  ``"send"`` sends it as-is (endpoints that continue it, e.g. Anthropic-compatible ones); ``"continue"`` adds
  vLLM's ``continue_final_message``. The mode is part of ``identity()``, hence of the cache key.
  ``max_tokens=0`` (first-token probabilities only) is sent as 1 and replies with empty text.
- API key: read from the environment variable named by ``api_key_env`` when a client is built; never stored on
  the backend, never in ``identity()`` (the cache key) and scrubbed from every error text.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import openai

try:
    import httpx2 as httpx  # the transport of openai SDKs >= 3
except ImportError:  # earlier SDKs
    import httpx  # type: ignore[no-redef]

from ift_select.core.errors import ConfigError
from ift_select.llm.base import ChatReply, ChatRequest, OnReply, Prefill
from ift_select.llm.pricing import Ledger, PriceTable, prompt_tokens, token_counter

RETRY_STATUS = frozenset({408, 409, 429})
FATAL_STATUS = frozenset({401, 403, 404})
_SECRET_QUERY = ("key", "token", "secret", "sig", "password", "auth")


class Unreadable(ValueError):
    """A 200 reply that is not a chat completion."""


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


def public_url(url: str | None) -> str | None:
    """``url`` without user:password and without query parameters that look like credentials."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # IPv6
    netloc = f"{host}:{parts.port}" if parts.port else host
    query = [(k, v) for k, v in parse_qsl(parts.query) if not any(s in k.lower() for s in _SECRET_QUERY)]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))


def first_token_probs(logprobs: Any, score_tokens: Sequence[str]) -> dict[str, float] | None:
    """P(first reply token = t) for each score token, summed over spellings with surrounding spaces."""
    try:
        top = logprobs["content"][0]["top_logprobs"]
    except (TypeError, KeyError, IndexError):
        return None
    if not top:
        return None
    probs = dict.fromkeys(score_tokens, 0.0)
    for item in top:
        try:
            token, logprob = str(item["token"]).strip(), float(item["logprob"])
        except (TypeError, KeyError, ValueError):
            continue
        if token in probs:
            probs[token] += math.exp(logprob)
    return probs


def error_reply(message: str, **extra: Any) -> ChatReply:
    return ChatReply(text="", status="error", error=message, extra=extra)


class OpenAIEndpoint:
    """What every OpenAI-compatible mode shares: settings, the key, request bodies, reading replies, cost."""

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 60.0, max_retries: int = 6, temperature: float | None = None,
                 top_logprobs: int = 20, prefill: Prefill = "drop", pricing: Mapping[str, Any] | None = None,
                 max_cost_usd: float | None = None, ledger: Ledger | None = None, batch: bool = False) -> None:
        if prefill not in ("drop", "send", "continue"):
            raise ConfigError(f"prefill: {prefill!r} is not one of drop, send, continue")
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.retry = RetryPolicy(max_retries=max_retries)
        self.temperature = temperature
        self.top_logprobs = top_logprobs
        self.prefill = prefill
        self.ledger = ledger or Ledger(model, PriceTable.from_params(pricing), max_cost_usd, batch=batch)
        self._logprobs_ok = True
        self.api_key()  # fail early, naming the variable, when a key is needed and missing

    def identity(self) -> dict[str, Any]:
        return {"backend": "openai", "model": self.model, "base_url": public_url(self.base_url),
                "temperature": self.temperature, "top_logprobs": self.top_logprobs, "prefill": self.prefill}

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

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of /v1/chat/completions for ``request``."""
        messages = list(request.messages)
        body: dict[str, Any] = {}
        if self.dropped_prefill(request):
            messages = messages[:-1]
        elif messages and messages[-1][0] == "assistant" and self.prefill == "continue":
            body.update(continue_final_message=True, add_generation_prompt=False)
        body.update(model=self.model, messages=[{"role": r, "content": c} for r, c in messages],
                    max_tokens=max(1, request.max_tokens),
                    temperature=request.temperature if self.temperature is None else self.temperature)
        if request.score_tokens and self.top_logprobs and self._logprobs_ok and not self.dropped_prefill(request):
            body.update(logprobs=True, top_logprobs=self.top_logprobs)
        return body

    def dropped_prefill(self, request: ChatRequest) -> bool:
        return self.prefill == "drop" and bool(request.messages) and request.messages[-1][0] == "assistant"

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
        text = (text or "") if request.max_tokens > 0 else ""
        extra: dict[str, Any] = {"finish_reason": choices[0].get("finish_reason")}
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        tokens_in, tokens_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(tokens_in, int) or not isinstance(tokens_out, int):
            counter = token_counter(self.model)
            tokens_in, tokens_out = prompt_tokens(request, counter), counter.count(text)
            extra["usage"] = f"estimated ({counter.method})"
        probs = (first_token_probs(choices[0].get("logprobs"), request.score_tokens)
                 if request.score_tokens and not self.dropped_prefill(request) else None)
        return ChatReply(text=text, token_probs=probs, tokens_in=tokens_in, tokens_out=tokens_out,
                         cost_usd=self.ledger.cost(tokens_in, tokens_out), extra=extra)


class OpenAIBackend(OpenAIEndpoint):
    def __init__(self, model: str, concurrency: int = 16, **settings: Any) -> None:
        super().__init__(model, **settings)
        if concurrency < 1:
            raise ConfigError(f"openai.concurrency: {concurrency} must be at least 1")
        self.concurrency = concurrency
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
                    reserved = self.ledger.reserve([request]) if self.fatal is None else None
                    if reserved is None:
                        continue  # over budget or after a fatal error: not sent (the runner records it)
                    reply = await self._send(client, request)
                    self.ledger.settle(reserved, [reply])
                    on_reply(j, reply)

            await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(requests)))))

    def _http_client(self) -> Any:
        """The SDK's aiohttp transport when aiohttp is installed (measured: ~25% less CPU per request than its
        default httpx transport, which is what limits throughput at short latencies on a small CPU)."""
        limits = httpx.Limits(max_connections=max(100, self.concurrency), max_keepalive_connections=self.concurrency)
        try:
            return openai.DefaultAioHttpClient(limits=limits)
        except (AttributeError, RuntimeError):  # aiohttp missing
            return openai.DefaultAsyncHttpxClient(limits=limits)

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
                reply.extra["attempts"] = attempts
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
