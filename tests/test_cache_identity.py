"""The cache key covers every setting that can change a reply: changing one misses the cache, leaving them
all as they were hits it. (The llamacpp backend's identity: tests/test_llamacpp.py.)"""

from __future__ import annotations

import pytest
from fake_openai import FakeOpenAI

from ift_select.core import devices
from ift_select.llm import ChatRequest, RequestCache, make_backend, run_requests
from ift_select.llm.cache import request_key

REQUESTS = [ChatRequest(messages=(("user", f"Rate {i}"), ("assistant", "Score: ")), max_tokens=4,
                        score_tokens=tuple("012345")) for i in range(3)]


def openai(url: str, **kw):
    return make_backend("openai", **{"model": "m", "base_url": url, "api_key_env": "IFT_TEST_UNSET_KEY",
                                     "concurrency": 2, **kw})


@pytest.fixture(scope="module")
def url():
    srv = FakeOpenAI()
    yield srv.start()
    srv.stop()


@pytest.mark.parametrize("change", [{"model": "m2"}, {"temperature": 0.7}, {"top_logprobs": 5},
                                    {"prefill": "send"}, {"max_prompt_tokens": 4096}, {"base_url": "other"}])
def test_openai_setting_changes_miss_the_cache(url, tmp_path, change):
    cache = RequestCache(tmp_path / "c.sqlite")
    _, first = run_requests(openai(url), REQUESTS, cache)
    _, same = run_requests(openai(url, concurrency=1, timeout_s=5, max_retries=1), REQUESTS, cache)
    assert first.requests == 3 and same.cache_hits == 3  # transport settings do not change replies
    other = openai(url.replace("127.0.0.1", "localhost") if change.get("base_url") else url,
                   **{k: v for k, v in change.items() if k != "base_url"})
    _, changed = run_requests(other, REQUESTS, cache)
    assert changed.cache_hits == 0 and changed.requests == 3


def local_key(**kw) -> str:
    backend = make_backend("local", **{"model": "tiny-random-llama", "max_length": 512, "precision": "fp32", **kw})
    return request_key(backend.identity(), REQUESTS[0])


def test_local_identity_covers_model_length_and_resolved_precision():
    base = local_key()
    assert local_key(batch_size=2) == base  # batching does not change a reply
    assert local_key(max_length=256) != base and local_key(precision="bf16") != base
    assert local_key(model="smollm2-135m-instruct") != base
    resolved = "bf16" if devices.use_bf16("auto") else "fp32"  # "auto" is what it resolves to on this machine
    assert local_key(precision="auto") == local_key(precision=resolved)
    identity = make_backend("local", model="tiny-random-llama").identity()
    assert {"model_hash", "revision", "max_length", "precision", "dtype"} <= set(identity)


def test_a_warm_run_reads_each_reply_once_and_never_counts_the_cache(url, tmp_path):
    """A rerun over a large cache (52k rows in bench/load_52k.py) costs one lookup per request: no statement
    that scans the whole cache per row (``if cache`` once ran COUNT(*) per row, quadratic in the pool)."""
    requests = [ChatRequest(messages=(("user", f"Rate row {i}"),), max_tokens=4) for i in range(200)]
    cache = RequestCache(tmp_path / "c.sqlite")
    _, cold = run_requests(openai(url), requests, cache)
    statements: list[str] = []
    cache._db.set_trace_callback(statements.append)
    _, warm = run_requests(openai(url), requests, cache)
    cache._db.set_trace_callback(None)
    assert cold.requests == 200 and warm.cache_hits == 200 and warm.requests == 0
    assert not [s for s in statements if "COUNT" in s.upper()]
    assert sum(s.startswith("SELECT reply FROM replies") for s in statements) == 200
