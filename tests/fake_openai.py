"""A loopback OpenAI-compatible server for tests and benchmarks (plain asyncio, no framework).

    python tests/fake_openai.py --latency 1.0      # prints "READY <port>"; GET /stats gives the counts
    python tests/fake_openai.py --no-logprobs      # replies without logprobs: graders parse "<n>" (0-5)

- POST /v1/chat/completions: after ``latency`` seconds, a grade that depends only on the request body ("<n>\\n..."),
  with top_logprobs when asked (unless ``logprobs=False``) and usage.
- Faults: a marker ``[fault:KIND]`` or ``[fault:KIND:N]`` anywhere in the messages makes the first N attempts
  of that request (every attempt without N) fail as KIND: 429 (with Retry-After), 500, 400, 401, slow (sleeps
  ``slow_s``), empty (content ""), nochoices ({}), malformed (not JSON), drop (connection closed), text
  (a reply to parse, no logprobs), garbage (nothing to parse), echo (500 echoing the Authorization header).
- POST /v1/files, GET /v1/files/<id>/content, POST /v1/batches, GET /v1/batches/<id>: a Batch API that
  completes a batch on its ``batch_polls``-th retrieval (answers computed as for chat completions).
"""

from __future__ import annotations

import argparse
import asyncio
import email.parser
import hashlib
import json
import math
import re
import threading
import time
from collections import Counter, defaultdict
from typing import Any

FAULT = re.compile(r"\[fault:([a-z0-9]+)(?::(\d+))?\]")
DROP = object()


class FakeOpenAI:
    def __init__(self, latency: float = 0.0, logprobs: bool = True, retry_after: str = "1", slow_s: float = 3.0,
                 batch_polls: int = 2, reject_logprobs: bool = False) -> None:
        self.latency, self.logprobs, self.retry_after, self.slow_s = latency, logprobs, retry_after, slow_s
        self.reject_logprobs = reject_logprobs  # answer 400 to requests asking for logprobs (some servers do)
        self.batch_polls = batch_polls
        self.total = 0  # chat completion requests received
        self.attempts: Counter[str] = Counter()  # per request body (messages + settings)
        self.times: dict[str, list[float]] = defaultdict(list)
        self.auth: set[str] = set()
        self.seen: list[tuple[str, dict[str, str]]] = []  # (request target, headers) of each chat completion
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_polls_seen: Counter[str] = Counter()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    # ---- chat completions -------------------------------------------------------------------------------
    def completion(self, body: dict[str, Any], raw: bytes | None = None, count: bool = True
                   ) -> tuple[int, Any, dict[str, str]]:
        """(status, body, headers) for one request; the grade depends only on the request bytes."""
        messages = body.get("messages", [])
        raw = raw or json.dumps(body, sort_keys=True).encode()
        key = hashlib.sha256(raw).hexdigest()
        if count:
            self.total += 1
            self.attempts[key] += 1
            self.times[key].append(time.monotonic())
        attempt = self.attempts[key] if count else 1
        fault = FAULT.search(raw.decode("utf-8", "replace"))
        kind = None
        if fault and (fault.group(2) is None or attempt <= int(fault.group(2))):
            kind = fault.group(1)
        score = int(key[:8], 16) % 6
        text = {"text": f"I would rate it.\nScore: {score}", "garbage": "I cannot say.", "empty": ""}.get(
            kind or "", f"{score}\nThe response is rated {score}.")
        if kind == "429":
            return 429, {"error": {"message": "rate limited"}}, {"Retry-After": self.retry_after}
        if self.reject_logprobs and body.get("logprobs"):
            return 400, {"error": {"message": "top_logprobs is not supported"}}, {}
        if kind in ("500", "400", "401"):
            return int(kind), {"error": {"message": f"injected {kind}"}}, {}
        if kind == "nochoices":
            return 200, {}, {}
        if kind == "malformed":
            return 200, b'{"choices": [{"message": ', {}
        if kind == "drop":
            return 0, DROP, {}
        slow = {"x-fault": "slow"} if kind == "slow" else {}
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": "stop"}
        if body.get("logprobs") and self.logprobs and kind is None:
            top = [{"token": str(score), "logprob": math.log(0.6)}, {"token": f" {score}", "logprob": math.log(0.1)},
                   {"token": str((score + 1) % 6), "logprob": math.log(0.2)}, {"token": "The", "logprob": math.log(0.05)}]
            choice["logprobs"] = {"content": [{"token": str(score), "logprob": math.log(0.6), "top_logprobs": top}]}
        chars = sum(len(str(m.get("content", ""))) for m in messages)
        usage = {"prompt_tokens": chars // 4 + 8, "completion_tokens": len(text) // 4 + 1}
        return 200, {"id": f"chatcmpl-{key[:12]}", "object": "chat.completion", "created": 0,
                     "model": body.get("model"), "choices": [choice], "usage": usage}, slow

    # ---- batch API -----------------------------------------------------------------------------------------
    def _batch_view(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        self.batch_polls_seen[batch_id] += 1
        if batch["status"] != "completed" and self.batch_polls_seen[batch_id] >= self.batch_polls:
            lines = []
            for line in self.files[batch["input_file_id"]].decode().splitlines():
                req = json.loads(line)
                status, body, _ = self.completion(req["body"], count=False)
                status, body = (200, body) if status == 200 and isinstance(body, dict) and body else (500, {"error": {"message": "failed"}})
                lines.append(json.dumps({"id": "r", "custom_id": req["custom_id"], "error": None,
                                         "response": {"status_code": status, "body": body}}))
            out_id = f"file-out-{batch_id}"
            self.files[out_id] = ("\n".join(lines) + "\n").encode()
            batch.update(status="completed", output_file_id=out_id)
        return batch

    def route(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path.endswith("/chat/completions"):
            self.auth.add(headers.get("authorization", ""))
            self.seen.append((path, headers))
            if b"[fault:echo]" in raw:
                return 500, {"error": {"message": f"bad header {headers.get('authorization')}"}}, {}
            return self.completion(json.loads(raw), raw)
        if method == "GET" and path.endswith("/stats"):
            return 200, {"total": self.total, "attempts": dict(self.attempts), "batches": len(self.batches)}, {}
        if method == "POST" and path.endswith("/files"):
            msg = email.parser.BytesParser().parsebytes(
                b"Content-Type: " + headers["content-type"].encode() + b"\r\n\r\n" + raw)
            data = next(p.get_payload(decode=True) for p in msg.get_payload() if p.get_param("name", header="content-disposition") == "file")
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = data
            return 200, {"id": file_id, "object": "file", "bytes": len(data), "created_at": 0,
                         "filename": "requests.jsonl", "purpose": "batch", "status": "processed"}, {}
        match = re.search(r"/files/([^/]+)/content$", path)
        if method == "GET" and match:
            return 200, self.files[match.group(1)], {}
        if method == "POST" and path.endswith("/batches"):
            req = json.loads(raw)
            batch_id = f"batch_{len(self.batches) + 1}"
            self.batches[batch_id] = {"id": batch_id, "object": "batch", "endpoint": req["endpoint"],
                                      "input_file_id": req["input_file_id"], "completion_window": "24h",
                                      "status": "in_progress", "created_at": 0, "output_file_id": None,
                                      "error_file_id": None, "errors": None}
            return 200, self.batches[batch_id], {}
        match = re.search(r"/batches/([^/]+)$", path)
        if method == "GET" and match:
            return 200, self._batch_view(match.group(1)), {}
        return 404, {"error": {"message": f"no route {method} {path}"}}, {}

    # ---- HTTP/1.1 over asyncio streams ----------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                raw = await reader.readexactly(int(headers.get("content-length", 0)))
                status, body, extra = self.route(method, target.split("?")[0], headers, raw)
                if self.latency and target.endswith("/chat/completions"):
                    await asyncio.sleep(self.latency)
                if body is DROP:
                    break
                if extra.pop("x-fault", None) == "slow":
                    await asyncio.sleep(self.slow_s)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                extra_lines = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                             f"{extra_lines}\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def start(self) -> str:
        """Serve on a thread; returns the base URL (http://127.0.0.1:<port>/v1)."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._server.close()
            self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--no-logprobs", action="store_true")
    args = parser.parse_args()
    server = FakeOpenAI(latency=args.latency, logprobs=not args.no_logprobs)
    server.port = args.port
    server.start()
    print(f"READY {server.port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
