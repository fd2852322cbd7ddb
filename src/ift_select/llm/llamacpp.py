"""The ``llamacpp`` backend: a GGUF model served by llama.cpp's OpenAI-compatible server (PyPI wheel
``xllamacpp``), which this backend starts on 127.0.0.1 and speaks to through the ``openai`` backend's own code
(the same path as vLLM or OpenAI in production).

- The server runs in a child process (``llamacpp_server.py``) started on the first request that misses the
  cache, so a rerun served from the cache starts nothing. It stops when the last backend using it is closed or
  collected, at exit, and, because it watches its stdin, whenever this process dies. Backends with the same
  model and server settings in one process share one server.
- llama.cpp continues a trailing assistant turn (``prefill: send``) and returns ``logprobs``/``top_logprobs``
  for chat completions, so prefill prompts get first-token probabilities; the prefill it echoes at the start
  of the reply text is removed, as the local backend returns only the continuation.
- Window: prompt and reply share ``ctx`` tokens per slot. A longer prompt has its cuttable spans cut
  (``llm.truncate``), counted exactly by the server (/apply-template, /tokenize), only when its bytes could
  exceed the window.
- Cache identity: the GGUF's content hash, ``ctx``, the chat template (the GGUF's own or ``chat_template``, a
  Jinja template's text), the engine version, ``top_logprobs`` and the prefill mode. Threads, slots and batch
  sizes change speed, not replies, and are left out.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ift_select.core.errors import ConfigError, IftSelectError
from ift_select.llm import models
from ift_select.llm.base import ChatRequest, OnReply
from ift_select.llm.gguf_meta import metadata
from ift_select.llm.openai_compat import OpenAIBackend

CHILD = Path(__file__).with_name("llamacpp_server.py")


def engine_version() -> str:
    try:
        return f"xllamacpp {importlib.metadata.version('xllamacpp')}"
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError("backend llamacpp needs the package xllamacpp (make install, or pip install xllamacpp)") \
            from None


class LlamaServer:
    """One llama.cpp server process on loopback; ``base_url`` ends in /v1, ``root`` is the server root."""

    def __init__(self, config: dict[str, Any], startup_timeout_s: float = 300.0) -> None:
        self.model = Path(config["model"])
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        self._log = tempfile.TemporaryFile()
        start = time.monotonic()
        self._proc = subprocess.Popen([sys.executable, str(CHILD), json.dumps(config)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log, env=env)
        try:
            ready, _, _ = select.select([self._proc.stdout], [], [], startup_timeout_s)
            line = self._proc.stdout.readline().decode().strip() if ready else ""  # type: ignore[union-attr]
            if not line.startswith("http://"):
                raise self._failure(f"did not start within {startup_timeout_s:g} s" if not ready else "failed")
            self.root = line.rstrip("/")
            self.base_url = self.root + "/v1"
            self._wait_healthy(start + startup_timeout_s)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - start

    def _failure(self, what: str) -> IftSelectError:
        self._log.seek(0)
        lines = [ln.strip() for ln in self._log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        errors = [ln.split(" E ", 1)[1].strip() for ln in lines if " E " in ln]
        why = errors[0] if errors else lines[-1] if lines else "no output"
        return IftSelectError(f"llama.cpp server for {self.model} {what}: {why}")

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            try:
                if self.call("/health", timeout=5).get("status") == "ok":
                    return
            except (OSError, ValueError):
                pass  # loading (503) or not listening yet
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise self._failure("never became healthy")
            time.sleep(0.1)

    def call(self, path: str, body: dict[str, Any] | None = None, timeout: float = 60.0) -> Any:
        """GET (``body`` None) or POST JSON to the server's native API."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.root + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()  # type: ignore[union-attr]
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(timeout=30)
        self._log.close()


_LOCK = threading.Lock()
_SERVERS: dict[str, tuple[LlamaServer, int]] = {}  # settings -> (server, backends using it)


def _acquire(config: dict[str, Any], startup_timeout_s: float) -> LlamaServer:
    key = json.dumps(config, sort_keys=True)
    with _LOCK:
        if key in _SERVERS:
            server, users = _SERVERS[key]
        else:
            server, users = LlamaServer(config, startup_timeout_s), 0
        _SERVERS[key] = (server, users + 1)
        return server


def _release(config: dict[str, Any]) -> None:
    key = json.dumps(config, sort_keys=True)
    with _LOCK:
        server, users = _SERVERS.get(key, (None, 0))
        if server is None:
            return
        if users > 1:
            _SERVERS[key] = (server, users - 1)
            return
        del _SERVERS[key]
    server.close()


@atexit.register
def _stop_all() -> None:
    with _LOCK:
        servers = [server for server, _ in _SERVERS.values()]
        _SERVERS.clear()
    for server in servers:
        server.close()


# Rows graded per window, follow-ups included (grading.alpagasus.score_pool). llama.cpp keeps recent prompts in
# its RAM prompt cache (8 GiB by default: ~900 SmolLM2-135M or ~170 7B prompts of 400 tokens) and evicts the
# oldest; follow-ups sent only after every rating scanned past it and missed each time (2,000 Alpaca rows:
# 1.5-2.2 follow-ups/s against 6.7/s when all 200 rows of a smaller run fitted).
FOLLOWUP_WINDOW_PER_SLOT = 32


class LlamaCppBackend(OpenAIBackend):
    def __init__(self, model: str, threads: int | None = None, ctx: int = 2048, parallel: int = 1,
                 batch: int = 2048, ubatch: int = 512, chat_template: str | None = None, top_logprobs: int = 20,
                 timeout_s: float = 600.0, startup_timeout_s: float = 300.0, max_retries: int = 2) -> None:
        for name, value in (("ctx", ctx), ("parallel", parallel), ("batch", batch), ("ubatch", ubatch)):
            if value < 1:
                raise ConfigError(f"llamacpp.{name}: {value} must be at least 1")
        if threads is not None and threads < 1:
            raise ConfigError(f"llamacpp.threads: {threads} must be at least 1 (or null: every core)")
        gguf = models.gguf_file(model)
        self.template = chat_template or metadata(gguf, "tokenizer.chat_template")
        if not self.template:
            raise ConfigError(f"llamacpp.chat_template: {gguf.name} has no chat template; give one (Jinja text)")
        super().__init__(gguf.stem, base_url="http://127.0.0.1:0/v1", concurrency=2 * parallel,
                         timeout_s=timeout_s, max_retries=max_retries, top_logprobs=top_logprobs, prefill="send",
                         paid=False)
        self.name = f"llamacpp:{model}"
        self.endpoint = f"llama.cpp server for {gguf.name}"
        self.ctx = ctx
        self.followup_window = FOLLOWUP_WINDOW_PER_SLOT * parallel
        self.config = {"model": str(gguf), "threads": threads, "ctx": ctx, "parallel": parallel, "batch": batch,
                       "ubatch": ubatch, "chat_template": chat_template}
        self.startup_timeout_s = startup_timeout_s
        self.server: LlamaServer | None = None
        self._identity = {"backend": "llamacpp", "gguf_md5": models.file_hash(gguf), "ctx": ctx,
                          "chat_template": hashlib.sha256(self.template.encode()).hexdigest()[:16],
                          "engine": engine_version(), "top_logprobs": top_logprobs, "prefill": "send"}
        self._finalizer: Any = None

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def start(self) -> LlamaServer:
        """The running server (started, or shared with another backend, on first use)."""
        if self.server is None:
            self.server = _acquire(self.config, self.startup_timeout_s)
            self._finalizer = weakref.finalize(self, _release, self.config)
            self.base_url = self.server.base_url
            self.endpoint = f"llama.cpp server for {Path(self.config['model']).name} at {self.base_url}"
        return self.server

    def close(self) -> None:
        """Stop using the server (it stops when no backend uses it)."""
        if self._finalizer is not None:
            self._finalizer()
        self.server, self._finalizer = None, None

    def __enter__(self) -> LlamaCppBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply) -> None:
        self.start()
        super().complete(requests, on_reply)

    def limit(self, request: ChatRequest) -> int:
        return self.ctx - max(1, request.max_tokens)

    def count(self, request: ChatRequest) -> int:
        """Prompt tokens exactly as the server will see them."""
        server = self.start()
        try:
            messages = [{"role": r, "content": c} for r, c in request.messages]
            prompt = server.call("/apply-template", {"messages": messages})["prompt"]
            return len(server.call("/tokenize", {"content": prompt, "add_special": True})["tokens"])
        except (OSError, ValueError, KeyError) as exc:
            raise IftSelectError(f"{self.endpoint}: could not count prompt tokens ({exc})") from exc
