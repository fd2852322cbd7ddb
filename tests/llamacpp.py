"""A real llama.cpp OpenAI-compatible server on loopback (PyPI wheel ``xllamacpp``), for tests.

    with llama_server(gguf) as base_url:   # "http://127.0.0.1:PORT/v1"
        make_backend("openai", model="x", base_url=base_url, prefill="send")

The server runs in this process (C++ threads); the OS picks a free port. It continues a trailing assistant
message (a prefill) and returns logprobs/top_logprobs for chat completions.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def llama_server(gguf: Path, ctx: int = 2048, threads: int = 2) -> Iterator[str]:
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before OpenMP starts: spinning threads lose on a busy CPU
    xlc = pytest.importorskip("xllamacpp")
    params = xlc.CommonParams()
    params.model.path = str(gguf)
    params.n_ctx = ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.port = 0
    params.hostnames = ["127.0.0.1"]
    params.verbosity = 0
    server = xlc.Server(params)
    root = server.listening_address.rstrip("/")
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(root + "/health", timeout=5) as r:
                if json.loads(r.read()).get("status") == "ok":
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"llama.cpp server for {gguf} not healthy after 120 s")
        time.sleep(0.2)
    try:
        yield root + "/v1"
    finally:
        del server
        gc.collect()


def smollm2_gguf() -> Path:
    from ift_select.llm.models import smollm2_gguf as path

    return path()
