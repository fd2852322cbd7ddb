"""What the openai backend's transport sends and where: the SDK's headers, and the proxy from the environment
(looked up once per run, not per request) with NO_PROXY honoured. The loopback server plays the proxy: a
forward proxy receives the request's absolute URL as its target."""

from __future__ import annotations

import pytest

from ift_select.llm import ChatRequest, make_backend, run_requests

REMOTE = "http://llm.example.invalid/v1"  # never resolved when the proxy is used: .invalid has no DNS


def send(base_url: str, n: int = 3):
    backend = make_backend("openai", model="fake", base_url=base_url, concurrency=2, timeout_s=5, max_retries=0,
                           api_key_env="IFT_TEST_TRANSPORT_KEY", paid=False)
    requests = [ChatRequest(messages=(("user", f"rate row {i}"),), max_tokens=4) for i in range(n)]
    return run_requests(backend, requests, None)


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_requests_go_through_the_proxy_from_the_environment(fake_openai, monkeypatch):
    server, url = fake_openai()
    monkeypatch.setenv("HTTP_PROXY", url.removesuffix("/v1"))
    replies, stats = send(REMOTE)
    assert [r.status for r in replies] == ["ok"] * 3 and stats.errors == 0
    assert [target for target, _ in server.seen] == [f"{REMOTE}/chat/completions"] * 3


def test_no_proxy_keeps_a_host_off_the_proxy(fake_openai, monkeypatch):
    proxy, proxy_url = fake_openai()
    direct, direct_url = fake_openai()
    monkeypatch.setenv("HTTP_PROXY", proxy_url.removesuffix("/v1"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    replies, _ = send(direct_url)
    assert [r.status for r in replies] == ["ok"] * 3
    assert proxy.total == 0 and [target for target, _ in direct.seen] == ["/v1/chat/completions"] * 3


def test_the_sdk_headers_are_sent(fake_openai, monkeypatch):
    server, url = fake_openai()
    monkeypatch.setenv("IFT_TEST_TRANSPORT_KEY", "sk-transport-test")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-123")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-456")
    send(url, n=1)
    (_, headers), = server.seen
    assert headers["authorization"] == "Bearer sk-transport-test"
    assert headers["openai-organization"] == "org-123" and headers["openai-project"] == "proj-456"
    assert headers["content-type"] == "application/json"
