"""The openai backend against a REAL OpenAI-compatible server: `transformers serve` on loopback, serving the
tiny random Llama directory. Its replies are noise; what is checked is the plumbing: grader and judge-style
requests go through, usage is counted, no logprobs come back (the text is parsed), every row ends ok,
unparsed or error, and a rerun is served from the cache."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pandas as pd
import pytest

from ift_select.llm.models import model_dir
from ift_select.llm import ChatRequest, RequestCache, make_backend, run_requests
from ift_select.llm.templates import load_template
from ift_select.grading.alpagasus import score_pool, summarize


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except urllib.error.HTTPError:  # it answered (/v1/models can fail on an empty hub cache)
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def served():
    path = model_dir("tiny-random-llama")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(["transformers", "serve", path, "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not (answers(f"{base}/health") and answers(f"{base}/v1/models")):
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
            if time.monotonic() > deadline:
                pytest.fail("transformers serve did not answer within 180 s")
            time.sleep(0.5)
        yield path, f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def grader(path: str, url: str):
    return make_backend("openai", model=path, base_url=url, concurrency=2, timeout_s=120, max_retries=2,
                        api_key_env="IFT_TEST_UNSET_KEY", batch_size=8, precision="auto")  # local-only: ignored


@pytest.mark.parametrize("prompt", ["alpagasus_rating.txt", "alpagasus_rating_prefill.txt"])
def test_score_through_transformers_serve(served, repo_root, tmp_path, prompt):
    path, url = served
    pool = pd.read_json(repo_root / "data/sample/pool.jsonl", lines=True).head(4)
    pool.insert(0, "id", [f"r{i}" for i in range(len(pool))])
    cache = RequestCache(tmp_path / "cache.sqlite")
    scores, stats = score_pool(pool, grader(path, url), load_template(repo_root / "prompts" / prompt), cache,
                               max_tokens=8)
    summary = summarize(scores, stats)
    assert set(scores["status"]) <= {"ok", "unparsed", "error"}
    assert summary["scored"] + summary["unparsed"] + summary["errors"] == len(pool)
    assert summary["errors"] == 0 and stats.requests >= len(pool) and stats.tokens_in > 0
    assert "probs" not in set(scores["method"])  # transformers serve returns no logprobs: text is parsed
    again, stats2 = score_pool(pool, grader(path, url), load_template(repo_root / "prompts" / prompt), cache,
                               max_tokens=8)
    assert stats2.requests == 0 and stats2.cache_hits == stats.requests
    pd.testing.assert_frame_equal(again, scores)


def test_judge_style_request(served):
    path, url = served
    request = ChatRequest(messages=(("system", "You are a helpful and precise assistant."),
                                    ("user", "[Question]\nWhat is 2+2?\n\nAssistant 1: 4\nAssistant 2: 5\n\n"
                                             "Give each answer a score from 1 to 10.")), max_tokens=12)
    (reply,), stats = run_requests(grader(path, url), [request], None)
    assert reply.status == "ok" and isinstance(reply.text, str)
    assert 0 < reply.tokens_out <= 12 and reply.tokens_in > 20 and reply.token_probs is None
    assert stats.requests == 1 and stats.errors == 0
